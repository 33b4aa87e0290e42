//! munin-asyncd's main loop: poll munin-node on every plugin's own schedule and spool
//! each sample.
//!
//! One coordinator per munin-node owns the [`Schedule`] and hands due plugins to the
//! worker threads all nodes share ([`crate::asyncd::workers`]), up to `--connections` at
//! once, each poll on a connection of its own, so a slow plugin holds one connection and
//! delays no other plugin. A sample's time is when its request was sent. The coordinator
//! knows which requests are in flight, and it publishes `complete_until` in SPOOL-META:
//! every sample at or before that time is in the spool or has failed. munin-async serves
//! nothing newer, so the master's cursor never passes a sample still being taken.
//!
//! munin-node's own node (the one its greeting names) spools into the spool directory
//! itself (Debian's layout); each virtual node it serves besides (`nodes`) spools into a
//! subdirectory named after it.
//! Several munin-nodes (`--config`, see [`crate::asyncd::fanout`]) each have a coordinator
//! thread, which sleeps until its next due event.
//! munin-node down at start or later is retried with backoff and logged once per change;
//! the daemon never exits for it.

use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::health::{parse_cursor, Dropped, Health, Outcome, PLUGIN};
use crate::asyncd::node::{NodeConn, NodeError};
use crate::asyncd::schedule::{next_slot, rate_in_config, Schedule};
use crate::asyncd::signals;
use crate::asyncd::watermark;
use crate::asyncd::workers::{NodeLink, Workers, MAX_WORKERS};
use crate::spool::meta::{key, SpoolMeta};
use crate::spool::names::sanitise;
use crate::spool::record::is_value_line;
use crate::spool::writer::{record_body, Durability, SpoolWriter, WriteError};
use crate::spool::Spool;
use crate::spool::CURSOR_FILE;
use crate::util::clock::system_clock;
use crate::util::log::Quoted;
use crate::{log_debug, log_error, log_info, log_notice, log_warn};

/// How often old spool files are looked for.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);
/// How often the plugin list is read again.
const RELIST_EVERY: Duration = Duration::from_secs(3600);
/// How long a stop waits for polls under way, so it still ends within a second.
const STOP_GRACE: Duration = Duration::from_millis(700);
/// The longest the loop sleeps, so a stop is seen within a second.
const TICK: Duration = Duration::from_millis(100);

/// The rate the master assumes for a plugin whose config declares none.
const MASTER_DEFAULT_RATE: u64 = 300;

/// The longest plugin name spooled: its file name must stay under the usual 255 bytes.
const MAX_PLUGIN_NAME: usize = 200;

/// A poll for a worker.
struct Job {
    id: usize,
    plugin: String,
    slot: u64,
    /// The plugin's last sample is at this time minus one: a sample now must be later.
    not_before: u64,
    /// The spool of the plugin's node.
    writer: Arc<SpoolWriter>,
}

/// What a worker reports.
struct Done {
    id: usize,
    slot: u64,
    /// How long the poll took.
    took: Duration,
    result: Result<Sample, PollError>,
}

/// What reading the plugin list gives: munin-node's host name, and each node's plugins
/// (one node named "" when munin-node serves only its own).
type ListResult = Result<(String, Vec<(String, Vec<String>)>), NodeError>;

/// What wakes a node's loop: a poll done, the plugin list read, or a signal.
enum Event {
    Done(Done),
    Listed(ListResult),
    Wake,
}

/// A spooled sample.
struct Sample {
    time: u64,
    rate: Option<u64>,
    /// The fetch answered no value (nothing but `.`): the record holds the config only.
    empty: bool,
}

enum PollError {
    Node(NodeError),
    Write(WriteError),
    Unknown,
    /// munin-node answered, but with nothing to spool: a config of comments only (munin-node
    /// says `# Bad exit` or `# Timeout` when the plugin failed), or a fetch of comments or
    /// other lines but no value. (A fetch of nothing at all is spooled: see `Sample::empty`.)
    Plugin {
        request: &'static str,
        said: String,
    },
    /// Not started: the daemon is stopping.
    Stopped,
    /// The plugin already has a sample at this second (a restart within the second of
    /// the last sample, or a clock that went back): a second one would be refused by RRD.
    TooEarly {
        last: u64,
    },
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollError::Node(e) => e.fmt(f),
            PollError::Write(e) => e.fmt(f),
            PollError::Unknown => f.write_str("munin-node does not know this plugin (any more)"),
            PollError::Stopped => f.write_str("not polled: stopping"),
            PollError::Plugin { request, said } => {
                write!(f, "{request} gave nothing to spool ({said}); not spooled")
            }
            PollError::TooEarly { last } => write!(
                f,
                "skipped: samples up to {last} are spooled already (a restart within that second, or a clock gone back)"
            ),
        }
    }
}

struct Plugin {
    /// Index into the coordinator's spools.
    spool: usize,
    name: String,
    rate: u64,
    listed: bool,
    /// In the schedule or in flight.
    scheduled: bool,
    failing: bool,
    last: Option<u64>,
    /// How long its last poll took (None before the first): the longest go out first.
    took: Option<Duration>,
}

/// One node's spool directory.
pub(crate) struct NodeSpool {
    /// The node's name ("" for munin-node's own, spooled into the spool directory itself).
    node: String,
    pub(crate) writer: Arc<SpoolWriter>,
    /// The name SPOOL-META gives munin-async's greeting.
    pub(crate) hostname: String,
    /// Each service's newest sample found when the spool was opened.
    newest: BTreeMap<String, u64>,
    /// The complete_until found when the spool was opened: samples must be later.
    pub(crate) floor: u64,
    /// SPOOL-META as the spool was opened: how long each plugin's polls took before a
    /// restart (`poll_ms/<plugin>`), so the first round after it goes longest first too.
    before: SpoolMeta,
    /// SPOOL-META needs writing.
    dirty: bool,
    /// The complete_until SPOOL-META says.
    said: Option<u64>,
    /// Writing SPOOL-META failed last time (a full disk, say): logged once until it works.
    meta_failing: bool,
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
fn is_own_node(node: &str, greeting: &str) -> bool {
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
    })
}

/// Polls every node until SIGTERM or SIGINT, each from a thread of its own. Every node's
/// spool is opened (and locked) first, so a conflict is refused before anything runs.
pub fn run_all(cfgs: &[DaemonConfig]) -> Result<(), WriteError> {
    let mut roots = Vec::with_capacity(cfgs.len());
    for cfg in cfgs {
        roots.push(open_spool(&cfg.spooldir, "", cfg.interval, cfg.durability)?);
    }
    // Ready once the spools are open and repaired, even with munin-node still down: the
    // daemon waits for it, and Debian's init script gives up after 15 s.
    signals::sd_notify("READY=1\nSTATUS=reading the plugin lists");
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
    let started = Instant::now();
    let beats: Vec<AtomicU64> = cfgs.iter().map(|_| AtomicU64::new(0)).collect();
    let workers = Workers::new(MAX_WORKERS);
    let workers = &workers;
    thread::scope(|scope| {
        if let Some(every) = signals::watchdog_interval() {
            let beats = &beats;
            if let Err(e) =
                thread::Builder::new().spawn_scoped(scope, move || watchdog(every, started, beats))
            {
                log_error!("cannot start the watchdog's thread: {e}; systemd will restart us");
            }
        }
        let mut nodes = cfgs.iter().zip(roots).zip(&beats);
        let first = nodes.next();
        for ((cfg, root), beat) in nodes {
            let host = cfg.host.clone();
            if let Err(e) = thread::Builder::new()
                .spawn_scoped(scope, move || run_node(cfg, root, started, beat, workers))
            {
                log_error!("{host}: cannot start a thread to poll it: {e}; not polled");
            }
        }
        if let Some(((cfg, root), beat)) = first {
            run_node(cfg, root, started, beat, workers);
        }
    });
    Ok(())
}

/// systemd's watchdog (`WatchdogSec`): pings at half the interval while every node's loop
/// has gone round within that half. A loop stuck for longer goes unpinged, and systemd
/// restarts the daemon.
fn watchdog(every: Duration, started: Instant, beats: &[AtomicU64]) {
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
            let stuck = beats
                .iter()
                .filter(|b| now.saturating_sub(b.load(Ordering::Relaxed)) > limit)
                .count();
            if stuck == 0 {
                signals::sd_notify("WATCHDOG=1");
                stuck_said = false;
            } else if !std::mem::replace(&mut stuck_said, true) {
                log_error!("{stuck} node loop(s) stuck: not pinging systemd's watchdog");
            }
        }
        // Until the next ping, or a signal.
        let _ = woken.recv_timeout(next.saturating_duration_since(Instant::now()));
    }
}

/// Milliseconds since `started`.
fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Polls one munin-node into `root` (and its virtual nodes' subdirectories).
fn run_node(
    cfg: &DaemonConfig,
    root: NodeSpool,
    started: Instant,
    beat: &AtomicU64,
    workers: &Workers,
) {
    let (done_tx, done_rx) = channel::<Event>();
    let wake = done_tx.clone();
    signals::on_signal(move || {
        let _ = wake.send(Event::Wake);
    });
    Coordinator {
        cfg,
        workers,
        link: Arc::new(NodeLink::new(
            &cfg.host,
            cfg.request_timeout,
            cfg.connections,
            cfg.default_rate,
        )),
        allowed: cfg.connections.max(1),
        held: Vec::new(),
        done: done_rx,
        events: done_tx,
        schedule: Schedule::new(),
        plugins: Vec::new(),
        by_name: BTreeMap::new(),
        spools: vec![root],
        in_flight: BTreeMap::new(),
        node_up: None,
        down_since: None,
        published: None,
        relist_soon: false,
        refused: BTreeSet::new(),
        listing: false,
        publish_pending: false,
        reloading: false,
        next_list_at: 0,
        started,
        beat,
        health: Health::default(),
        // The first after a whole period, so that it has something to say.
        next_health: system_clock() + cfg.default_rate,
        last_health: 0,
    }
    .run()
}

/// A request running this long holds its connection as if hung: when every poll under way
/// has run so long and polls wait, more may go out at once (see `Coordinator::grow`).
const STUCK: Duration = Duration::from_secs(3);

struct Coordinator<'a> {
    cfg: &'a DaemonConfig,
    /// The workers all nodes share.
    workers: &'a Workers,
    /// This munin-node, and its idle connections.
    link: Arc<NodeLink>,
    /// How many polls may be under way at once: `--connections`, more while they hang.
    allowed: usize,
    /// Polls due but waiting for one under way to end, longest first.
    held: Vec<(usize, u64)>,
    /// When the daemon started, and where this loop says it went round (ms since then),
    /// for the watchdog.
    started: Instant,
    beat: &'a AtomicU64,
    /// The daemon's own counters, spooled as the `munin_asyncd` plugin.
    health: Health,
    /// When the next health sample is due, and the time of the last.
    next_health: u64,
    last_health: u64,
    done: Receiver<Event>,
    /// The sender of `done`, for the listing threads.
    events: Sender<Event>,
    schedule: Schedule,
    plugins: Vec<Plugin>,
    /// (spool, plugin name) → plugin id.
    by_name: BTreeMap<(usize, String), usize>,
    /// The spools, the spool directory itself first.
    spools: Vec<NodeSpool>,
    /// Plugin id → when its request was handed out (seconds since the epoch, and as an
    /// instant, to tell a hung one).
    in_flight: BTreeMap<usize, (u64, Instant)>,
    /// Whether munin-node answered last time (None before the first try).
    node_up: Option<bool>,
    /// Since when munin-node cannot be reached (for the notice when it is back).
    down_since: Option<Instant>,
    /// When SPOOL-META files were last written.
    published: Option<Instant>,
    /// A plugin vanished: read the list again soon.
    relist_soon: bool,
    /// Plugins refused (name too long, or sanitising like another), logged once.
    refused: BTreeSet<(usize, String)>,
    /// The plugin list is being read, in a thread of its own: a munin-node that accepts
    /// but does not answer must not stall the polls or the reaction to SIGTERM.
    listing: bool,
    /// SPOOL-META has something new to say, held back by the once-a-second limit.
    publish_pending: bool,
    /// A SIGHUP's reload is under way: systemd hears READY=1 once the list is read.
    reloading: bool,
    /// When the plugin list is next read (now while it is being read), in seconds since
    /// the epoch: plugins it finds are polled at once, so nothing is promised beyond it.
    next_list_at: u64,
}

impl Coordinator<'_> {
    fn run(mut self) {
        let mut next_list = Instant::now();
        let mut backoff = Duration::from_secs(1);
        let mut next_cleanup = Instant::now();
        let watchdog_half = signals::watchdog_interval().map(|w| w / 2);
        while !signals::terminate_requested() {
            self.beat.store(millis(self.started), Ordering::Relaxed);
            if signals::take_reload() {
                log_notice!("SIGHUP: reading the plugin list again");
                signals::sd_notify("RELOADING=1\nSTATUS=reading the plugin list again");
                self.reloading = true;
                next_list = Instant::now();
            }
            if std::mem::take(&mut self.relist_soon) {
                next_list = next_list.min(Instant::now() + Duration::from_secs(5));
            }
            if !self.listing && Instant::now() >= next_list {
                self.start_listing();
                self.listing = true;
            }
            let now = system_clock();
            self.dispatch(now);
            self.grow();
            self.send_held(now);
            if now >= self.next_health {
                self.next_health = next_slot(now, self.cfg.default_rate);
                self.spool_health(now);
            }
            self.next_list_at = if self.listing {
                now
            } else {
                now.saturating_add(
                    next_list
                        .saturating_duration_since(Instant::now())
                        .as_secs(),
                )
            };
            self.publish(now, false);
            if self.cfg.cleanup && Instant::now() >= next_cleanup {
                next_cleanup = Instant::now() + CLEANUP_EVERY;
                self.cleanup(now);
            }
            // Sleep until something is due: a poll, the health sample, the list, cleanup,
            // SPOOL-META held back by its once-a-second limit, the watchdog's beat. Polls
            // done, the list read and signals wake the loop through `done`. Only while
            // polls are under way does it look every TICK (for hung ones, `Pool::grow`).
            let mut wake = vec![next_list];
            if self.cfg.cleanup {
                wake.push(next_cleanup);
            }
            if let Some(half) = watchdog_half {
                // Beat twice per watchdog look, so a look never finds the beat just stale.
                wake.push(Instant::now() + half / 2);
            }
            if !self.in_flight.is_empty() {
                wake.push(Instant::now() + TICK);
            }
            if self.publish_pending {
                if let Some(at) = self.published {
                    wake.push(at + Duration::from_secs(1));
                }
            }
            for t in [self.schedule.next_due(), Some(self.next_health)]
                .into_iter()
                .flatten()
            {
                // Wake on the second it is due, not a tick after it.
                let at = UNIX_EPOCH + Duration::from_secs(t);
                let left = at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                wake.push(Instant::now() + left);
            }
            let until = wake.into_iter().min().unwrap_or_else(Instant::now);
            let wait = until.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(event) => self.handle(event, &mut next_list, &mut backoff),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(event) = self.done.try_recv() {
                self.handle(event, &mut next_list, &mut backoff);
            }
        }
        log_info!("stopping");
        signals::sd_notify("STOPPING=1");
        // Polls under way may still land: a plugin that ran should not lose its sample.
        // Polls not started yet are not started (see `worker`).
        let deadline = Instant::now() + STOP_GRACE;
        while !self.in_flight.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(Event::Done(done)) => self.finished(done),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if !self.in_flight.is_empty() {
            log_info!("{} poll(s) still under way abandoned", self.in_flight.len());
        }
        self.publish(system_clock(), true);
    }

    /// Takes in one event.
    fn handle(&mut self, event: Event, next_list: &mut Instant, backoff: &mut Duration) {
        match event {
            Event::Done(done) => self.finished(done),
            Event::Listed(result) => {
                self.listing = false;
                let ok = self.listed(result);
                if std::mem::take(&mut self.reloading) {
                    // The reload is over, whether munin-node answered or not (then it is
                    // retried, and the status says so).
                    signals::sd_notify("READY=1");
                }
                if ok {
                    *backoff = Duration::from_secs(1);
                    *next_list = Instant::now() + RELIST_EVERY;
                } else {
                    *next_list = Instant::now() + *backoff;
                    *backoff = (*backoff * 2).min(self.cfg.max_backoff);
                }
            }
            Event::Wake => {}
        }
    }

    /// Hands the plugins due at `now` to the workers, longest first. A plugin that may
    /// not go out yet (its sample would not be newer than what SPOOL-META promised, see
    /// [`watermark`]) is put back for the second it may.
    fn dispatch(&mut self, now: u64) {
        let mut due = Vec::new();
        while let Some((id, slot)) = self.schedule.pop_due(now) {
            let p = &mut self.plugins[id];
            if !p.listed {
                // Dropped from munin-node's list: leave the schedule.
                self.schedule.remove(id);
                p.scheduled = false;
                continue;
            }
            let spool = &self.spools[p.spool];
            let not_before = watermark::not_before(p.last, spool.floor, spool.said);
            if not_before > now {
                self.schedule.retry_at(id, not_before);
                continue;
            }
            due.push((id, slot));
        }
        longest_first(&mut due, |id| self.plugins[id].took);
        self.held.extend(due);
    }

    /// Sends held polls to the workers while fewer than `allowed` are under way.
    fn send_held(&mut self, now: u64) {
        let room = self.allowed.saturating_sub(self.in_flight.len());
        let n = room.min(self.held.len());
        for (id, slot) in self.held.drain(..n).collect::<Vec<_>>() {
            let p = &self.plugins[id];
            let spool = &self.spools[p.spool];
            let job = Job {
                id,
                plugin: p.name.clone(),
                slot,
                not_before: watermark::not_before(p.last, spool.floor, spool.said),
                writer: spool.writer.clone(),
            };
            self.in_flight.insert(id, (now, Instant::now()));
            let (link, reply) = (self.link.clone(), self.events.clone());
            self.workers
                .run(Box::new(move || run_job(job, &link, &reply)));
        }
    }

    /// When every poll under way has run past `STUCK` (hung plugins, most likely) and
    /// others wait, lets that many more go out at once, up to four times
    /// `--connections`; back to `--connections` once nothing waits.
    fn grow(&mut self) {
        let base = self.cfg.connections.max(1);
        if self.held.is_empty() {
            if self.in_flight.len() <= base {
                self.allowed = base;
            }
            return;
        }
        let all_stuck = !self.in_flight.is_empty()
            && self.in_flight.values().all(|(_, at)| at.elapsed() > STUCK);
        let room = (base * 4).saturating_sub(self.allowed);
        if !all_stuck || room == 0 {
            return;
        }
        let more = self.held.len().min(room);
        self.allowed += more;
        log_warn!(
            "every connection to munin-node is held by a request running over {} s \
             (a hung plugin?) and {} poll(s) wait: {more} more opened, {} in all",
            STUCK.as_secs(),
            self.held.len(),
            self.allowed
        );
    }

    /// Starts reading the plugin list in a thread of its own.
    fn start_listing(&self) {
        let tx = self.events.clone();
        let (host, timeout) = (self.cfg.host.clone(), self.cfg.request_timeout);
        let failed = tx.clone();
        let spawned = thread::Builder::new().spawn(move || {
            let result = (|| {
                let mut conn = NodeConn::connect(&host, timeout)?;
                conn.cap("multigraph dirtyconfig")?;
                let nodes = conn.nodes()?;
                // munin-node's own node (the one its greeting names, what `list` without a
                // node returns) spools into the spool directory itself, as Perl's 2.0
                // munin-asyncd does: the forced command every site has keeps serving it.
                // Each other (virtual) node gets a subdirectory.
                let mut lists = vec![(String::new(), conn.list("")?)];
                for node in nodes {
                    if is_own_node(&node, &conn.hostname) {
                        continue;
                    }
                    if valid_node_name(&node) {
                        let plugins = conn.list(&node)?;
                        lists.push((node, plugins));
                    } else {
                        log_error!(
                            "virtual node {} cannot name a spool directory; not spooled",
                            Quoted(node.as_bytes())
                        );
                    }
                }
                let hostname = conn.hostname.clone();
                conn.quit();
                Ok((hostname, lists))
            })();
            let _ = tx.send(Event::Listed(result));
        });
        if let Err(e) = spawned {
            // Tried again with the usual backoff.
            let _ = failed.send(Event::Listed(Err(NodeError::Io {
                request: "list (no thread to ask it)".into(),
                source: e,
            })));
        }
    }

    /// The index of a node's spool, opened (and repaired) the first time.
    fn spool_for(&mut self, node: &str) -> Option<usize> {
        if let Some(i) = self.spools.iter().position(|s| s.node == node) {
            return Some(i);
        }
        match open_spool(
            &self.cfg.spooldir.join(node),
            node,
            self.cfg.interval,
            self.cfg.durability,
        ) {
            Ok(s) => {
                self.spools.push(s);
                Some(self.spools.len() - 1)
            }
            Err(e) => {
                log_error!("{e}; virtual node {node} is not spooled");
                None
            }
        }
    }

    /// Takes in a plugin list; `false` when munin-node could not be asked.
    fn listed(&mut self, result: ListResult) -> bool {
        let (hostname, lists) = match result {
            Ok(found) => found,
            Err(e) => {
                self.down_since.get_or_insert_with(Instant::now);
                if self.node_up != Some(false) {
                    log_error!("{e}; retrying until it answers");
                    signals::sd_notify(&format!(
                        "STATUS=munin-node at {} does not answer; retrying",
                        self.cfg.host
                    ));
                }
                self.node_up = Some(false);
                return false;
            }
        };
        let total: usize = lists.iter().map(|(_, p)| p.len()).sum();
        let back = self
            .down_since
            .take()
            .map(|t| format!(" (back after {} s)", t.elapsed().as_secs()))
            .unwrap_or_default();
        if self.node_up != Some(true) {
            log_notice!(
                "munin-node at {} is up{back}: {} plugins on {} node(s)",
                self.cfg.host,
                total,
                lists.len()
            );
            signals::sd_notify(&format!(
                "STATUS=spooling {total} plugins of {}",
                self.cfg.host
            ));
        } else if self.reloading {
            log_notice!(
                "reload: {} plugins on {} node(s) at {}",
                total,
                lists.len(),
                self.cfg.host
            );
        }
        self.node_up = Some(true);
        if !hostname.is_empty() {
            self.spools[0].hostname = hostname;
        }
        for p in &mut self.plugins {
            p.listed = false;
        }
        for (node, names) in lists {
            if let Some(spool) = self.spool_for(&node) {
                self.update_plugins(spool, &names);
            }
        }
        true
    }

    fn update_plugins(&mut self, spool: usize, list: &[String]) {
        let now = system_clock();
        let list = self.spoolable(spool, list);
        for name in &list {
            let id = match self.by_name.get(&(spool, name.clone())) {
                Some(&id) => id,
                None => {
                    let id = self.plugins.len();
                    self.plugins.push(Plugin {
                        spool,
                        name: name.clone(),
                        rate: self.cfg.default_rate,
                        listed: false,
                        scheduled: false,
                        failing: false,
                        last: self.spools[spool]
                            .newest
                            .get(&sanitise(name.as_bytes()))
                            .copied(),
                        took: self.spools[spool]
                            .before
                            .poll_ms(name)
                            .map(Duration::from_millis),
                    });
                    self.by_name.insert((spool, name.clone()), id);
                    log_debug!("new plugin {name}");
                    id
                }
            };
            let p = &mut self.plugins[id];
            p.listed = true;
            if !p.scheduled {
                // First poll right away, then on the plugin's own slots.
                self.schedule.add_due(id, p.rate, now);
                p.scheduled = true;
            }
        }
        if let Err(e) = self.spools[spool].writer.write_list(&list) {
            log_error!("{e}");
        }
        self.spools[spool].dirty = true;
    }

    /// Spools the daemon's own health (see `health`) into the spool directory itself.
    fn spool_health(&mut self, now: u64) {
        let root = &self.spools[0];
        if now <= self.last_health || now <= root.floor {
            return;
        }
        let mut bytes = 0;
        let mut lag: Option<u64> = None;
        for spool in &self.spools {
            let dir = spool.writer.dir();
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
        }
        let lines = self.health.output(self.cfg.default_rate, bytes, lag);
        let mut body = Vec::new();
        record_body(PLUGIN, lines.iter().map(|l| l.as_bytes()), &mut body);
        match root.writer.append(PLUGIN, now, &body) {
            Ok(()) => self.last_health = now,
            Err(e) => log_debug!("{PLUGIN}: {e}"),
        }
    }

    /// The plugins of a list that can be spooled: a name must fit in a file name, and two
    /// names that sanitise alike (`if_eth0.1` and `if_eth0_1`) would share one spool file
    /// and mix their data, so only the first in the list is spooled (and none that would
    /// take the daemon's own `munin_asyncd`). Each refusal is logged once.
    fn spoolable(&mut self, spool: usize, list: &[String]) -> Vec<String> {
        // The daemon's own plugin has its file too.
        let own = PLUGIN.to_string();
        let mut files: BTreeMap<String, &String> = BTreeMap::from([(own.clone(), &own)]);
        let mut ok = Vec::with_capacity(list.len());
        for name in list {
            let why = if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
                Some(format!(
                    "a plugin name of {} bytes is not spooled (at most {MAX_PLUGIN_NAME})",
                    name.len()
                ))
            } else {
                match files.entry(sanitise(name.as_bytes())) {
                    Entry::Occupied(first) => Some(format!(
                        "plugin {} is not spooled: its spool file would be plugin {}'s ({})",
                        Quoted(name.as_bytes()),
                        Quoted(first.get().as_bytes()),
                        first.key()
                    )),
                    Entry::Vacant(v) => {
                        v.insert(name);
                        None
                    }
                }
            };
            match why {
                None => ok.push(name.clone()),
                Some(why) => {
                    if self.refused.insert((spool, name.clone())) {
                        log_error!("{why}");
                    }
                }
            }
        }
        ok
    }

    fn finished(&mut self, done: Done) {
        let now = system_clock();
        self.in_flight.remove(&done.id);
        let outcome = match &done.result {
            Ok(sample) if sample.empty => Some(Outcome::Empty),
            Ok(_) => Some(Outcome::Written),
            Err(PollError::Node(_)) => Some(Outcome::Dropped(Dropped::Node)),
            Err(PollError::Plugin { .. } | PollError::Unknown) => {
                Some(Outcome::Dropped(Dropped::Plugin))
            }
            Err(PollError::Write(_)) => Some(Outcome::Dropped(Dropped::Disk)),
            Err(PollError::TooEarly { .. }) => Some(Outcome::Dropped(Dropped::Repeat)),
            Err(PollError::Stopped) => None,
        };
        if let Some(outcome) = outcome {
            self.health.poll(outcome, done.took);
        }
        let p = &mut self.plugins[done.id];
        p.took = Some(done.took);
        let retry = match &done.result {
            Err(PollError::TooEarly { last }) => Some(last + 1),
            _ => None,
        };
        match &done.result {
            Err(PollError::Node(NodeError::Connect { .. })) => {
                self.down_since.get_or_insert_with(Instant::now);
            }
            Ok(_) => {
                if let Some(t) = self.down_since.take() {
                    log_notice!(
                        "munin-node at {} answers again after {} s",
                        self.cfg.host,
                        t.elapsed().as_secs()
                    );
                }
            }
            _ => {}
        }
        let p = &mut self.plugins[done.id];
        match done.result {
            Ok(sample) => {
                if p.failing {
                    log_info!("plugin {} answers again", p.name);
                    p.failing = false;
                }
                p.last = Some(sample.time);
                let rate = sample.rate.unwrap_or(self.cfg.default_rate);
                if rate != p.rate {
                    p.rate = rate;
                    self.schedule.set_rate(done.id, rate);
                }
                self.spools[p.spool].dirty = true;
            }
            Err(e @ PollError::TooEarly { .. }) => {
                // Expected after a restart within the second of the last sample.
                log_info!("plugin {}: {e}", p.name);
            }
            Err(PollError::Stopped) => {}
            Err(PollError::Unknown) => {
                log_warn!(
                    "plugin {} is gone from munin-node; reading the list again",
                    p.name
                );
                p.listed = false;
                self.relist_soon = true;
            }
            Err(e) => {
                if !p.failing {
                    log_warn!("plugin {}: {e}", p.name);
                    p.failing = true;
                }
            }
        }
        let listed = self.plugins[done.id].listed;
        if let (true, Some(t)) = (listed, retry) {
            // Asked again the next second, not a whole (perhaps default) rate later.
            self.schedule.retry_at(done.id, t);
        } else if listed {
            self.schedule.done(done.id, done.slot, now);
        } else {
            self.schedule.remove(done.id);
            self.plugins[done.id].scheduled = false;
        }
    }

    /// Rewrites each node's SPOOL-META when something changed, at most once a second
    /// (with Durability::Record every write is synced), or now with `force` (at the stop:
    /// with nothing in flight, every sample up to `now` is in, and a restart takes none at
    /// or before it, see `floor`).
    fn publish(&mut self, now: u64, force: bool) {
        // Within a second of the last write nothing is written: look again then (at
        // worst to find nothing new) rather than work out now what there would be.
        if !force
            && self
                .published
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            self.publish_pending = true;
            return;
        }
        let next_due = [
            self.schedule.next_due(),
            Some(self.next_health),
            Some(self.next_list_at),
        ]
        .into_iter()
        .flatten()
        .min();
        // What each spool's SPOOL-META would say, and whether that is news.
        let mut news = Vec::with_capacity(self.spools.len());
        for (i, spool) in self.spools.iter().enumerate() {
            let mine = self
                .plugins
                .iter()
                .enumerate()
                .filter(|(_, p)| p.spool == i);
            let oldest = mine
                .clone()
                .filter_map(|(id, _)| self.in_flight.get(&id).map(|(t, _)| *t))
                .chain(
                    // Held polls go out now at the earliest.
                    self.held
                        .iter()
                        .filter(|(id, _)| self.plugins[*id].spool == i)
                        .map(|_| now),
                )
                .min();
            let complete = watermark::complete_until(oldest, next_due, now, spool.said, force);
            let listed = mine.clone().any(|(_, p)| p.listed);
            let changed = spool.dirty || (listed && spool.said != Some(complete));
            news.push((complete, force || changed));
        }
        self.publish_pending = false;
        if !news.iter().any(|(_, n)| *n) {
            return;
        }
        let mut wrote = false;
        for (i, spool) in self.spools.iter_mut().enumerate() {
            let (complete, news) = news[i];
            if !news {
                continue;
            }
            let mine = self
                .plugins
                .iter()
                .enumerate()
                .filter(|(_, p)| p.spool == i);
            let mut pairs = vec![
                (
                    key::HOSTNAME.to_string(),
                    if spool.hostname.is_empty() {
                        "unknown".to_string()
                    } else {
                        spool.hostname.clone()
                    },
                ),
                (
                    key::INTERVAL_SIZE.to_string(),
                    self.cfg.interval.to_string(),
                ),
                (key::INTERVAL_KEEP.to_string(), self.cfg.retain.to_string()),
                (key::LAST_RUN_TIME.to_string(), now.to_string()),
                (key::COMPLETE_UNTIL.to_string(), complete.to_string()),
            ];
            for (_, p) in mine.filter(|(_, p)| p.listed) {
                pairs.push((key::plugin_rate(&p.name), p.rate.to_string()));
                if let Some(took) = p.took {
                    pairs.push((key::poll_ms(&p.name), took.as_millis().to_string()));
                }
                if let Some(t) = p.last {
                    pairs.push((key::last_timestamp(&p.name), t.to_string()));
                }
            }
            match spool.writer.write_meta(&pairs) {
                Ok(()) => {
                    if std::mem::take(&mut spool.meta_failing) {
                        log_info!("{}: SPOOL-META written again", spool.writer.dir().display());
                    }
                    spool.said = Some(complete);
                    spool.dirty = false;
                    wrote = true;
                }
                Err(e) => {
                    if !std::mem::replace(&mut spool.meta_failing, true) {
                        log_error!(
                            "{e}; munin-async keeps serving up to the last complete_until written"
                        );
                    }
                }
            }
        }
        if wrote {
            self.published = Some(Instant::now());
        }
    }

    fn cleanup(&self, now: u64) {
        let max_age = self.cfg.interval.saturating_mul(self.cfg.retain);
        for spool in &self.spools {
            let dir = spool.writer.dir();
            match spool.writer.cleanup(now, max_age) {
                Ok(r) if r.removed > 0 => {
                    log_info!(
                        "cleanup of {}: {} old spool files removed",
                        dir.display(),
                        r.removed
                    )
                }
                Ok(_) => {}
                Err(e) => log_error!("cleanup: {e}"),
            }
            let Some(max) = self.cfg.max_spool_bytes else {
                continue;
            };
            match spool.writer.cap_size(now, max) {
                Ok(r) => {
                    if r.removed > 0 {
                        log_warn!(
                            "{} is over --max-spool-size ({max} bytes): dropped its {} oldest \
                             files ({} bytes of samples a master may not have fetched)",
                            dir.display(),
                            r.removed,
                            r.bytes
                        );
                    }
                    if r.left > max {
                        log_warn!(
                            "{} holds {} bytes, over --max-spool-size ({max}), in files of the \
                             current interval, which are kept: a shorter --interval helps",
                            dir.display(),
                            r.left
                        );
                    }
                }
                Err(e) => log_error!("size cap: {e}"),
            }
        }
    }
}

/// Orders due polls: earliest slot first, then the plugins that took longest last time, so
/// a slow one runs beside the quick ones instead of after them. Those never polled yet come
/// first of all, in the order given. A round then lasts about as long as its slowest plugin.
fn longest_first(due: &mut [(usize, u64)], took: impl Fn(usize) -> Option<Duration>) {
    due.sort_by_key(|&(id, slot)| (slot, Reverse(took(id).unwrap_or(Duration::MAX))));
}

/// One poll, on a worker: with an idle connection of the node's or a new one, spooled,
/// and reported to the node's coordinator.
fn run_job(job: Job, link: &NodeLink, reply: &Sender<Event>) {
    let started = Instant::now();
    let mut conn = None;
    let result = if signals::terminate_requested() {
        Err(PollError::Stopped)
    } else if system_clock() < job.not_before {
        Err(PollError::TooEarly {
            last: job.not_before - 1,
        })
    } else {
        conn = link.take();
        poll(link, &mut conn, &job.writer, &job.plugin, job.not_before)
    };
    // After a node, write or plugin fault the connection may be in any state, or held by
    // a munin-node process left over from before a restart: it is not kept.
    if !matches!(
        result,
        Err(PollError::Node(_) | PollError::Write(_) | PollError::Plugin { .. })
    ) {
        if let Some(c) = conn {
            link.give_back(c);
        }
    }
    let report = Done {
        id: job.id,
        slot: job.slot,
        took: started.elapsed(),
        result,
    };
    let _ = reply.send(Event::Done(report));
}

/// One sample of one plugin: config, then fetch unless config carried the values.
fn poll(
    link: &NodeLink,
    conn: &mut Option<NodeConn>,
    writer: &SpoolWriter,
    plugin: &str,
    not_before: u64,
) -> Result<Sample, PollError> {
    if conn.is_none() {
        let mut c = NodeConn::connect(&link.host, link.timeout).map_err(PollError::Node)?;
        c.cap("multigraph dirtyconfig").map_err(PollError::Node)?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err(PollError::Unknown);
    };
    let config_time = system_clock();
    let config = c.config(plugin).map_err(PollError::Node)?;
    if config
        .first()
        .is_some_and(|l| l.starts_with(b"# Unknown service"))
    {
        return Err(PollError::Unknown);
    }
    if config
        .iter()
        .all(|l| l.starts_with(b"#") || l.trim_ascii().is_empty())
    {
        return Err(PollError::Plugin {
            request: "config",
            said: comments(&config),
        });
    }
    let dirty = config.iter().any(|l| is_value_line(l));
    let (time, values) = if dirty {
        (config_time, Vec::new())
    } else {
        let t = system_clock();
        let values = c.fetch(plugin).map_err(PollError::Node)?;
        if !values.iter().any(|l| is_value_line(l))
            && values.iter().any(|l| !l.trim_ascii().is_empty())
        {
            // `# Bad exit`, `# Timeout`, or lines that are no values: a failure. A reply
            // of nothing but `.` is an answer (see below).
            return Err(PollError::Plugin {
                request: "fetch",
                said: comments(&values),
            });
        }
        (t, values)
    };
    // A fetch that answered nothing at all (Debian's diskstats on its first run only
    // records its state) is spooled as Perl does: the record carries the config, so the
    // master learns the graph now, not a whole rate later.
    let empty = !dirty && !values.iter().any(|l| is_value_line(l));
    if time < not_before {
        return Err(PollError::TooEarly {
            last: not_before - 1,
        });
    }
    let rate = rate_in_config(config.iter().map(Vec::as_slice)).map(|r| r.seconds);
    let default_rate = format!("update_rate {}", link.default_rate).into_bytes();
    let mut lines: Vec<&[u8]> = Vec::with_capacity(config.len() + values.len() + 1);
    let mut rest = config.iter().map(Vec::as_slice).peekable();
    if rate.is_none() && link.default_rate != MASTER_DEFAULT_RATE {
        // A config without update_rate is polled at --update-rate; when that is not the
        // master's own default, the master must be told (as Munin's development branch
        // does), after a leading multigraph line if there is one. Otherwise the config
        // goes to the master as munin-node sent it.
        if let Some(first) = rest.next_if(|l| l.starts_with(b"multigraph")) {
            lines.push(first);
        }
        lines.push(&default_rate);
    }
    lines.extend(rest);
    lines.extend(values.iter().map(Vec::as_slice));
    let service = sanitise(plugin.as_bytes());
    let mut body = Vec::new();
    let dropped = record_body(&service, lines, &mut body);
    if dropped > 0 {
        log_warn!("plugin {plugin}: {dropped} line(s) that would read as a record header left out");
    }
    writer
        .append(plugin, time, &body)
        .map_err(PollError::Write)?;
    log_debug!(
        "spooled {plugin} at {time} ({} bytes{})",
        body.len(),
        if empty {
            ", config only: the fetch gave no value"
        } else {
            ""
        }
    );
    Ok(Sample { time, rate, empty })
}

/// What a failed reply said, for the log: its comment lines, or "nothing".
fn comments(reply: &[Vec<u8>]) -> String {
    let said: Vec<String> = reply
        .iter()
        .filter(|l| l.starts_with(b"#"))
        .take(3)
        .map(|l| Quoted(&l[..l.len().min(100)]).to_string())
        .collect();
    if said.is_empty() {
        "nothing".to_string()
    } else {
        said.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::{is_own_node, longest_first, open_spool, valid_node_name};
    use crate::spool::meta::SpoolMeta;
    use crate::spool::writer::Durability;
    use crate::util::clock::system_clock;
    use std::time::Duration;

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
    fn due_polls_go_out_longest_first_and_unknown_before_all() {
        let took = |id: usize| match id {
            0 => Some(Duration::from_millis(50)),
            1 => Some(Duration::from_millis(1040)),
            2 => None,
            3 => Some(Duration::from_millis(60)),
            _ => None,
        };
        let mut due = vec![(0, 100), (1, 100), (2, 100), (3, 100), (4, 100)];
        longest_first(&mut due, took);
        assert_eq!(due, vec![(2, 100), (4, 100), (1, 100), (3, 100), (0, 100)]);
        // An earlier slot (a late plugin) still goes before a longer one.
        let mut due = vec![(1, 105), (0, 100)];
        longest_first(&mut due, took);
        assert_eq!(due, vec![(0, 100), (1, 105)]);
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
