//! munin-asyncd's own health, spooled as a multigraph plugin, `munin_asyncd`, beside the
//! node's plugins, so the master graphs it with no extra setup.
//!
//! Graphs (all per munin-node polled):
//! - `munin_asyncd_polls`: polls that gave a sample, polls whose fetch answered no value
//!   (the config is spooled alone, as Debian's `diskstats` does on its first run), polls
//!   that failed, and replies of munin-node that ended without their `.` line (taken as
//!   ended after [`crate::asyncd::node::UNENDED_WAIT`]) (per minute);
//! - `munin_asyncd_latency`: the average and longest poll over the last period (seconds);
//! - `munin_asyncd_samples`: samples written, and samples dropped by reason (per minute):
//!   munin-node did not answer (`node`), the plugin failed (`plugin`), the spool could not
//!   be written (`disk`), the plugin already had a sample that second (`repeat`);
//! - `munin_asyncd_spool`: the spool's bytes;
//! - `munin_asyncd_lag`: seconds since the newest sample a master has fetched, from the
//!   cursor munin-async records at each spoolfetch ([`crate::spool::CURSOR_FILE`]), and
//!   the catch-up span of munin-async's last reply ([`crate::spool::pace`]: shorter than
//!   the configured window while a master cannot take a backlog in one run).
//!
//! With thresholds, so munin-limits tells when a node's pipeline stalls: the lag warns
//! past an hour ([`LAG_WARNING`]) and is critical past six ([`LAG_CRITICAL`]); samples
//! dropped because munin-node did not answer warn, because the disk failed are critical.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::asyncd::schedule::next_slot;
use crate::spool::pace::Pace;
use crate::spool::writer::record_body;
use crate::spool::{Spool, CURSOR_FILE};

/// The master's lag past which the health plugin warns: twelve of the master's 5-minute
/// runs without a fetch (a master run every 5 minutes lags 5 to 10 minutes).
pub(crate) const LAG_WARNING: u64 = 3600;
/// ... and is critical.
pub(crate) const LAG_CRITICAL: u64 = 6 * 3600;

/// Seconds from the start to the first health sample: the first round's polls are in by
/// then, and a master fetching soon after a start (a new node, the demo) has the graphs
/// at once rather than a whole `--update-rate` later.
pub(crate) const FIRST_SAMPLE: u64 = 10;

/// The plugin's name in the spool.
pub(crate) const PLUGIN: &str = crate::spool::HEALTH_PLUGIN;

/// Why a sample was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// munin-node did not answer, or not in time, or not in the protocol.
    Node,
    /// The plugin failed (`# Bad exit`, no values).
    Plugin,
    /// The spool could not be written (a full disk, say).
    Disk,
    /// The plugin already had a sample at that second.
    Repeat,
}

/// How a poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A sample was written.
    Written,
    /// The fetch answered no value (nothing but `.`): the config was written alone.
    Empty,
    /// Nothing was written, for this reason.
    Dropped(Dropped),
}

/// The counters of one munin-node's polls. Counts only grow (the graphs derive rates);
/// latencies are over the period since the last record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    written: u64,
    empty: u64,
    failed: u64,
    /// Replies without their `.` (see [`crate::asyncd::node::Unended`]).
    unended: u64,
    /// Steps of the wall clock seen (see [`crate::asyncd::env::Env::stepped`]).
    steps: u64,
    dropped: [u64; 4],
    latency_sum: Duration,
    latency_max: Duration,
    latency_n: u64,
}

impl Health {
    /// A poll ended so, after `took`.
    pub(crate) fn poll(&mut self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Written => self.written += 1,
            Outcome::Empty => self.empty += 1,
            Outcome::Dropped(why) => {
                self.failed += 1;
                self.dropped[why as usize] += 1;
            }
        }
        self.latency_sum += took;
        self.latency_max = self.latency_max.max(took);
        self.latency_n += 1;
    }

    /// The counters as they are, with this period's latencies; a new period starts.
    pub(crate) fn take_period(&mut self) -> Health {
        let period = self.clone();
        self.latency_sum = Duration::ZERO;
        self.latency_max = Duration::ZERO;
        self.latency_n = 0;
        period
    }

    /// The plugin's output for one sample: config and values of each graph. `rate` is the
    /// `update_rate`, `spool_bytes` the spool's size, `master` what is known of the
    /// master's fetches.
    pub(crate) fn output(&self, rate: u64, spool_bytes: u64, master: Master) -> Vec<String> {
        let Master { lag, span } = master;
        let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
        let avg = if self.latency_n == 0 {
            "U".to_string()
        } else {
            secs(self.latency_sum / u32::try_from(self.latency_n).unwrap_or(u32::MAX))
        };
        let max = if self.latency_n == 0 {
            "U".to_string()
        } else {
            secs(self.latency_max)
        };
        let mut out = String::new();
        let graph = |out: &mut String, name: &str, title: &str, vlabel: &str, extra: &str| {
            let _ = write!(
                out,
                "multigraph {PLUGIN}_{name}\nupdate_rate {rate}\ngraph_title munin-asyncd: {title}\n\
                 graph_category munin\ngraph_vlabel {vlabel}\n{extra}"
            );
        };
        let counter = |out: &mut String, field: &str, label: &str, value: u64| {
            let _ = write!(
                out,
                "{field}.label {label}\n{field}.type DERIVE\n{field}.min 0\n{field}.value {value}\n"
            );
        };
        graph(
            &mut out,
            "polls",
            "polls",
            "polls per ${graph_period}",
            "graph_period minute\n",
        );
        counter(&mut out, "ok", "gave a sample", self.written);
        counter(&mut out, "empty", "answered no value", self.empty);
        counter(&mut out, "failed", "failed", self.failed);
        counter(
            &mut out,
            "unended",
            "replies without their . line",
            self.unended,
        );
        counter(&mut out, "steps", "wall clock steps", self.steps);
        graph(&mut out, "latency", "poll latency", "seconds", "");
        let _ = write!(
            out,
            "avg.label average\navg.value {avg}\nmax.label longest\nmax.value {max}\n"
        );
        graph(
            &mut out,
            "samples",
            "samples written and dropped",
            "samples per ${graph_period}",
            "graph_period minute\n",
        );
        counter(&mut out, "written", "written", self.written);
        for (field, label, why) in [
            ("node", "dropped: munin-node did not answer", Dropped::Node),
            ("plugin", "dropped: the plugin failed", Dropped::Plugin),
            (
                "disk",
                "dropped: the spool could not be written",
                Dropped::Disk,
            ),
            (
                "repeat",
                "dropped: a sample that second already",
                Dropped::Repeat,
            ),
        ] {
            counter(&mut out, field, label, self.dropped[why as usize]);
        }
        // Any sample lost to the disk is critical; to munin-node, a warning (an outage).
        let _ = write!(out, "node.warning 0\ndisk.critical 0\n");
        graph(
            &mut out,
            "spool",
            "spool size",
            "bytes",
            "graph_args --base 1024 -l 0\n",
        );
        let _ = writeln!(out, "bytes.label spool files\nbytes.value {spool_bytes}");
        graph(
            &mut out,
            "lag",
            "age of the newest sample a master has fetched",
            "seconds",
            "graph_args -l 0\n",
        );
        let _ = writeln!(
            out,
            "lag.label seconds since\nlag.info Seconds since the newest sample a master has \
             fetched; grows while no master fetches.\nlag.warning {LAG_WARNING}\n\
             lag.critical {LAG_CRITICAL}\nlag.value {}",
            lag.map_or("U".to_string(), |l| l.to_string())
        );
        let _ = writeln!(
            out,
            "span.label catch-up span\nspan.info The span of time munin-async's last \
             spoolfetch reply could cover: the catch-up window, or less while a master \
             cannot take a backlog in one run (its timeout_fetch_one_node).\nspan.value {}",
            span.map_or("U".to_string(), |s| s.to_string())
        );
        out.lines().map(str::to_string).collect()
    }
}

/// A node's health: its counters, and when they are next spooled (every `rate` seconds,
/// on its slots, into the spool directory itself).
#[derive(Debug)]
pub(crate) struct Recorder {
    counters: Health,
    rate: u64,
    next: u64,
    last: u64,
}

impl Recorder {
    /// Counters from nothing at `start`; the first sample [`FIRST_SAMPLE`] later (or a
    /// `rate` if that is less), then on the slots of `rate`.
    pub(crate) fn new(start: u64, rate: u64) -> Recorder {
        Recorder {
            counters: Health::default(),
            rate,
            next: start.saturating_add(rate.min(FIRST_SAMPLE)),
            last: 0,
        }
    }

    /// A poll ended so, after `took`.
    pub(crate) fn poll(&mut self, outcome: Outcome, took: Duration) {
        self.counters.poll(outcome, took);
    }

    /// The time of the newest sample spooled (0 before any).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// The wall clock stepped.
    pub(crate) fn stepped(&mut self) {
        self.counters.steps += 1;
    }

    /// How many of munin-node's replies have ended without their `.` so far.
    pub(crate) fn unended(&mut self, count: u64) {
        self.counters.unended = count;
    }

    /// The second the next sample is due.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// When a sample is due at `now`: the sample to spool into `root` (the spool
    /// directory itself), with the counters as they are and the latency period ended;
    /// `None` when none is due, or when `now` is at or before a second already spooled
    /// (`last`, see [`Recorder::spooled`]) or promised before a restart (`floor`).
    /// Measuring the spool and writing the sample are left to a worker
    /// ([`HealthSample::body`]): at a site's scale a thousand nodes each do it on the
    /// second of their round, which the driving thread must spend handing out polls.
    pub(crate) fn take_due(&mut self, now: u64, floor: u64) -> Option<HealthSample> {
        if now < self.next {
            return None;
        }
        self.next = next_slot(now, self.rate);
        if now <= self.last || now <= floor {
            return None;
        }
        Some(HealthSample {
            time: now,
            rate: self.rate,
            counters: self.counters.take_period(),
        })
    }

    /// The sample at `time` is spooled: none is taken at or before it.
    pub(crate) fn spooled(&mut self, time: u64) {
        self.last = self.last.max(time);
    }
}

/// One health sample, taken on the driving thread and spooled on a worker.
#[derive(Debug)]
pub(crate) struct HealthSample {
    /// Its time.
    pub(crate) time: u64,
    rate: u64,
    counters: Health,
}

impl HealthSample {
    /// Measures `dirs` (the node's spool directories: their interval files' bytes, and
    /// the master's lag) and gives the sample's record body, to append at its `time`.
    pub(crate) fn body(&self, dirs: &[PathBuf]) -> Vec<u8> {
        let (bytes, master) = measure(dirs, self.time);
        let lines = self.counters.output(self.rate, bytes, master);
        let mut body = Vec::new();
        record_body(PLUGIN, lines.iter().map(|l| l.as_bytes()), &mut body);
        body
    }
}

/// What the health plugin knows of the masters' fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Master {
    /// Seconds since the newest sample a master fetched (None before any fetch).
    pub(crate) lag: Option<u64>,
    /// The span of munin-async's last reply (the smallest of the node's directories; None
    /// before any, and for a reply without limit).
    pub(crate) span: Option<u64>,
}

/// The bytes in the interval files of `dirs`, and what the masters' fetches from them
/// say at `now`.
fn measure(dirs: &[PathBuf], now: u64) -> (u64, Master) {
    let mut bytes = 0;
    let mut lag: Option<u64> = None;
    let mut span: Option<u64> = None;
    for dir in dirs {
        if let Ok(s) = Spool::open(dir) {
            for f in s.interval_files().unwrap_or_default() {
                bytes += s.size_of(&f);
            }
        }
        let cursor = std::fs::read(dir.join(CURSOR_FILE))
            .ok()
            .and_then(|t| parse_cursor(&t));
        if let Some(c) = cursor {
            let l = now.saturating_sub(c);
            lag = Some(lag.map_or(l, |m| m.max(l)));
        }
        let pace = std::fs::read(dir.join(crate::spool::pace::PACE_FILE)).unwrap_or_default();
        if let Some(s) = Pace::parse(&pace).current_span().filter(|s| *s > 0) {
            span = Some(span.map_or(s, |m| m.min(s)));
        }
    }
    (bytes, Master { lag, span })
}

/// Parses the cursor file's content.
pub(crate) fn parse_cursor(text: &[u8]) -> Option<u64> {
    crate::spool::names::parse_decimal(text.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies() {
        let mut h = Health::default();
        h.poll(Outcome::Written, Duration::from_millis(100));
        h.poll(Outcome::Written, Duration::from_millis(300));
        h.poll(Outcome::Dropped(Dropped::Plugin), Duration::from_millis(50));
        h.poll(Outcome::Dropped(Dropped::Disk), Duration::from_millis(50));
        h.poll(Outcome::Empty, Duration::from_millis(100));
        let master = Master {
            lag: Some(42),
            span: Some(3600),
        };
        let out = h.take_period().output(300, 4096, master);
        let has = |l: &str| out.iter().any(|x| x == l);
        assert!(has("multigraph munin_asyncd_polls"));
        assert!(has("ok.value 2") && has("failed.value 2") && has("empty.value 1"));
        assert!(has("avg.value 0.120") && has("max.value 0.300"));
        assert!(has("written.value 2") && has("plugin.value 1") && has("disk.value 1"));
        assert!(has("node.value 0") && has("repeat.value 0"));
        assert!(has("bytes.value 4096") && has("lag.value 42") && has("span.value 3600"));
        assert!(has(&format!("lag.warning {LAG_WARNING}")) && has("disk.critical 0"));
        assert_eq!(out.iter().filter(|l| *l == "update_rate 300").count(), 5);
        // Counters go on; latencies start again.
        let out = h.take_period().output(300, 0, Master::default());
        assert!(out.iter().any(|l| l == "ok.value 2"));
        assert!(out.iter().any(|l| l == "avg.value U") && out.iter().any(|l| l == "lag.value U"));
        assert!(out.iter().any(|l| l == "span.value U"));
        assert_eq!(parse_cursor(b"1795558613\n"), Some(1_795_558_613));
        assert_eq!(parse_cursor(b"x"), None);
    }
}
