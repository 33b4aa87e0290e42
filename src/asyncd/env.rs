//! What munin-asyncd's core takes from the world: the time, and the waiting for it, a way
//! to tell systemd, and how long it waits for things ([`Timings`]). The daemon gives it
//! the system's ([`Env::system`]); a test gives it a clock it moves by hand (`Fake`, in tests:
//! when nothing is under way, a wait moves it on to the wake asked for, as tokio's paused
//! clock does) and timings of its choosing, and runs the shipped driving loop in-process.
//! Stop and reload are not read from here: they come to the driving thread as
//! [`Input`]s, like every other event; once it has heard a stop, [`Env::stopping`] tells
//! the workers.

use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(test)]
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::asyncd::msg::Input;
use crate::asyncd::signals;

/// What a wait of the driving thread gave.
pub(crate) enum Waited {
    Input(Input),
    /// The time waited for has come.
    Timeout,
    /// Nothing more will come: every sender is gone, or a test's fake clock reached the
    /// end it was given.
    Closed,
}

/// Both clocks the core reads: seconds since the epoch (sample times, slots) and a
/// monotonic instant (deadlines, how long a poll has run); and the driving thread's wait.
pub(crate) trait Clock: Send + Sync {
    /// The wall clock.
    fn wall(&self) -> SystemTime;
    /// A monotonic instant.
    fn instant(&self) -> Instant;
    /// Waits for the next input until `until` (by this clock). `idle` says whether
    /// anything is under way that will send one (a poll, a listing, a write): a clock a
    /// test moves may move on to `until` when nothing is.
    fn wait(&self, inputs: &Receiver<Input>, until: Instant, idle: &dyn Fn() -> bool) -> Waited;
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
    fn wait(&self, inputs: &Receiver<Input>, until: Instant, _: &dyn Fn() -> bool) -> Waited {
        let wait = until.saturating_duration_since(Instant::now());
        recv(inputs, wait.max(Duration::from_millis(1)))
    }
}

/// An input within `wait` of real time.
fn recv(inputs: &Receiver<Input>, wait: Duration) -> Waited {
    match inputs.recv_timeout(wait) {
        Ok(input) => Waited::Input(input),
        Err(RecvTimeoutError::Timeout) => Waited::Timeout,
        Err(RecvTimeoutError::Disconnected) => Waited::Closed,
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
    /// How long a stop waits for polls under way, so it ends within a second when no write
    /// waits for the disk.
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

/// The clock, systemd, the timings, and whether the driving thread heard a stop.
#[derive(Clone)]
pub struct Env {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timings: Timings,
    stopping: Arc<AtomicBool>,
    notify: Arc<dyn Fn(&str) + Send + Sync>,
    /// Where the wall clock was last seen against the monotonic one (see [`Env::stepped`]).
    watch: Arc<Mutex<Option<(SystemTime, Instant)>>>,
}

impl Env {
    /// The system clock and systemd's notify socket.
    pub fn system() -> Env {
        Env {
            clock: Arc::new(SystemClock),
            timings: Timings::default(),
            stopping: Arc::new(AtomicBool::new(false)),
            notify: Arc::new(signals::sd_notify),
            watch: Arc::default(),
        }
    }

    /// Whether the wall clock stepped since the last look (by any clone), and by how many
    /// seconds (back when negative): it moved [`STEP`] or more from where the monotonic
    /// clock says it should be. A clock set by hand or by NTP (a board without a real-time
    /// clock boots with an old time), or a machine waking from suspend (the monotonic
    /// clock stood still). The first look sees none.
    pub(crate) fn stepped(&self) -> Option<i64> {
        let (wall, instant) = (self.clock.wall(), self.now());
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        let (last_wall, last_instant) = watch.replace((wall, instant))?;
        let expected = last_wall.checked_add(instant.saturating_duration_since(last_instant))?;
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let off = match wall.duration_since(expected) {
            Ok(ahead) => millis(ahead),
            Err(behind) => -millis(behind.duration()),
        };
        (off.unsigned_abs() >= u64::try_from(STEP.as_millis()).unwrap_or(u64::MAX))
            .then_some(off / 1000)
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

    /// Whether the driving thread heard a stop: polls not started yet are not started.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The driving thread heard a stop (see [`Env::stopping`]).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits for the driving thread's next input until `until` (see [`Clock::wait`]).
    pub(crate) fn wait(
        &self,
        inputs: &Receiver<Input>,
        until: Instant,
        idle: &dyn Fn() -> bool,
    ) -> Waited {
        self.clock.wait(inputs, until, idle)
    }

    /// Tells systemd something (`READY=1`, `STATUS=…`).
    pub(crate) fn notify(&self, state: &str) {
        (self.notify)(state)
    }
}

/// How far the wall clock may move from the monotonic clock between two looks before it
/// counts as a step: NTP slews the clock by at most 0.5 ms a second, 1.8 s over the hour
/// the driving loop sleeps at most.
pub(crate) const STEP: Duration = Duration::from_secs(5);

/// A clock a test moves by hand, or the driving loop's wait moves while nothing is under
/// way, up to the end the test gives.
#[cfg(test)]
pub(crate) struct Fake {
    base: Instant,
    unix0: u64,
    /// Milliseconds the clock was moved on.
    moved: AtomicU64,
    /// Seconds the wall clock alone was stepped by (forward or back).
    stepped: AtomicI64,
    /// The second at which a wait with nothing under way ends the loop ([`Waited::Closed`])
    /// instead of moving the clock on.
    end: std::sync::Mutex<Option<u64>>,
    /// The seconds a wait moved the clock on to.
    woke: std::sync::Mutex<Vec<u64>>,
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
            stepped: AtomicI64::new(0),
            end: std::sync::Mutex::new(None),
            woke: std::sync::Mutex::new(Vec::new()),
            told: std::sync::Mutex::new(Vec::new()),
        });
        let n = fake.clone();
        let env = Env {
            watch: Arc::default(),
            clock: fake.clone(),
            timings: Timings::default(),
            stopping: Arc::new(AtomicBool::new(false)),
            notify: Arc::new(move |state| n.told.lock().unwrap().push(state.to_string())),
        };
        (fake, env)
    }

    /// From now on, a wait with nothing under way once the clock has reached `end` ends
    /// the loop; says the seconds the waits moved the clock on to since the last call.
    pub(crate) fn end_at(&self, end: u64) -> Vec<u64> {
        *self.end.lock().unwrap() = Some(end);
        std::mem::take(&mut *self.woke.lock().unwrap())
    }

    /// The seconds the waits moved the clock on to since the last call.
    pub(crate) fn take_woke(&self) -> Vec<u64> {
        std::mem::take(&mut *self.woke.lock().unwrap())
    }

    /// Steps the wall clock alone by `secs` (back when negative), as a clock set by hand
    /// or by NTP is; the monotonic clock goes on as it was.
    pub(crate) fn step_wall(&self, secs: i64) {
        self.stepped.fetch_add(secs, Ordering::SeqCst);
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
        let secs = self
            .unix0
            .saturating_add_signed(self.stepped.load(Ordering::SeqCst));
        UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_millis(self.moved.load(Ordering::SeqCst))
    }
    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.moved.load(Ordering::SeqCst))
    }
    /// What came already; else, with something under way, what comes within 10 s of real
    /// time (a test's fake munin-node answers in real time; nothing coming is a failure);
    /// else the clock moves on to `until`, or the loop ends at the test's end.
    fn wait(&self, inputs: &Receiver<Input>, until: Instant, idle: &dyn Fn() -> bool) -> Waited {
        if let Ok(input) = inputs.try_recv() {
            return Waited::Input(input);
        }
        if until <= self.instant() {
            // Due now: as the system clock's wait does, a millisecond for what may come.
            return recv(inputs, Duration::from_millis(1));
        }
        if !idle() {
            return match recv(inputs, Duration::from_secs(10)) {
                Waited::Timeout => panic!("nothing came back within 10 s while work was under way"),
                waited => waited,
            };
        }
        let unix = |c: &Fake| {
            c.wall()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        if self
            .end
            .lock()
            .unwrap()
            .is_some_and(|end| unix(self) >= end)
        {
            return Waited::Closed;
        }
        self.advance_to(until);
        self.woke.lock().unwrap().push(unix(self));
        Waited::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_of_the_wall_clock_is_seen_once_and_a_drift_is_not() {
        let (fake, env) = Fake::new(1_000_000);
        assert_eq!(env.stepped(), None);
        fake.advance(Duration::from_secs(3600));
        assert_eq!(env.stepped(), None);
        fake.step_wall(-120);
        assert_eq!(env.clone().stepped(), Some(-120), "seen by a clone");
        assert_eq!(env.stepped(), None, "seen once");
        fake.step_wall(4);
        assert_eq!(env.stepped(), None, "under STEP");
        fake.step_wall(86_400);
        fake.advance(Duration::from_secs(10));
        assert_eq!(env.stepped(), Some(86_400));
        assert_eq!(env.unix(), 1_000_000 + 3600 - 120 + 4 + 86_400 + 10);
    }

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
        assert!(!env.stopping());
        env.clone().stop();
        assert!(env.stopping(), "a stop is seen by every clone");
        env.notify("READY=1");
        assert_eq!(*fake.told.lock().unwrap(), ["READY=1"]);
    }
}
