complete -c munin-async -s s -l spooldir -d 'Directory holding the spooled data' -r -F
complete -c munin-async -l hostname -d 'Name in the greeting [default: hostname from SPOOL-META, else the system\'s name]' -r
complete -c munin-async -l authorized-keys -d 'Print the hardened authorized_keys line for the master\'s public key in FILE ("-" for stdin), with this program, --spooldir and the other options given in its forced command, and exit' -r -F
complete -c munin-async -l from -d 'With --authorized-keys: the master\'s addresses (sshd\'s from="..." pattern-list)' -r
complete -c munin-async -l catchup-window -d 'How far one spoolfetch reaches past the oldest sample it sends, in seconds; 0 for no limit [default: 6 spool intervals, 6 days with Debian\'s settings]' -r
complete -c munin-async -l config -d 'With --node-from-ssh: munin-asyncd\'s configuration file, whose sections name the nodes and their spool directories' -r -F
complete -c munin-async -l cleanup -d 'Clean up the spool directory after the session'
complete -c munin-async -l cleanupandexit -d 'Clean up the spool directory and exit (no session)'
complete -c munin-async -l spoolfetch -d 'Announce the "spool" capability, so the master uses spoolfetch'
complete -c munin-async -l vectorfetch -d 'Accepted for compatibility; "config" and "fetch" are always answered from the newest spooled sample'
complete -c munin-async -l inspect -d 'Print what the spool holds (per plugin: samples, oldest, newest, gaps, bytes, damaged parts) and exit: 0 when nothing is damaged, 1 otherwise. Reads only'
complete -c munin-async -l compat-output -d 'Send spoolfetch replies as Perl\'s munin-async does, one block per sample with its whole config, byte for byte, instead of one block per plugin and config'
complete -c munin-async -l node-from-ssh -d 'Serve the node the master\'s ssh command names (sshd\'s SSH_ORIGINAL_COMMAND: a node name such as `/web1`, or Perl\'s `munin-async --spooldir DIR`), one forced command for every node of a spooling host: a section of --config, or a virtual node\'s directory under --spooldir or a section\'s. No command serves --spooldir; anything else is refused'
complete -c munin-async -s v -l verbose -d 'Log what happens (sessions, polls, cleanup)'
complete -c munin-async -l debug -d 'Log every command or request (implies --verbose)'
complete -c munin-async -l screen -d 'Log to stderr instead of syslog'
complete -c munin-async -s h -l help -d 'Print help (see more with \'--help\')'
complete -c munin-async -s V -l version -d 'Print version'
