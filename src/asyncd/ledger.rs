//! SPOOL-META as a node's coordinator publishes it: per spool, a [`Ledger`] of what was
//! said (the `complete_until` promised, see [`crate::asyncd::watermark`]), whether a write
//! is under way, whether something else it says changed, and whether the last write
//! failed; per node, the [`Pacing`] that holds writes to one a second (one every ten
//! while a round comes in); and the file's contents ([`pairs`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::asyncd::registry::Plugin;
use crate::spool::meta::key;
use crate::spool::writer::WriteError;
use crate::{log_error, log_info};

/// What one spool's SPOOL-META said, and where its writing is.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// The complete_until SPOOL-META says (None before the first write of this run).
    said: Option<u64>,
    /// A write is under way, on a worker.
    writing: bool,
    /// Something besides complete_until changed (the list, a rate, the host name; a
    /// sample alone does not: it is said with the next complete_until), or the last
    /// write failed.
    dirty: bool,
    /// The last write failed (a full disk, say): logged once until one works.
    failing: bool,
}

impl Default for Ledger {
    /// A spool just opened: SPOOL-META is written at the first chance.
    fn default() -> Ledger {
        Ledger {
            said: None,
            writing: false,
            dirty: true,
            failing: false,
        }
    }
}

impl Ledger {
    /// The complete_until promised, if any: no sample may be at or before it.
    pub(crate) fn said(&self) -> Option<u64> {
        self.said
    }

    /// Whether a write is under way.
    pub(crate) fn writing(&self) -> bool {
        self.writing
    }

    /// Something SPOOL-META says besides complete_until changed.
    pub(crate) fn changed(&mut self) {
        self.dirty = true;
    }

    /// Whether SPOOL-META saying `complete` would be news: something else changed, or
    /// the spool has listed plugins and `complete` is not what it says.
    pub(crate) fn news(&self, complete: u64, listed: bool) -> bool {
        self.dirty || (listed && self.said != Some(complete))
    }

    /// A write promising `complete` goes out (on a worker with `on_worker`): from now on
    /// no sample may be at or before it, whether the write lands or not.
    pub(crate) fn promise(&mut self, complete: u64, on_worker: bool) {
        self.said = Some(complete);
        self.dirty = false;
        self.writing = on_worker;
    }

    /// The write into `dir` is over with `result`. A failed one is written again at the
    /// next chance; the first failure and the first success after it are logged.
    pub(crate) fn written(&mut self, dir: &Path, result: Result<(), WriteError>) {
        self.writing = false;
        match result {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    log_info!("{}: SPOOL-META written again", dir.display());
                }
            }
            Err(e) => {
                self.dirty = true;
                if !std::mem::replace(&mut self.failing, true) {
                    log_error!(
                        "{e}; munin-async keeps serving up to the last complete_until written"
                    );
                }
            }
        }
    }
}

/// When one node's SPOOL-META files may be written: at most once in a gap, and only when
/// something may have changed since they were worked out.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// When they were last written.
    published: Option<Instant>,
    /// Something new was held back by the gap, or by a write under way.
    pending: bool,
    /// Something SPOOL-META says may have changed since it was last worked out: a poll
    /// went out or came back, the list was read (a SPOOL-META write coming back changes
    /// nothing).
    stirred: bool,
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing {
            published: None,
            pending: false,
            stirred: true,
        }
    }
}

impl Pacing {
    /// Something SPOOL-META says may have changed.
    pub(crate) fn stir(&mut self) {
        self.stirred = true;
    }

    /// Whether SPOOL-META is worked out at `now` (not with a write within `gap`, then
    /// held back for later; always with `force`). When it is, what stirred is taken.
    pub(crate) fn go(&mut self, now: Instant, gap: Duration, force: bool) -> bool {
        let soon = self
            .published
            .is_some_and(|at| now.saturating_duration_since(at) < gap);
        if soon && !force {
            self.pending |= std::mem::take(&mut self.stirred);
            return false;
        }
        self.stirred = false;
        self.pending = false;
        true
    }

    /// A spool had news while its last write was under way: tried again.
    pub(crate) fn postpone(&mut self) {
        self.pending = true;
    }

    /// Writes went out at `now`.
    pub(crate) fn wrote(&mut self, now: Instant) {
        self.published = Some(now);
    }

    /// When held-back news may be written, `gap` after the last write.
    pub(crate) fn wake(&self, gap: Duration) -> Option<Instant> {
        if self.pending {
            self.published.map(|at| at + gap)
        } else {
            None
        }
    }
}

/// What a spool's SPOOL-META says at `now`: the host name munin-async greets with, the
/// spool's interval and retention, `complete` as complete_until, and each listed
/// plugin's rate, last poll's duration and newest sample.
pub(crate) fn pairs<'a>(
    hostname: &str,
    (interval, retain): (u64, u64),
    now: u64,
    complete: u64,
    plugins: impl Iterator<Item = &'a Plugin>,
) -> Vec<(String, String)> {
    let hostname = if hostname.is_empty() {
        "unknown"
    } else {
        hostname
    };
    let mut pairs = vec![
        (key::HOSTNAME.to_string(), hostname.to_string()),
        (key::INTERVAL_SIZE.to_string(), interval.to_string()),
        (key::INTERVAL_KEEP.to_string(), retain.to_string()),
        (key::LAST_RUN_TIME.to_string(), now.to_string()),
        (key::COMPLETE_UNTIL.to_string(), complete.to_string()),
    ];
    for p in plugins.filter(|p| p.listed()) {
        pairs.push((key::plugin_rate(p.name()), p.rate().to_string()));
        if let Some(took) = p.took() {
            pairs.push((key::poll_ms(p.name()), took.as_millis().to_string()));
        }
        if let Some(t) = p.last() {
            pairs.push((key::last_timestamp(p.name()), t.to_string()));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asyncd::registry::Registry;

    #[test]
    fn a_promise_stands_whether_its_write_lands_or_not() {
        let dir = Path::new("/nonexistent");
        let mut l = Ledger::default();
        assert!(l.news(100, false), "a new spool says its contents once");
        l.promise(100, true);
        assert!(l.writing() && !l.news(100, true) && l.news(101, true));
        assert!(
            !l.news(101, false),
            "no listed plugin: complete_until alone is no news"
        );
        let failed = WriteError::Io {
            path: dir.into(),
            source: std::io::Error::other("disk full"),
        };
        l.written(dir, Err(failed));
        assert_eq!(l.said(), Some(100));
        assert!(!l.writing() && l.news(100, true), "written again");
        l.promise(100, false);
        l.written(dir, Ok(()));
        assert!(!l.news(100, true) && !l.failing);
    }

    #[test]
    fn writes_are_a_gap_apart_and_news_held_back_is_written_after_it() {
        let gap = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut p = Pacing::default();
        assert!(p.go(t0, gap, false));
        p.wrote(t0);
        assert_eq!(p.wake(gap), None);
        p.stir();
        assert!(!p.go(t0 + gap / 2, gap, false));
        assert_eq!(p.wake(gap), Some(t0 + gap));
        assert!(
            p.go(t0 + gap / 2, gap, true),
            "a stop's write is never held back"
        );
        assert_eq!(p.wake(gap), None);
        // Nothing stirred within the gap: nothing to write after it either.
        assert!(!p.go(t0 + gap / 2, gap, false));
        assert_eq!(p.wake(gap), None);
    }

    #[test]
    fn spool_meta_says_each_listed_plugins_rate_duration_and_newest_sample() {
        let mut r = Registry::new();
        let a = r.list(0, "a", 1000, 300, || (Some(900), None));
        r.list(0, "b", 1000, 60, || (None, Some(Duration::from_millis(7))));
        r.list(0, "gone", 1000, 300, || (None, None));
        r.unlist_all();
        r.list(0, "a", 1000, 300, || (None, None));
        r.list(0, "b", 1000, 60, || (None, None));
        r.take_due(1000, |_| 0);
        r.hand_out(1, 1000, Instant::now());
        r.sampled(a, Duration::from_millis(12), (1000, false, 300));
        let got = pairs("", (86400, 7), 1001, 999, r.of_spool(0));
        let want: Vec<(String, String)> = [
            ("hostname", "unknown"),
            ("interval_size", "86400"),
            ("interval_keep", "7"),
            ("lastruntime", "1001"),
            ("complete_until", "999"),
            ("plugin_rates/a", "300"),
            ("poll_ms/a", "12"),
            ("last-timestamp.a", "1000"),
            ("plugin_rates/b", "60"),
            ("poll_ms/b", "7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
