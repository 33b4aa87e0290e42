//! What munin-asyncd's core takes from the world: the time, whether to stop or reload, a
//! way to tell systemd, and how long it waits for things ([`Timings`]). The daemon gives it
//! the system's ([`Env::system`]); a test gives it a clock it moves by hand, flags it sets
//! and timings of its choosing, and runs a node's loop in-process.

#[cfg(test)]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::asyncd::signals;

/// Both clocks the core reads: seconds since the epoch (sample times, slots) and a
/// monotonic instant (deadlines, how long a poll has run).
pub(crate) trait Clock: Send + Sync {
    /// The wall clock.
    fn wall(&self) -> SystemTime;
    /// A monotonic instant.
    fn instant(&self) -> Instant;
}

/// The system's clocks.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// How long the core waits for things, and how often it looks after them. Timeouts of a
/// request to munin-node are the command line's (`--timeout`, `--max-backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timings {
    /// A request running this long holds its connection as if hung: when every poll under
    /// way has run so long and polls wait, more may go out at once.
    pub(crate) stuck: Duration,
    /// How often old spool files are looked for.
    pub(crate) cleanup_every: Duration,
    /// How often the plugin list is read again.
    pub(crate) relist_every: Duration,
    /// How long a connection to munin-node is used for polls: munin-node ends each session
    /// after its `global_timeout` (900 s by default) and runs no plugin in its last 5 s.
    pub(crate) keep_connection: Duration,
    /// The first wait before asking a munin-node that did not answer again (doubled up to
    /// `--max-backoff` while it does not).
    pub(crate) first_backoff: Duration,
    /// The shortest time between two SPOOL-META writes of one node.
    pub(crate) publish_every: Duration,
    /// The same while a round is under way (polls waiting for a connection or not back
    /// yet): each write would only move `complete_until` on by a second (a waiting poll
    /// will take a later sample), and a site's thousand nodes, their rounds coming in
    /// over a few seconds, each wrote once a second for nothing (a rename and a sync
    /// each). The write once the round is in is not held back.
    pub(crate) publish_in_round: Duration,
    /// How long a stop waits for polls under way, so it still ends within a second.
    pub(crate) stop_grace: Duration,
    /// How long a stop waits for writes under way (samples waiting for their group's
    /// sync, SPOOL-META): the disk, not a plugin, so they are waited for longer.
    pub(crate) write_grace: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            stuck: Duration::from_secs(3),
            cleanup_every: Duration::from_secs(600),
            relist_every: Duration::from_secs(3600),
            keep_connection: Duration::from_secs(300),
            first_backoff: Duration::from_secs(1),
            publish_every: Duration::from_secs(1),
            publish_in_round: Duration::from_secs(10),
            stop_grace: Duration::from_millis(700),
            write_grace: Duration::from_secs(10),
        }
    }
}

/// A flag a closure reads.
type Flag = Arc<dyn Fn() -> bool + Send + Sync>;

/// The clock, the stop and reload requests, systemd, and the timings.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timings: Timings,
    stop: Flag,
    reload: Flag,
    notify: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Env {
    /// The system clock, SIGTERM/SIGINT and SIGHUP, and systemd's notify socket.
    pub(crate) fn system() -> Env {
        Env {
            clock: Arc::new(SystemClock),
            timings: Timings::default(),
            stop: Arc::new(signals::terminate_requested),
            reload: Arc::new(signals::take_reload),
            notify: Arc::new(signals::sd_notify),
        }
    }

    /// Seconds since the epoch.
    pub(crate) fn unix(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// A monotonic instant.
    pub(crate) fn now(&self) -> Instant {
        self.clock.instant()
    }

    /// Whether a stop was asked for.
    pub(crate) fn stopping(&self) -> bool {
        (self.stop)()
    }

    /// Whether a reload was asked for since the last call.
    pub(crate) fn take_reload(&self) -> bool {
        (self.reload)()
    }

    /// Tells systemd something (`READY=1`, `STATUS=…`).
    pub(crate) fn notify(&self, state: &str) {
        (self.notify)(state)
    }
}

/// A clock a test moves by hand, and stop and reload flags it sets.
#[cfg(test)]
pub(crate) struct Fake {
    base: Instant,
    unix0: u64,
    /// Milliseconds the clock was moved on.
    moved: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) reload: AtomicBool,
    /// What was told to systemd.
    pub(crate) told: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Fake {
    /// A clock at `unix0` seconds since the epoch, and an [`Env`] that reads it.
    pub(crate) fn new(unix0: u64) -> (Arc<Fake>, Env) {
        let fake = Arc::new(Fake {
            base: Instant::now(),
            unix0,
            moved: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            reload: AtomicBool::new(false),
            told: std::sync::Mutex::new(Vec::new()),
        });
        let (s, r, n) = (fake.clone(), fake.clone(), fake.clone());
        let env = Env {
            clock: fake.clone(),
            timings: Timings::default(),
            stop: Arc::new(move || s.stop.load(Ordering::SeqCst)),
            reload: Arc::new(move || r.reload.swap(false, Ordering::SeqCst)),
            notify: Arc::new(move |state| n.told.lock().unwrap().push(state.to_string())),
        };
        (fake, env)
    }

    /// Moves the clock on.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.moved.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock on to `at`, if that is later.
    pub(crate) fn advance_to(&self, at: Instant) {
        let now = self.instant();
        if at > now {
            self.advance(at - now);
        }
    }
}

#[cfg(test)]
impl Clock for Fake {
    fn wall(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(self.unix0)
            + Duration::from_millis(self.moved.load(Ordering::SeqCst))
    }
    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.moved.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_clock_moves_both_clocks_together_and_only_when_told() {
        let (fake, env) = Fake::new(1_000_000);
        let t0 = env.now();
        assert_eq!(env.unix(), 1_000_000);
        fake.advance(Duration::from_millis(1500));
        assert_eq!(env.unix(), 1_000_001);
        assert_eq!(env.now() - t0, Duration::from_millis(1500));
        fake.advance_to(t0 + Duration::from_secs(60));
        assert_eq!(env.unix(), 1_000_060);
        fake.advance_to(t0);
        assert_eq!(env.unix(), 1_000_060, "never back");
        assert!(!env.stopping() && !env.take_reload());
        fake.reload.store(true, Ordering::SeqCst);
        assert!(env.take_reload() && !env.take_reload());
        env.notify("READY=1");
        assert_eq!(*fake.told.lock().unwrap(), ["READY=1"]);
    }
}
