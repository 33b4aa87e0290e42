complete -c munin-asyncd -l host -d 'munin-node to poll [default: localhost:4949]' -r
complete -c munin-asyncd -s s -l spooldir -l spool -d 'Directory to spool into [default: /var/lib/munin-async]' -r -F
complete -c munin-asyncd -l config -d 'Poll the munin-nodes this file lists, each into its own spool directory, instead of --host into --spooldir (a commented example: /usr/share/doc/munin-async-rs/examples/munin-asyncd.conf)' -r -F
complete -c munin-asyncd -s i -l interval -d 'Length of one spool file\'s interval, in seconds' -r
complete -c munin-asyncd -l timeout -d 'Accepted for compatibility (Perl\'s longest sleep); this daemon wakes when a plugin is due' -r
complete -c munin-asyncd -l minrate -d 'Polling rate of plugins that declare none (Debian 2.0\'s name for --update-rate)' -r
complete -c munin-asyncd -s r -l retain -d 'Number of intervals to keep' -r
complete -c munin-asyncd -l update-rate -d 'Polling rate of plugins that declare none [default: 300]; when not 300, also added to their config as `update_rate`, so the master makes RRDs of that step' -r
complete -c munin-asyncd -l connections -d 'Connections to munin-node at most, so at most this many plugins run at once' -r
complete -c munin-asyncd -l request-timeout -d 'Longest wait for one answer from munin-node, in seconds' -r
complete -c munin-asyncd -l max-backoff -d 'Longest wait between two attempts to reach munin-node, in seconds (for tests)' -r
complete -c munin-asyncd -l durability -d 'When records are forced to disk: "record" (after each one) or "kernel"' -r
complete -c munin-asyncd -l max-spool-size -d 'Hold each spool directory under SIZE (bytes, or with K, M, G, T: powers of 1024), checked every 10 minutes: the oldest finished interval files go first' -r
complete -c munin-asyncd -l fork -d 'Accepted for compatibility: plugins are always polled concurrently (see --connections)'
complete -c munin-asyncd -s n -l nocleanup -d 'Do not delete old spool files'
complete -c munin-asyncd -s v -l verbose -d 'Log what happens (sessions, polls, cleanup)'
complete -c munin-asyncd -l debug -d 'Log every command or request (implies --verbose)'
complete -c munin-asyncd -l screen -d 'Log to stderr instead of syslog'
complete -c munin-asyncd -s h -l help -d 'Print help'
complete -c munin-asyncd -s V -l version -d 'Print version'
