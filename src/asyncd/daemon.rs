//! munin-asyncd's main loop: poll munin-node on every plugin's own schedule and spool
//! each sample.
//!
//! Each munin-node (one, or a site's from `--config`, see [`crate::asyncd::fanout`]) has a
//! [`Coordinator`]: its plugin schedule, its polls under way, its spools. One thread, the
//! caller's, drives them all: it turns each node when its next event is due or when a
//! poll or a plugin list comes back, and otherwise sleeps (signals wake it). The polls
//! themselves run on the worker threads all nodes share ([`crate::asyncd::workers`]), up
//! to `--connections` of a node's at once, each on a connection of its own, so a slow
//! plugin holds one connection and delays no other plugin. A sample's time is when its
//! request was sent. A coordinator knows which requests are in flight, and it publishes
//! `complete_until` in SPOOL-META: every sample at or before that time is in the spool or
//! has failed. munin-async serves nothing newer, so the master's cursor never passes a
//! sample still being taken.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::commit::{Commit, Committer};
use crate::asyncd::coordinator::Coordinator;
use crate::asyncd::env::{Env, Waited};
use crate::asyncd::msg::{Event, Input, Reply};
use crate::asyncd::node_spool::open_spool;
use crate::asyncd::signals::{self, Request, Subscriber};
use crate::asyncd::workers::{Workers, MAX_WORKERS};
use crate::spool::writer::{Durability, WriteError};
use crate::{log_error, log_info, log_notice, log_warn};

/// Polls every node until a [`Request::Stop`]. Every node's spool is opened (and locked)
/// first, so a conflict is refused before anything runs. `env` gives the clock and
/// systemd ([`Env::system`]); `subscribe` is handed the function that takes the
/// operator's requests into the driving loop (the binary gives [`signals::subscribe`],
/// which calls it on SIGTERM, SIGINT and SIGHUP).
pub fn run_all(
    cfgs: &[DaemonConfig],
    env: Env,
    subscribe: impl FnOnce(Subscriber),
) -> Result<(), WriteError> {
    let mut roots = Vec::with_capacity(cfgs.len());
    for cfg in cfgs {
        roots.push(open_spool(
            &cfg.spooldir,
            "",
            (cfg.interval, env.unix()),
            cfg.durability,
        )?);
    }
    // Ready once the spools are open and repaired, even with munin-node still down: the
    // daemon waits for it, and Debian's init script gives up after 15 s.
    env.notify("READY=1\nSTATUS=reading the plugin lists");
    match cfgs {
        [one] => log_notice!(
            "munin-asyncd {} started: munin-node at {} into {}",
            env!("CARGO_PKG_VERSION"),
            one.host,
            one.spooldir.display()
        ),
        many => log_notice!(
            "munin-asyncd {} started: {} munin-nodes",
            env!("CARGO_PKG_VERSION"),
            many.len()
        ),
    }
    raise_descriptor_limit(cfgs);
    let (tx, rx) = channel();
    let requests = std::sync::Mutex::new(tx.clone());
    subscribe(Box::new(move |request| {
        let input = match request {
            Request::Stop => Input::Stop,
            Request::Reload => Input::Reload,
        };
        let _ = requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(input);
    }));
    let workers = Workers::new(MAX_WORKERS);
    // `--durability record`: samples are synced a group at a time (see `commit`).
    let group = cfgs
        .iter()
        .any(|c| c.durability == Durability::Record)
        .then(Committer::start)
        .flatten();
    let mut nodes: Vec<Coordinator> = cfgs
        .iter()
        .zip(roots)
        .enumerate()
        .map(|(i, (cfg, root))| {
            let reply = Reply {
                node: i,
                tx: tx.clone(),
            };
            let commit = Commit::for_durability(cfg.durability == Durability::Record, &group);
            Coordinator::new(cfg, root, &workers, env.clone(), reply, commit)
        })
        .collect();
    drop(tx);
    let beat = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        // Told (by its channel closing) when the loop is over.
        let (over, watched) = channel::<()>();
        if let Some(every) = signals::watchdog_interval() {
            let beat = &beat;
            if let Err(e) = thread::Builder::new()
                .name("watchdog".into())
                .spawn_scoped(scope, move || watchdog(every, started, beat, &watched))
            {
                log_error!("cannot start the watchdog's thread: {e}; systemd will restart us");
            }
        }
        let half = signals::watchdog_interval().map(|w| w / 2);
        drive(&mut nodes, &rx, &env, half, || {
            beat.store(millis(started), Ordering::Relaxed)
        });
        drop(over);
    });
    Ok(())
}

/// Turns every node until a stop ([`turn_until_stop`]), then winds them down
/// ([`wind_down`]).
pub(crate) fn drive(
    nodes: &mut [Coordinator],
    inputs: &Receiver<Input>,
    env: &Env,
    watchdog_half: Option<Duration>,
    beat: impl Fn(),
) {
    if turn_until_stop(nodes, inputs, env, watchdog_half, beat) {
        wind_down(nodes, inputs, env);
    }
}

/// The wall clock stepped `by` seconds (back when negative): logged once, counted in each
/// node's health. Nothing else needs doing (docs/daemon.md, "Clock steps"): the schedule's
/// slots are seconds of the wall clock, so after a step back the next polls wait for the
/// clock to reach their slots again, all later than every sample spooled; after a step
/// forward every plugin overdue is polled at once, then on its slots.
fn clock_stepped(nodes: &mut [Coordinator], by: i64) {
    if by < 0 {
        log_warn!(
            "the wall clock stepped back {} s: no sample is taken until it is past the \
             newest already spooled (the slots in between are not polled: their samples \
             would come before ones a master may already have)",
            by.unsigned_abs()
        );
    } else {
        log_notice!(
            "the wall clock stepped forward {by} s (set by hand or by NTP, or the machine \
             slept): overdue plugins are polled now, then on their slots"
        );
    }
    for node in nodes.iter_mut() {
        node.clock_stepped();
    }
}

/// Turns every node: each when its next event is due or when an event of its comes,
/// waiting in between through `env`'s clock; `beat` is called each time round (every
/// quarter of the watchdog interval `half` at least). A reload has every node read its
/// plugin list again. Ends at [`Input::Stop`] (`true`, and [`Env::stopping`] from then
/// on) or when nothing more can come (`false`).
pub(crate) fn turn_until_stop(
    nodes: &mut [Coordinator],
    inputs: &Receiver<Input>,
    env: &Env,
    watchdog_half: Option<Duration>,
    beat: impl Fn(),
) -> bool {
    // When each node next needs turning, and a heap of (when, node) to find the earliest
    // (an entry whose time is no longer the node's is stale and skipped).
    let mut due: Vec<Instant> = vec![env.now(); nodes.len()];
    let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = due
        .iter()
        .enumerate()
        .map(|(i, &t)| Reverse((t, i)))
        .collect();
    let mut woken: Vec<usize> = Vec::new();
    loop {
        beat();
        if let Some(by) = env.stepped() {
            clock_stepped(nodes, by);
        }
        let now = env.now();
        while let Some(&Reverse((at, i))) = heap.peek() {
            if at > now {
                break;
            }
            heap.pop();
            if due[i] == at {
                woken.push(i);
            }
        }
        woken.sort_unstable();
        woken.dedup();
        for i in woken.drain(..) {
            let Some(node) = nodes.get_mut(i) else {
                continue;
            };
            due[i] = node.turn();
            heap.push(Reverse((due[i], i)));
        }
        // An entry a later turn replaced is dropped, not waited for: a node's wake moves
        // earlier and later as a round comes in, and the loop woke at each stale time.
        while heap.peek().is_some_and(|&Reverse((at, i))| due[i] != at) {
            heap.pop();
        }
        let mut until = heap
            .peek()
            .map_or(now + Duration::from_secs(3600), |r| r.0 .0);
        if let Some(half) = watchdog_half {
            // Beat twice per watchdog look, so a look never finds the beat just stale.
            until = until.min(now + half / 2);
        }
        let idle = || nodes.iter().all(|n| !n.busy());
        let first = match env.wait(inputs, until, &idle) {
            Waited::Input(input) => input,
            Waited::Timeout => continue,
            Waited::Closed => return false,
        };
        let mut stop = false;
        for input in std::iter::once(first).chain(std::iter::from_fn(|| inputs.try_recv().ok())) {
            match input {
                Input::Node(i, event) => {
                    if let Some(node) = nodes.get_mut(i) {
                        node.handle(event);
                        woken.push(i);
                    }
                }
                Input::Reload => {
                    for (i, node) in nodes.iter_mut().enumerate() {
                        node.reload();
                        woken.push(i);
                    }
                }
                Input::Stop => stop = true,
            }
        }
        if stop {
            env.stop();
            return true;
        }
    }
}

/// After a stop: waits for polls under way, up to the timings' `stop_grace` (and writes
/// under way up to `write_grace`, see [`crate::asyncd::env::Timings`]), and has each node
/// publish what is complete.
pub(crate) fn wind_down(nodes: &mut [Coordinator], inputs: &Receiver<Input>, env: &Env) {
    log_info!("stopping");
    env.notify("STOPPING=1");
    // Polls under way may still land: a plugin that ran should not lose its sample.
    // SPOOL-META writes under way end too, before the last one is written.
    // Polls not started yet are not started (see `poll::run_job`).
    let stopped = env.now();
    while nodes.iter().any(|n| n.in_flight() > 0) {
        let writing = nodes.iter().any(|n| n.writing());
        let t = env.timings;
        let deadline = stopped + if writing { t.write_grace } else { t.stop_grace };
        if env.now() >= deadline {
            break;
        }
        match env.wait(inputs, deadline, &|| false) {
            Waited::Input(Input::Node(
                i,
                event @ (Event::Done(_)
                | Event::Written { .. }
                | Event::Published { .. }
                | Event::HealthWritten { .. }),
            )) => {
                if let Some(node) = nodes.get_mut(i) {
                    node.handle(event);
                }
            }
            Waited::Input(_) => {}
            Waited::Timeout | Waited::Closed => break,
        }
    }
    for node in nodes {
        node.finish();
    }
}

/// systemd's watchdog (`WatchdogSec`): pings at half the interval while the driving loop
/// has gone round within that half. A loop stuck for longer goes unpinged, and systemd
/// restarts the daemon. Ends when `over` is closed (the loop is over).
fn watchdog(every: Duration, started: Instant, beat: &AtomicU64, over: &Receiver<()>) {
    let half = every / 2;
    let mut next = Instant::now();
    let mut stuck_said = false;
    loop {
        if Instant::now() >= next {
            next = Instant::now() + half;
            let now = millis(started);
            let limit = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(beat.load(Ordering::Relaxed)) <= limit {
                signals::sd_notify("WATCHDOG=1");
                stuck_said = false;
            } else if !std::mem::replace(&mut stuck_said, true) {
                log_error!("the polling loop is stuck: not pinging systemd's watchdog");
            }
        }
        // Until the next ping, or the loop's end.
        match over.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Raises the soft limit of open descriptors to the hard one (systemd's default soft
/// limit is 1024, its hard one far higher), and warns when even that is short of what the
/// nodes may hold: each its connections, up to four times `--connections` while plugins
/// hang, and a spool file or two being written.
fn raise_descriptor_limit(cfgs: &[DaemonConfig]) {
    let need: u64 = 64
        + cfgs
            .iter()
            .map(|c| 2 + 4 * c.connections as u64)
            .sum::<u64>();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a struct of the right type.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if lim.rlim_cur < need {
        log_warn!(
            "{} munin-node(s) may need {need} open descriptors, the limit is {}: \
             raise it (LimitNOFILE= in the unit, ulimit -n)",
            cfgs.len(),
            lim.rlim_cur
        );
    }
}

/// Milliseconds since `started`.
fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
