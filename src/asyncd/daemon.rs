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
use std::collections::{BTreeMap, BinaryHeap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::commit::Committer;
use crate::asyncd::coordinator::{Coordinator, Event, Reply};
use crate::asyncd::env::Env;
use crate::asyncd::signals;
use crate::asyncd::workers::{Workers, MAX_WORKERS};
use crate::spool::meta::{key, SpoolMeta};
use crate::spool::writer::{Durability, SpoolWriter, WriteError};
use crate::spool::Spool;
use crate::util::clock::system_clock;
use crate::{log_error, log_info, log_notice, log_warn};

/// One node's spool directory.
pub(crate) struct NodeSpool {
    /// The node's name ("" for munin-node's own, spooled into the spool directory itself).
    pub(crate) node: String,
    pub(crate) writer: Arc<SpoolWriter>,
    /// The name SPOOL-META gives munin-async's greeting.
    pub(crate) hostname: String,
    /// Each service's newest sample found when the spool was opened.
    pub(crate) newest: BTreeMap<String, u64>,
    /// The complete_until found when the spool was opened: samples must be later.
    pub(crate) floor: u64,
    /// SPOOL-META as the spool was opened: how long each plugin's polls took before a
    /// restart (`poll_ms/<plugin>`), so the first round after it goes longest first too.
    pub(crate) before: SpoolMeta,
    /// SPOOL-META must be written: the list, a rate or the host name changed (a sample
    /// alone does not: see `Coordinator::finished`).
    pub(crate) dirty: bool,
    /// The complete_until SPOOL-META says.
    pub(crate) said: Option<u64>,
    /// SPOOL-META is being written, on a worker.
    pub(crate) writing: bool,
    /// Writing SPOOL-META failed last time (a full disk, say): logged once until it works.
    pub(crate) meta_failing: bool,
}

/// Whether a node name from munin-node can name a subdirectory: no `/`, no NUL, not `.`
/// or `..` or hidden, printable, at most 200 bytes. Dashes and dots inside are fine.
pub(crate) fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Whether a node munin-node lists (`nodes`) is its own, the one its greeting names.
/// munin-node lowercases the names in `nodes` but not the greeting's.
pub(crate) fn is_own_node(node: &str, greeting: &str) -> bool {
    node.eq_ignore_ascii_case(greeting)
}

/// Opens a node's spool, repairs it, and says what the repair did: the daemon's start on
/// a spool directory (the crash-state exploration runs it on every state it makes).
pub(crate) fn open_spool(
    dir: &Path,
    node: &str,
    interval: u64,
    durability: Durability,
) -> Result<NodeSpool, WriteError> {
    let writer = SpoolWriter::open(dir, interval, durability)?;
    let repaired = writer.repair()?;
    if repaired.files > 0 {
        log_warn!(
            "{}: cut {} bytes of torn records off {} files (an earlier crash)",
            dir.display(),
            repaired.bytes,
            repaired.files
        );
    }
    // A master may have read up to the complete_until published before: no sample may be
    // taken at or before it now, or the master's cursor would already be past it. (Not
    // beyond the present: a clock that went back, or a damaged value, must not stop us.)
    let before = Spool::open(dir).ok().and_then(|s| s.meta().ok());
    let now = system_clock();
    let floor = before
        .as_ref()
        .and_then(|m| m.complete_until())
        .map_or(0, |t| t.min(now));
    // An idle daemon promises complete_until up to its next due poll (see `watermark`); a
    // crash can leave that promise beyond now. Nothing in the spool is newer than now, so
    // it is taken back before anything is polled: the polls of this start may be at or
    // before it.
    if let Some(m) = &before {
        if m.complete_until().is_some_and(|t| t > now) {
            writer.write_meta(&m.pairs_with(key::COMPLETE_UNTIL, &now.to_string()))?;
        }
    }
    // The name munin-async greets the master with: a virtual node's own; for the spool
    // directory itself the one SPOOL-META already says, until munin-node tells us (a
    // restart while munin-node is down must not rename the host to "unknown").
    let hostname = if node.is_empty() {
        before
            .as_ref()
            .and_then(|m| m.hostname().ok().flatten())
            .unwrap_or_default()
            .to_string()
    } else {
        node.to_string()
    };
    Ok(NodeSpool {
        node: node.to_string(),
        writer: Arc::new(writer),
        hostname,
        newest: repaired.newest,
        floor,
        before: before.unwrap_or_default(),
        dirty: true,
        said: None,
        meta_failing: false,
        writing: false,
    })
}

/// Polls every node until SIGTERM or SIGINT. Every node's spool is opened (and locked)
/// first, so a conflict is refused before anything runs.
pub fn run_all(cfgs: &[DaemonConfig]) -> Result<(), WriteError> {
    let mut roots = Vec::with_capacity(cfgs.len());
    for cfg in cfgs {
        roots.push(open_spool(&cfg.spooldir, "", cfg.interval, cfg.durability)?);
    }
    let env = Env::system();
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
    let wake = tx.clone();
    signals::on_signal(move || {
        let _ = wake.send((usize::MAX, Event::Wake));
    });
    let workers = Workers::new(MAX_WORKERS);
    // `--durability record`: samples are synced a group at a time (see `commit`).
    let commit = cfgs
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
            let commit = commit
                .clone()
                .filter(|_| cfg.durability == Durability::Record);
            Coordinator::new(cfg, root, &workers, env.clone(), reply, commit)
        })
        .collect();
    drop(tx);
    let beat = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        if let Some(every) = signals::watchdog_interval() {
            let beat = &beat;
            if let Err(e) = thread::Builder::new()
                .name("watchdog".into())
                .spawn_scoped(scope, move || watchdog(every, started, beat))
            {
                log_error!("cannot start the watchdog's thread: {e}; systemd will restart us");
            }
        }
        let half = signals::watchdog_interval().map(|w| w / 2);
        drive(&mut nodes, &rx, &env, half, || {
            beat.store(millis(started), Ordering::Relaxed)
        });
    });
    Ok(())
}

/// Turns every node until a stop: each when its next event is due or when an event of
/// its comes, sleeping in between; `beat` is called each time round (every quarter of
/// the watchdog interval `half` at least). Then waits for polls under way, up to the
/// timings' `stop_grace` (and writes under way up to `write_grace`, see
/// [`crate::asyncd::env::Timings`]), and has each node publish what is complete.
pub(crate) fn drive(
    nodes: &mut [Coordinator],
    events: &Receiver<(usize, Event)>,
    env: &Env,
    watchdog_half: Option<Duration>,
    beat: impl Fn(),
) {
    // When each node next needs turning, and a heap of (when, node) to find the earliest
    // (an entry whose time is no longer the node's is stale and skipped).
    let mut due: Vec<Instant> = vec![env.now(); nodes.len()];
    let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = due
        .iter()
        .enumerate()
        .map(|(i, &t)| Reverse((t, i)))
        .collect();
    let mut woken: Vec<usize> = Vec::new();
    while !env.stopping() {
        beat();
        if env.take_reload() {
            for (i, node) in nodes.iter_mut().enumerate() {
                node.reload();
                woken.push(i);
            }
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
        let mut until = heap
            .peek()
            .map_or(now + Duration::from_secs(3600), |r| r.0 .0);
        if let Some(half) = watchdog_half {
            // Beat twice per watchdog look, so a look never finds the beat just stale.
            until = until.min(now + half / 2);
        }
        let wait = until.saturating_duration_since(env.now());
        let first = match events.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        for (i, event) in first
            .into_iter()
            .chain(std::iter::from_fn(|| events.try_recv().ok()))
        {
            if let Some(node) = nodes.get_mut(i) {
                node.handle(event);
                woken.push(i);
            }
        }
    }
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
        let left = deadline.saturating_duration_since(env.now());
        match events.recv_timeout(left) {
            Ok((
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
            Ok(_) => {}
            Err(_) => break,
        }
    }
    for node in nodes {
        node.finish();
    }
}

/// systemd's watchdog (`WatchdogSec`): pings at half the interval while the driving loop
/// has gone round within that half. A loop stuck for longer goes unpinged, and systemd
/// restarts the daemon.
fn watchdog(every: Duration, started: Instant, beat: &AtomicU64) {
    let half = every / 2;
    let (tx, woken) = channel::<()>();
    signals::on_signal(move || {
        let _ = tx.send(());
    });
    let mut next = Instant::now();
    let mut stuck_said = false;
    while !signals::terminate_requested() {
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
        // Until the next ping, or a signal.
        let _ = woken.recv_timeout(next.saturating_duration_since(Instant::now()));
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

#[cfg(test)]
mod tests {
    use super::{is_own_node, open_spool, valid_node_name};
    use crate::spool::meta::SpoolMeta;
    use crate::spool::writer::Durability;
    use crate::util::clock::system_clock;

    #[test]
    fn a_start_takes_back_a_complete_until_promised_beyond_now() {
        // What an idle daemon killed in its sleep leaves: a promise to its next due poll.
        let dir = tempfile::tempdir().unwrap();
        let ahead = system_clock() + 3600;
        std::fs::write(
            dir.path().join("SPOOL-META"),
            format!("hostname:kept.example\ncomplete_until:{ahead}\nplugin_rates/a:300\n"),
        )
        .unwrap();
        let node = open_spool(dir.path(), "", 86400, Durability::Record).unwrap();
        let now = system_clock();
        assert!(node.floor <= now, "{}", node.floor);
        let meta = SpoolMeta::parse(&std::fs::read(dir.path().join("SPOOL-META")).unwrap());
        let c = meta.complete_until().unwrap();
        assert!(c <= now && c + 5 >= now, "complete_until {c}, now {now}");
        // Everything else is kept.
        assert_eq!(meta.hostname().unwrap(), Some("kept.example"));
        assert_eq!(meta.get("plugin_rates/a"), Some(&b"300"[..]));
    }
    #[test]
    fn the_greetings_node_is_munin_nodes_own_whatever_its_case() {
        // munin-node lowercases the names `nodes` lists, not the greeting's.
        assert!(is_own_node("web1.example.org", "Web1.Example.org"));
        assert!(is_own_node("web1", "web1"));
        assert!(!is_own_node("switch1.example", "web1.example.org"));
        assert!(!is_own_node("web1", "web1.example.org"));
    }
    #[test]
    fn node_names_that_can_name_a_directory() {
        for ok in ["virt.example", "switch-01", "a", "host_1.example.org"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        let long = "x".repeat(201);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "/abs",
            "a\0b",
            ".hidden",
            "sp ace",
            "tab\t",
            long.as_str(),
            "caf\u{e9}",
        ] {
            assert!(!valid_node_name(bad), "{bad:?}");
        }
    }
}
