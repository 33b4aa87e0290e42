//! munin-asyncd's command line: Perl's options (Debian 2.0 and the development branch),
//! with the same meanings, checked into a [`DaemonConfig`] before any I/O.

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::spool::writer::Durability;
use crate::spool::DEFAULT_SPOOLDIR;
use crate::util::log::{Level, LogOpts, Target};

/// Poll munin-node on every plugin's own schedule and spool each sample for munin-async.
#[derive(Debug, Parser)]
#[command(name = "munin-asyncd", version, infer_long_args = true, after_help = AFTER_HELP)]
pub struct AsyncdOpts {
    /// munin-node to poll [default: localhost:4949].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) host: Option<String>,
    /// Directory to spool into [default: /var/lib/munin-async].
    #[arg(short = 's', long, visible_alias = "spool", value_name = "DIR")]
    pub(crate) spooldir: Option<PathBuf>,
    /// Poll the munin-nodes this file lists, each into its own spool directory, instead
    /// of --host into --spooldir (a commented example:
    /// /usr/share/doc/munin-async-rs/examples/munin-asyncd.conf).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Length of one spool file's interval, in seconds.
    #[arg(short = 'i', long, value_name = "SECONDS", default_value_t = 86_400)]
    pub(crate) interval: u64,
    /// Accepted for compatibility (Perl's longest sleep); this daemon wakes when a plugin is due.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub(crate) timeout: u64,
    /// Polling rate of plugins that declare none (Debian 2.0's name for --update-rate).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) minrate: Option<u64>,
    /// Number of intervals to keep.
    #[arg(short = 'r', long, value_name = "COUNT", default_value_t = 7)]
    pub(crate) retain: u64,
    /// Polling rate of plugins that declare none [default: 300]; when not 300, also added to
    /// their config as `update_rate`, so the master makes RRDs of that step.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) update_rate: Option<u64>,
    /// Accepted for compatibility: plugins are always polled concurrently (see --connections).
    #[arg(long)]
    pub(crate) fork: bool,
    /// Connections to munin-node at most, so at most this many plugins run at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) connections: usize,
    /// Longest wait for one answer from munin-node, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) request_timeout: u64,
    /// Longest wait between two attempts to reach munin-node, in seconds (for tests).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, hide = true)]
    pub(crate) max_backoff: u64,
    /// When records are forced to disk: "record" (after each one) or "kernel".
    #[arg(long, value_name = "WHEN", default_value = "record")]
    pub(crate) durability: String,
    /// Do not delete old spool files.
    #[arg(short = 'n', long)]
    pub(crate) nocleanup: bool,
    /// Hold each spool directory under SIZE (bytes, or with K, M, G, T: powers of 1024),
    /// checked every 10 minutes: the oldest finished interval files go first.
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_spool_size: Option<String>,
    /// Logging.
    #[command(flatten)]
    pub(crate) log: LogOpts,
}

const AFTER_HELP: &str = "\
Logs go to syslog (facility daemon), or to stderr with --screen. The daemon tells systemd
READY=1 once its spool directory is open (munin-node may still be down: it waits), and
says how munin-node is doing in STATUS=. SIGTERM or SIGINT stop it within a second (up to
10 s while records wait for the disk's sync), every record whole or absent; SIGHUP reads the plugin list again (it is also read every hour).

Exit status: 0 after SIGTERM or SIGINT, 1 when the spool directory cannot be used, 2 for a
wrong command line.";

/// munin-asyncd's checked configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// munin-node's address.
    pub(crate) host: String,
    /// The spool directory.
    pub(crate) spooldir: PathBuf,
    /// Interval file length, seconds.
    pub(crate) interval: u64,
    /// Intervals kept.
    pub(crate) retain: u64,
    /// Rate of plugins that declare none, seconds.
    pub(crate) default_rate: u64,
    /// Concurrent connections.
    pub(crate) connections: usize,
    /// Deadline of one request.
    pub(crate) request_timeout: Duration,
    /// Longest wait between two attempts to reach munin-node.
    pub(crate) max_backoff: Duration,
    /// When records reach the disk.
    pub(crate) durability: Durability,
    /// Delete old spool files every 10 minutes.
    pub(crate) cleanup: bool,
    /// Hold each spool directory's interval files under this many bytes.
    pub(crate) max_spool_bytes: Option<u64>,
    /// Where logs go.
    pub log_target: Target,
    /// The most detailed level logged.
    pub log_level: Level,
}

impl AsyncdOpts {
    /// Checks the options, and reads --config when given: one configuration per node.
    /// The error is one line for the user.
    pub fn into_configs(self) -> Result<Vec<DaemonConfig>, String> {
        let nodes = match &self.config {
            Some(file) => {
                if self.host.is_some() || self.spooldir.is_some() {
                    return Err(
                        "--config lists the nodes: --host and --spooldir go in its sections".into(),
                    );
                }
                crate::asyncd::fanout::load(file)?
                    .into_iter()
                    .map(|n| (n.host, n.spooldir))
                    .collect()
            }
            None => vec![(
                self.host.clone().unwrap_or_else(|| "localhost:4949".into()),
                self.spooldir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOLDIR)),
            )],
        };
        let base = self.into_config_for(String::new(), PathBuf::new())?;
        nodes
            .into_iter()
            .map(|(host, spooldir)| {
                if !host.contains(':') {
                    return Err(format!("--host {host:?}: expected HOST:PORT"));
                }
                Ok(DaemonConfig {
                    host,
                    spooldir,
                    ..base.clone()
                })
            })
            .collect()
    }

    fn into_config_for(self, host: String, spooldir: PathBuf) -> Result<DaemonConfig, String> {
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let interval = positive("--interval", self.interval)?;
        let retain = positive("--retain", self.retain)?;
        let default_rate = positive(
            "--update-rate",
            self.update_rate.or(self.minrate).unwrap_or(300),
        )?;
        if self.connections == 0 || self.connections > 64 {
            return Err("--connections must be between 1 and 64".into());
        }
        let request_timeout =
            Duration::from_secs(positive("--request-timeout", self.request_timeout)?);
        let durability = match self.durability.as_str() {
            "record" => Durability::Record,
            "kernel" => Durability::Kernel,
            other => {
                return Err(format!(
                    "--durability {other:?}: expected \"record\" or \"kernel\""
                ))
            }
        };
        let max_spool_bytes = match &self.max_spool_size {
            None => None,
            Some(_) if self.nocleanup => {
                return Err(
                    "--max-spool-size deletes spool files, --nocleanup says not to: choose one"
                        .into(),
                )
            }
            Some(text) => Some(parse_size(text).ok_or_else(|| {
                format!("--max-spool-size {text:?}: expected a size such as 500M or 2G")
            })?),
        };
        Ok(DaemonConfig {
            host,
            spooldir,
            interval,
            retain,
            default_rate,
            connections: self.connections,
            request_timeout,
            max_backoff: Duration::from_secs(positive("--max-backoff", self.max_backoff)?),
            durability,
            cleanup: !self.nocleanup,
            max_spool_bytes,
            log_target: self.log.target(),
            log_level: self.log.level(),
        })
    }
}

/// A size: digits, then optionally K, M, G or T (powers of 1024); at least 1 MiB, since
/// one record can be 4 MiB and a smaller spool could not hold a day of one plugin.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        b'T' | b't' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift).filter(|&b| b >= 1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_size_cap() {
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        for bad in ["", "M", "1.5G", "-1G", "10", "1023K", "99999999999T", "5 M"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        let c = parse(&["--max-spool-size", "1G"]).unwrap();
        assert_eq!(c.max_spool_bytes, Some(1 << 30));
        let e = parse(&["--max-spool-size", "1G", "--nocleanup"]).unwrap_err();
        assert!(e.contains("--nocleanup"), "{e}");
        let e = parse(&["--max-spool-size", "lots"]).unwrap_err();
        assert!(e.contains("\"lots\""), "{e}");
    }

    fn parse(args: &[&str]) -> Result<DaemonConfig, String> {
        AsyncdOpts::try_parse_from(std::iter::once("munin-asyncd").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?
            .into_configs()
            .map(|mut c| c.remove(0))
    }

    #[test]
    fn perl_options() {
        let c = parse(&[
            "--host",
            "127.0.0.1:4950",
            "--spool",
            "/tmp/s",
            "-i",
            "3600",
            "-r",
            "3",
            "--minrate",
            "60",
            "-n",
            "--fork",
        ])
        .unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.interval,
                c.retain,
                c.default_rate,
                c.cleanup
            ),
            ("127.0.0.1:4950", 3600, 3, 60, false)
        );
        assert_eq!(c.spooldir, PathBuf::from("/tmp/s"));
        let c = parse(&["--update-rate", "30", "--minrate", "60"]).unwrap();
        assert_eq!(c.default_rate, 30, "--update-rate wins over --minrate");
        let c = parse(&[]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.interval, c.retain, c.default_rate),
            ("localhost:4949", 86400, 7, 300)
        );
        assert_eq!(c.max_backoff, Duration::from_secs(60));
    }

    #[test]
    fn the_backoff_cap_for_tests_is_checked() {
        let c = parse(&["--max-backoff", "4"]).unwrap();
        assert_eq!(c.max_backoff, Duration::from_secs(4));
        let e = parse(&["--max-backoff", "0"]).unwrap_err();
        assert!(e.contains("--max-backoff must be at least 1"), "{e}");
        let e = parse(&["--max-backoff", "soon"]).unwrap_err();
        assert!(e.contains("--max-backoff"), "{e}");
    }

    #[test]
    fn a_config_file_gives_one_configuration_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("munin-asyncd.conf");
        std::fs::write(
            &file,
            "[a]\nhost a:4949\nspooldir /s/a\n[b]\nhost b:4950\nspooldir /s/b\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let opts =
            AsyncdOpts::try_parse_from(["munin-asyncd", "--config", f, "--update-rate", "60"])
                .unwrap();
        let c = opts.into_configs().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (
                c[1].host.as_str(),
                c[1].spooldir.as_path(),
                c[1].default_rate
            ),
            ("b:4950", Path::new("/s/b"), 60)
        );
        let opts =
            AsyncdOpts::try_parse_from(["munin-asyncd", "--config", f, "--host", "x:1"]).unwrap();
        assert!(opts
            .into_configs()
            .unwrap_err()
            .contains("--config lists the nodes"));
        let opts =
            AsyncdOpts::try_parse_from(["munin-asyncd", "--config", "/nonexistent.conf"]).unwrap();
        assert!(opts
            .into_configs()
            .unwrap_err()
            .starts_with("/nonexistent.conf: "));
    }

    #[test]
    fn bad_options_are_refused() {
        for args in [
            &["--host", "nocolon"][..],
            &["-i", "0"],
            &["--connections", "0"],
            &["--durability", "maybe"],
            &["--update-rate", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
