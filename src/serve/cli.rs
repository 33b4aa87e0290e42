//! Command-line options, and the validated configuration built from them before any I/O.
//!
//! The options are Perl munin-async's, with the same meanings; Getopt::Long accepted
//! unambiguous abbreviations (`--spoold`), and so do we.

use std::path::PathBuf;

use clap::Parser;

use crate::serve::session::{Catchup, DEFAULT_CATCHUP};
use crate::serve::spoolfetch::Form;
use crate::util::log::{Level, LogOpts, Target};

/// Where Debian keeps the spool.
pub(crate) use crate::spool::DEFAULT_SPOOLDIR;

/// Serve a munin-async spool directory to a Munin master on stdin/stdout.
///
/// Usually run by sshd as the forced command of the master's key:
/// `command="/usr/share/munin/munin-async --spoolfetch"`.
#[derive(Debug, Parser)]
#[command(name = "munin-async", version, infer_long_args = true, after_help = AFTER_HELP)]
pub struct AsyncOpts {
    /// Directory holding the spooled data.
    #[arg(short = 's', long, value_name = "DIR", default_value = DEFAULT_SPOOLDIR)]
    pub(crate) spooldir: PathBuf,
    /// Name in the greeting [default: hostname from SPOOL-META, else the system's name].
    #[arg(long, value_name = "NAME")]
    pub(crate) hostname: Option<String>,
    /// Clean up the spool directory after the session.
    #[arg(long)]
    pub(crate) cleanup: bool,
    /// Clean up the spool directory and exit (no session).
    #[arg(long)]
    pub(crate) cleanupandexit: bool,
    /// Announce the "spool" capability, so the master uses spoolfetch.
    #[arg(long)]
    pub(crate) spoolfetch: bool,
    /// Accepted for compatibility; "config" and "fetch" are always answered from the
    /// newest spooled sample.
    #[arg(long)]
    pub(crate) vectorfetch: bool,
    /// Print what the spool holds (per plugin: samples, oldest, newest, gaps, bytes, damaged
    /// parts) and exit: 0 when nothing is damaged, 1 otherwise. Reads only.
    #[arg(long)]
    pub(crate) inspect: bool,
    /// Print the hardened authorized_keys line for the master's public key in FILE ("-" for
    /// stdin), with this program, --spooldir and the other options given in its forced
    /// command, and exit.
    #[arg(long, value_name = "FILE")]
    pub(crate) authorized_keys: Option<PathBuf>,
    /// With --authorized-keys: the master's addresses (sshd's from="..." pattern-list).
    #[arg(long, value_name = "PATTERNS", requires = "authorized_keys")]
    pub(crate) from: Option<String>,
    /// How far one spoolfetch reaches past the oldest sample it sends, in seconds; 0 for
    /// no limit [default: 6 spool intervals, 6 days with Debian's settings].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) catchup_window: Option<u64>,
    /// Send spoolfetch replies as Perl's munin-async does, one block per sample with its
    /// whole config, byte for byte, instead of one block per plugin and config.
    #[arg(long)]
    pub(crate) compat_output: bool,
    /// Serve the node the master's ssh command names (sshd's SSH_ORIGINAL_COMMAND: a node
    /// name such as `/web1`, or Perl's `munin-async --spooldir DIR`), one forced command
    /// for every node of a spooling host: a section of --config, or a virtual node's
    /// directory under --spooldir or a section's. No command serves --spooldir; anything
    /// else is refused.
    #[arg(long)]
    pub(crate) node_from_ssh: bool,
    /// With --node-from-ssh: munin-asyncd's configuration file, whose sections name the
    /// nodes and their spool directories.
    #[arg(long, value_name = "FILE", requires = "node_from_ssh")]
    pub(crate) config: Option<PathBuf>,
    /// Logging.
    #[command(flatten)]
    pub(crate) log: LogOpts,
}

const AFTER_HELP: &str = "\
Nothing but the munin protocol is written to stdout; logs go to syslog (facility daemon),
or to stderr with --screen.

Exit status: 0 when the session ended (also when the master hung up), 1 when the spool
directory cannot be used or writing to the master failed, 2 for a wrong command line.";

/// What to do after the options are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Serve a session, then clean up if `cleanup`.
    Serve {
        /// Clean up after the session.
        cleanup: bool,
    },
    /// Clean up and exit.
    CleanupOnly,
    /// Print what the spool holds and exit.
    Inspect,
    /// Print the authorized_keys line for the key in this file ("-": stdin) and exit.
    AuthorizedKeys {
        /// The public key file.
        key_file: PathBuf,
        /// The from="..." patterns.
        from: Option<String>,
    },
}

/// munin-async's validated configuration.
#[derive(Debug, Clone)]
pub struct AsyncConfig {
    /// The spool directory.
    pub(crate) spooldir: PathBuf,
    /// `--hostname`, checked.
    pub(crate) hostname: Option<String>,
    /// What to do.
    pub(crate) mode: Mode,
    /// Announce `spool`.
    pub(crate) spoolfetch: bool,
    /// The catch-up window.
    pub(crate) catchup: Catchup,
    /// How spoolfetch replies are laid out.
    pub(crate) form: Form,
    /// `--node-from-ssh`: the spool is chosen by the master's ssh command, among
    /// `spooldir`, its virtual nodes and these `--config` sections.
    pub(crate) node_from_ssh: Option<Vec<crate::asyncd::fanout::NodeEntry>>,
    /// The `--config` file those sections came from.
    pub(crate) config_file: Option<PathBuf>,
    /// Where logs go.
    pub log_target: Target,
    /// The most detailed level logged.
    pub(crate) log_level: Level,
}

impl AsyncOpts {
    /// Checks the options; the error is one line for the user.
    pub fn into_config(self) -> Result<AsyncConfig, String> {
        if let Some(h) = &self.hostname {
            if !crate::spool::meta::is_hostname(h.as_bytes()) {
                return Err(format!(
                    "--hostname {h:?}: a host name must be 1 to 253 printable characters without spaces"
                ));
            }
        }
        if self.spooldir.as_os_str().is_empty() {
            return Err("--spooldir: the path is empty".into());
        }
        let node_from_ssh = match (self.node_from_ssh, &self.config) {
            (false, _) => None,
            (true, _) if self.hostname.is_some() => {
                return Err(
                    "--hostname with --node-from-ssh: each node's spool names its host".into(),
                )
            }
            (true, None) => Some(Vec::new()),
            (true, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("--config {}: {e}", file.display()))?;
                Some(crate::asyncd::fanout::parse(file, &text)?)
            }
        };
        Ok(AsyncConfig {
            spooldir: self.spooldir,
            hostname: self.hostname,
            mode: if let Some(key_file) = self.authorized_keys {
                Mode::AuthorizedKeys {
                    key_file,
                    from: self.from,
                }
            } else if self.inspect {
                Mode::Inspect
            } else if self.cleanupandexit {
                Mode::CleanupOnly
            } else {
                Mode::Serve {
                    cleanup: self.cleanup,
                }
            },
            spoolfetch: self.spoolfetch,
            catchup: self
                .catchup_window
                .map_or(DEFAULT_CATCHUP, Catchup::Seconds),
            form: if self.compat_output {
                Form::Records
            } else {
                Form::Blocks
            },
            node_from_ssh,
            config_file: self.config,
            log_target: self.log.target(),
            log_level: self.log.level(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<AsyncConfig, String> {
        AsyncOpts::try_parse_from(std::iter::once("munin-async").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn perl_options_and_abbreviations() {
        let c = parse(&["--spoold", "/tmp/x", "--spoolf", "--cleanup", "-v"]).unwrap();
        assert_eq!(c.spooldir, PathBuf::from("/tmp/x"));
        assert!(c.spoolfetch);
        assert_eq!(c.mode, Mode::Serve { cleanup: true });
        assert_eq!(c.log_level, Level::Info);
        let c = parse(&["-s", "/tmp/y", "--cleanupandexit", "--screen"]).unwrap();
        assert_eq!(c.mode, Mode::CleanupOnly);
        assert_eq!(c.log_target, Target::Stderr);
        let c = parse(&[]).unwrap();
        assert_eq!(c.spooldir, PathBuf::from(DEFAULT_SPOOLDIR));
        assert_eq!(c.catchup, DEFAULT_CATCHUP);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["--hostname", "a b"]).is_err());
        assert!(parse(&["--hostname", ""]).is_err());
        assert!(parse(&["--catchup-window", "-5"]).is_err());
        assert!(parse(&["--spooldir", ""]).is_err());
        // Ambiguous, as Perl's Getopt::Long says too (spooldir, spoolfetch).
        assert!(parse(&["--spool", "/tmp/x"]).is_err());
        assert!(parse(&["--clean"]).is_err(), "ambiguous abbreviation");
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
