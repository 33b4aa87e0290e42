//! The worker threads every node's polls share, and each node's idle connections.
//!
//! One munin-asyncd may poll a whole site (`--config`, hundreds of munin-nodes). A thread
//! and a connection per node and plugin slot would cost thousands of threads; instead all
//! nodes hand their polls to one queue, and workers are started only while polls wait
//! for one, up to [`MAX_WORKERS`], and end after [`IDLE_EXIT`] without work. A node's
//! coordinator decides how many of its polls may be under way at once (its
//! `--connections`, more while they hang), so one node cannot take every worker.
//! Connections stay with their node: a worker takes an idle one of the job's node, or
//! opens one, and gives it back after a good poll (at most `--connections` are kept).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::asyncd::node::{NodeConn, NodeError, Unended};
use crate::log_error;

/// The most worker threads of the whole daemon.
pub(crate) const MAX_WORKERS: usize = 128;
/// A worker with nothing to do for this long ends.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(60);

/// One munin-node as the workers see it: where it is, and its idle connections.
pub(crate) struct NodeLink {
    /// HOST:PORT.
    pub(crate) host: String,
    /// The deadline of one request.
    pub(crate) timeout: Duration,
    /// `--update-rate`: told to the master for a config that declares no rate.
    pub(crate) default_rate: u64,
    /// How many idle connections are kept.
    keep: usize,
    /// How long a connection is used at most (see [`crate::asyncd::env::Timings`]).
    keep_for: Duration,
    /// How long a connection is used now, in milliseconds: `keep_for`, or less once
    /// munin-node ended a session under a poll (see [`NodeLink::session_ended`]).
    life: AtomicU64,
    idle: Mutex<Vec<NodeConn>>,
    /// The node's replies that ended without their `.`, on any of its connections.
    pub(crate) unended: Arc<Unended>,
}

impl NodeLink {
    /// A node at `host`, keeping at most `keep` idle connections, each for `keep_for`
    /// from when it was opened.
    pub(crate) fn new(
        host: &str,
        timeout: Duration,
        (keep, keep_for): (usize, Duration),
        default_rate: u64,
    ) -> NodeLink {
        NodeLink {
            host: host.to_string(),
            timeout,
            default_rate,
            keep: keep.max(1),
            keep_for,
            life: AtomicU64::new(millis(keep_for)),
            idle: Mutex::new(Vec::new()),
            unended: Arc::new(Unended::new(host)),
        }
    }

    /// A new connection, its capabilities announced (as a 2.0 master announces them;
    /// munin-node then shows multigraph plugins and may put values in a config).
    pub(crate) fn connect(&self) -> Result<NodeConn, NodeError> {
        let mut conn = NodeConn::connect_counted(&self.host, self.timeout, self.unended.clone())?;
        conn.cap("multigraph dirtyconfig")?;
        Ok(conn)
    }

    /// An idle connection opened less than its life before `now`, if there is one (older
    /// ones are closed).
    pub(crate) fn take(&self, now: Instant) -> Option<NodeConn> {
        self.close_expiring_by(now);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Closes the idle connections that will have passed their time by `at` (when the
    /// next poll is due): each holds a munin-node process (about 1.2 MiB of its own) that
    /// would wait for nothing. With plugins at 300 s, the usual rate, no connection is
    /// kept between rounds; at 60 s, they are.
    pub(crate) fn close_expiring_by(&self, at: Instant) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let before = idle.len();
        let life = self.life();
        idle.retain(|c| at.saturating_duration_since(c.born) < life);
        before - idle.len()
    }

    /// How long a connection is used now.
    pub(crate) fn life(&self) -> Duration {
        Duration::from_millis(self.life.load(Ordering::SeqCst))
    }

    /// munin-node ended the session of a connection kept `age` under a poll: its
    /// `global_timeout` (15 minutes unless set) is shorter than a connection's life, or it
    /// was restarted. From now on a connection is used for half that age at most, so no
    /// poll meets a session's last 5 s (munin-node runs no plugin then, and cuts one
    /// running short) nor its end. Says the new life when it shrank. One restart can
    /// only shorten it until the list is read again ([`NodeLink::full_life`]).
    pub(crate) fn session_ended(&self, age: Duration) -> Option<Duration> {
        let half = millis(age / 2);
        let before = self.life.fetch_min(half, Ordering::SeqCst);
        (half < before).then(|| Duration::from_millis(half))
    }

    /// Back to the full life (at each reading of the plugin list, hourly and at SIGHUP):
    /// what a restart taught is forgotten; a short `global_timeout` is met once more.
    pub(crate) fn full_life(&self) {
        self.life.store(millis(self.keep_for), Ordering::SeqCst);
    }

    /// Gives a connection back after a good poll (closed if enough are idle), its read
    /// buffer freed while it waits: 4 KiB a connection, 16 MiB at a thousand nodes.
    /// Not one on which a reply was taken as ended without its `.`.
    pub(crate) fn give_back(&self, mut conn: NodeConn) {
        if !conn.in_step() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            conn.release();
            idle.push(conn);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A unit of work for a worker.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// The workers all nodes share.
pub(crate) struct Workers {
    tx: Mutex<Sender<Task>>,
    rx: Arc<Mutex<Receiver<Task>>>,
    /// Workers running, and those waiting for a task.
    running: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
    /// Tasks sent and not yet taken.
    queued: Arc<AtomicUsize>,
    max: usize,
}

impl Workers {
    /// No workers yet; at most `max` at once.
    pub(crate) fn new(max: usize) -> Workers {
        let (tx, rx) = channel();
        Workers {
            tx: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            running: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    /// Runs `task` on a worker: an idle one, or a new one while there are fewer than the
    /// most. When the system refuses a thread, the task waits for a running worker (and
    /// with none at all, it is run here).
    pub(crate) fn run(&self, task: Task) {
        let queued = self.queued.fetch_add(1, Ordering::SeqCst) + 1;
        if queued > self.idle.load(Ordering::SeqCst)
            && self.running.load(Ordering::SeqCst) < self.max
            && !self.spawn()
            && self.running.load(Ordering::SeqCst) == 0
        {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            task();
            return;
        }
        let sent = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(task);
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// How many workers run now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn spawn(&self) -> bool {
        let (rx, running, idle, queued) = (
            self.rx.clone(),
            self.running.clone(),
            self.idle.clone(),
            self.queued.clone(),
        );
        running.fetch_add(1, Ordering::SeqCst);
        let mine = running.clone();
        // Named, for `top -H` and perf.
        let spawned = thread::Builder::new().name("worker".into()).spawn(move || {
            loop {
                idle.fetch_add(1, Ordering::SeqCst);
                let task = match rx.lock() {
                    Ok(rx) => rx.recv_timeout(IDLE_EXIT),
                    Err(_) => Err(RecvTimeoutError::Disconnected),
                };
                idle.fetch_sub(1, Ordering::SeqCst);
                match task {
                    Ok(task) => {
                        queued.fetch_sub(1, Ordering::SeqCst);
                        task();
                    }
                    // A task sent as this worker timed out saw it idle and started no
                    // other: stay for it. (`run` adds to `queued` before it reads `idle`,
                    // this reads `queued` after taking from `idle`: one of them sees the
                    // other.)
                    Err(RecvTimeoutError::Timeout) if queued.load(Ordering::SeqCst) > 0 => {}
                    Err(_) => break,
                }
            }
            mine.fetch_sub(1, Ordering::SeqCst);
        });
        match spawned {
            Ok(_) => true,
            Err(e) => {
                running.fetch_sub(1, Ordering::SeqCst);
                log_error!(
                    "cannot start one more worker thread ({} running): {e}",
                    running.load(Ordering::SeqCst)
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn tasks_run_on_at_most_max_threads_and_all_of_them_run() {
        let w = Workers::new(4);
        let done = Arc::new(AtomicU64::new(0));
        let (tx, rx) = channel();
        for _ in 0..40 {
            let (done, tx) = (done.clone(), tx.clone());
            w.run(Box::new(move || {
                thread::sleep(Duration::from_millis(20));
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(());
            }));
            assert!(w.running() <= 4);
        }
        let start = Instant::now();
        for _ in 0..40 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 40);
        // Four at a time: about ten rounds of 20 ms, not forty.
        assert!(
            start.elapsed() < Duration::from_millis(600),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn an_idle_worker_takes_the_next_task_instead_of_a_new_thread() {
        let w = Workers::new(8);
        for _ in 0..5 {
            let (tx, rx) = channel();
            w.run(Box::new(move || {
                let _ = tx.send(());
            }));
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Let the worker go back to waiting.
            let t = Instant::now();
            while w.idle.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(w.running(), 1);
    }

    #[test]
    fn a_connection_is_kept_for_its_time_and_no_longer_and_no_more_than_keep() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming().take(5) {
                let mut s = s.unwrap();
                s.write_all(b"# munin node at x\n").unwrap();
                held.push(s);
            }
            thread::sleep(Duration::from_secs(5));
        });
        let link = NodeLink::new(
            &addr,
            Duration::from_secs(5),
            (2, Duration::from_secs(300)),
            300,
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            let mut c = NodeConn::connect(&addr, Duration::from_secs(5)).unwrap();
            c.born = t0;
            link.give_back(c);
        }
        assert_eq!(
            link.idle.lock().unwrap().len(),
            2,
            "at most --connections kept"
        );
        // None is closed by a poll due before its time is up; one due after, all.
        assert_eq!(link.close_expiring_by(t0 + Duration::from_secs(299)), 0);
        assert!(link.take(t0 + Duration::from_secs(299)).is_some());
        let mut c = NodeConn::connect(&addr, Duration::from_secs(5)).unwrap();
        c.born = t0;
        link.give_back(c);
        assert_eq!(link.close_expiring_by(t0 + Duration::from_secs(300)), 2);
        // The other one is past its time: closed, not given.
        assert!(link.take(t0 + Duration::from_secs(300)).is_none());
        assert!(link.idle.lock().unwrap().is_empty());

        // A session ended under a poll at 100 s: half that from now on, only shorter.
        assert_eq!(
            link.session_ended(Duration::from_secs(100)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(link.session_ended(Duration::from_secs(120)), None);
        assert_eq!(link.life(), Duration::from_secs(50));
        let mut c = NodeConn::connect(&addr, Duration::from_secs(5)).unwrap();
        c.born = t0;
        link.give_back(c);
        assert!(link.take(t0 + Duration::from_secs(50)).is_none());
        link.full_life();
        assert_eq!(link.life(), Duration::from_secs(300));
    }
}
