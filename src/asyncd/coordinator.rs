//! One munin-node's loop, as a state machine the daemon's one driving thread turns
//! ([`crate::asyncd::daemon`]): it reads the plugin list into its [`Registry`], hands the
//! due polls to the shared [`workers`](crate::asyncd::workers) up to `--connections` at
//! once (longest first, more while they hang), takes in what the polls report, has its
//! [`health`](crate::asyncd::health) spooled, publishes SPOOL-META with `complete_until`
//! ([`watermark`]), and has old spool files cleaned ([`retention`]).
//!
//! It reads the time, the stop and reload requests, systemd and its timings only through
//! its [`Env`], so a test turns it in-process on a clock it moves by hand.
//!
//! munin-node's own node (the one its greeting names) spools into the spool directory
//! itself (Debian's layout); each virtual node it serves besides (`nodes`) spools into a
//! subdirectory named after it. munin-node down at start or later is retried with backoff
//! and logged once per change; the daemon never exits for it.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::commit::Commit;
use crate::asyncd::env::Env;
use crate::asyncd::health::{Dropped, HealthSample, Outcome, Recorder, PLUGIN};
use crate::asyncd::msg::{Done, Event, ListResult, PollError, Reply};
use crate::asyncd::node::{NodeConn, NodeError};
use crate::asyncd::node_spool::{is_own_node, open_spool, valid_node_name, NodeSpool};
use crate::asyncd::poll::{run_job, Job};
use crate::asyncd::registry::Registry;
use crate::asyncd::retention;
use crate::asyncd::watermark;
use crate::asyncd::workers::{NodeLink, Workers};
use crate::spool::meta::key;
use crate::spool::names::sanitise;
use crate::spool::writer::WriteError;
use crate::util::log::Quoted;
use crate::{log_debug, log_error, log_info, log_notice, log_warn};

/// The longest a health sample waits for its node's round to be in, in seconds.
const HEALTH_WAIT: u64 = 5;

/// The longest plugin name spooled: its file name must stay under the usual 255 bytes.
const MAX_PLUGIN_NAME: usize = 200;

/// One munin-node's state.
pub(crate) struct Coordinator<'a> {
    cfg: &'a DaemonConfig,
    env: Env,
    /// The workers all nodes share.
    workers: &'a Workers,
    /// This munin-node, and its idle connections.
    link: Arc<NodeLink>,
    /// Where polls and the listing report.
    reply: Reply,
    /// How records and SPOOL-META become durable.
    commit: Commit,
    /// How many polls may be under way at once: `--connections`, more while they hang.
    allowed: usize,
    /// The daemon's own counters, spooled as the `munin_asyncd` plugin.
    health: Recorder,
    /// The health sample taken and waiting for the node's round to be in; then the time of
    /// the one being spooled on a worker. `complete_until` stays before either.
    health_due: Option<HealthSample>,
    health_writing: Option<u64>,
    /// Every plugin, and where each is in its cycle.
    plugins: Registry,
    /// The spools, the spool directory itself first.
    spools: Vec<NodeSpool>,
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
    /// The plugin list is being read, on a worker: a munin-node that accepts but does not
    /// answer must not stall the polls or the reaction to SIGTERM.
    listing: bool,
    /// When the list is next read, and the wait before the next try while munin-node
    /// does not answer.
    next_list: Instant,
    backoff: Duration,
    /// When old spool files are next looked for, and whether a worker is at it.
    next_cleanup: Instant,
    cleaning: bool,
    /// SPOOL-META has something new to say, held back by the once-a-second limit.
    publish_pending: bool,
    /// Something that SPOOL-META says may have changed since it was last worked out: a
    /// poll went out or came back, the list was read (a SPOOL-META write coming back
    /// changes nothing).
    stirred: bool,
    /// A SIGHUP's reload is under way: systemd hears READY=1 once the list is read.
    reloading: bool,
    /// When the plugin list is next read (now while it is being read), in seconds since
    /// the epoch: plugins it finds are polled at once, so nothing is promised beyond it.
    next_list_at: u64,
}

impl<'a> Coordinator<'a> {
    /// A node's loop, polling into `root` (its spool, opened); it reports to `reply`. It
    /// keeps up to `--connections` idle connections: reconnecting for every poll cost a
    /// thousand-node site a quarter of its CPU (docs/benchmarks.md).
    pub(crate) fn new(
        cfg: &'a DaemonConfig,
        root: NodeSpool,
        workers: &'a Workers,
        env: Env,
        reply: Reply,
        commit: Commit,
    ) -> Coordinator<'a> {
        let now = env.now();
        Coordinator {
            cfg,
            workers,
            link: Arc::new(NodeLink::new(
                &cfg.host,
                cfg.request_timeout,
                (cfg.connections, env.timings.keep_connection),
                cfg.default_rate,
            )),
            reply,
            commit,
            allowed: cfg.connections.max(1),
            plugins: Registry::new(),
            spools: vec![root],
            node_up: None,
            down_since: None,
            published: None,
            relist_soon: false,
            refused: BTreeSet::new(),
            listing: false,
            next_list: now,
            backoff: env.timings.first_backoff,
            next_cleanup: now,
            cleaning: false,
            publish_pending: false,
            stirred: true,
            reloading: false,
            next_list_at: 0,
            health: Recorder::new(env.unix(), cfg.default_rate),
            health_writing: None,
            health_due: None,
            env,
        }
    }

    /// A SIGHUP: the plugin list is read again at the next turn.
    pub(crate) fn reload(&mut self) {
        log_notice!("SIGHUP: reading the plugin list again");
        self.env
            .notify("RELOADING=1\nSTATUS=reading the plugin list again");
        self.reloading = true;
        self.next_list = self.env.now();
    }

    /// Does what is due: reads the list, hands out due polls, spools the health sample,
    /// publishes SPOOL-META, cleans up. Says when it next has something to do (unless an
    /// event comes first).
    pub(crate) fn turn(&mut self) -> Instant {
        if std::mem::take(&mut self.relist_soon) {
            self.next_list = self.next_list.min(self.env.now() + Duration::from_secs(5));
        }
        if !self.listing && self.env.now() >= self.next_list {
            self.start_listing();
            self.listing = true;
        }
        let now = self.env.unix();
        self.dispatch(now);
        self.grow();
        self.send_held(now);
        self.spool_health(now);
        self.next_list_at = if self.listing {
            now
        } else {
            now.saturating_add(
                self.next_list
                    .saturating_duration_since(self.env.now())
                    .as_secs(),
            )
        };
        self.publish(now, false);
        self.close_idle_connections(now);
        if self.cfg.cleanup && self.env.now() >= self.next_cleanup && !self.cleaning {
            self.next_cleanup = self.env.now() + self.env.timings.cleanup_every;
            self.cleaning = true;
            let bounds = retention::Bounds::of(self.cfg);
            let writers: Vec<_> = self.spools.iter().map(|s| s.writer.clone()).collect();
            let reply = self.reply.clone();
            self.workers.run(Box::new(move || {
                retention::clean(bounds, &writers, now);
                reply.send(Event::Cleaned);
            }));
        }
        self.next_wake()
    }

    /// Takes the health sample when one is due (none while the last is still being
    /// written: a disk that slow gets one sample, not a queue of them), and hands it to a
    /// worker once the node's round is in (no poll holds a connection or waits for one),
    /// or [`HEALTH_WAIT`] after its time at the latest: measuring the spool takes a
    /// system call a file, which the round's second is better without.
    fn spool_health(&mut self, now: u64) {
        let Some(root) = self.spools.first() else {
            return;
        };
        if let Some(sample) = self.health.take_due(now, root.floor) {
            match self.health_time() {
                Some(last) => log_debug!(
                    "{}: the health sample at {last} is not written yet: none at {now}",
                    self.cfg.host
                ),
                None => {
                    self.stirred = true;
                    self.health_due = Some(sample);
                }
            }
        }
        let round_in = self.plugins.held() == 0 && self.plugins.polling() == 0;
        let Some(sample) = self
            .health_due
            .take_if(|s| round_in || now >= s.time.saturating_add(HEALTH_WAIT))
        else {
            return;
        };
        self.health_writing = Some(sample.time);
        let dirs: Vec<_> = self
            .spools
            .iter()
            .map(|s| s.writer.dir().to_path_buf())
            .collect();
        let (writer, reply, commit) =
            (root.writer.clone(), self.reply.clone(), self.commit.clone());
        self.workers.run(Box::new(move || {
            let time = sample.time;
            let result = commit.append(&writer, PLUGIN, time, &sample.body(&dirs));
            commit.health_written(writer, reply, time, result);
        }));
    }

    /// The time of the health sample taken and not spooled yet, if there is one.
    fn health_time(&self) -> Option<u64> {
        self.health_due
            .as_ref()
            .map(|s| s.time)
            .or(self.health_writing)
    }

    /// Between rounds, closes the idle connections that would be too old to use by the
    /// next due poll (see [`NodeLink::close_expiring_by`]).
    fn close_idle_connections(&self, now: u64) {
        if self.plugins.polling() > 0 || self.plugins.held() > 0 {
            return;
        }
        let Some(next) = self.plugins.next_due() else {
            return;
        };
        let at = self.env.now() + Duration::from_secs(next.saturating_sub(now) + 1);
        let closed = self.link.close_expiring_by(at);
        if closed > 0 {
            log_debug!(
                "{}: {closed} idle connection(s) closed until the next poll at {next}",
                self.cfg.host
            );
        }
    }

    /// When something is next due: a poll, the health sample, the list, cleanup,
    /// SPOOL-META held back by its once-a-second limit, a look at polls under way that
    /// may hang while others wait. Polls done and the list read come as events.
    fn next_wake(&self) -> Instant {
        let mut wake = if self.listing {
            // Comes as an event.
            self.env.now() + self.env.timings.relist_every
        } else {
            self.next_list
        };
        if self.cfg.cleanup && !self.cleaning {
            // (While a cleanup runs, its end comes as an event.)
            wake = wake.min(self.next_cleanup);
        }
        let timings = self.env.timings;
        if self.plugins.held() > 0 {
            if let Some((_, latest)) = self.plugins.polling_since() {
                // When every poll under way will have run over `stuck`.
                wake = wake.min(latest + timings.stuck + Duration::from_millis(10));
            }
        }
        if self.publish_pending {
            if let Some(at) = self.published {
                wake = wake.min(at + self.publish_gap());
            }
        }
        let (now, unix) = (self.env.now(), self.env.unix());
        let health_due = self
            .health_due
            .as_ref()
            .map(|s| s.time.saturating_add(HEALTH_WAIT));
        for t in [
            self.plugins.next_due(),
            Some(self.health.next()),
            health_due,
        ]
        .into_iter()
        .flatten()
        {
            // On the second it is due: the unix clock turns to `t` within a second.
            let left = if t > unix {
                let at = UNIX_EPOCH + Duration::from_secs(t);
                let wall = self.env.clock.wall();
                at.duration_since(wall).unwrap_or(Duration::ZERO)
            } else {
                Duration::ZERO
            };
            wake = wake.min(now + left);
        }
        wake
    }

    /// The shortest time between two SPOOL-META writes now: longer while a round is under
    /// way (see [`crate::asyncd::env::Timings::publish_in_round`]).
    fn publish_gap(&self) -> Duration {
        if self.plugins.held() > 0 || self.plugins.under_way() > 0 {
            self.env.timings.publish_in_round
        } else {
            self.env.timings.publish_every
        }
    }

    /// How many polls, SPOOL-META writes and health samples are under way.
    pub(crate) fn in_flight(&self) -> usize {
        self.plugins.under_way()
            + self.spools.iter().filter(|s| s.writing).count()
            + usize::from(self.health_writing.is_some())
    }

    /// Whether writes are under way: samples waiting for their group's sync, or SPOOL-META.
    pub(crate) fn writing(&self) -> bool {
        self.spools.iter().any(|s| s.writing) || self.commit.pending() > 0
    }

    /// How many polls hold a connection.
    #[cfg(test)]
    pub(crate) fn polling(&self) -> usize {
        self.plugins.polling()
    }

    /// Whether anything is under way that will come back as an event (the list, polls,
    /// writes, a cleanup) or waiting to go out: a clock a test moves waits for it rather
    /// than move on.
    pub(crate) fn busy(&self) -> bool {
        self.listing || self.cleaning || self.in_flight() > 0 || self.plugins.held() > 0
    }

    /// At the stop, once polls under way have landed or been given up: publishes what is
    /// complete (with nothing in flight, every sample up to now; a restart takes none at
    /// or before it, see `floor`).
    pub(crate) fn finish(&mut self) {
        if self.plugins.under_way() > 0 {
            log_info!(
                "{}: {} poll(s) still under way abandoned",
                self.cfg.host,
                self.plugins.under_way()
            );
        }
        // A health sample still waiting for its round is not taken, as a poll not
        // started yet is not.
        self.health_due = None;
        self.publish(self.env.unix(), true);
    }

    /// Takes in one event.
    pub(crate) fn handle(&mut self, event: Event) {
        // A record written (`Written`) frees a connection but changes no promise; nor
        // does a cleanup, or a SPOOL-META written.
        self.stirred |= !matches!(
            event,
            Event::Published { .. } | Event::Written { .. } | Event::Cleaned
        );
        match event {
            Event::Written { id } => {
                self.plugins.written(id);
            }
            Event::Done(done) => self.finished(done),
            Event::Listed(result) => {
                self.listing = false;
                let ok = self.listed(result);
                if std::mem::take(&mut self.reloading) {
                    // The reload is over, whether munin-node answered or not (then it is
                    // retried, and the status says so).
                    self.env.notify("READY=1");
                }
                if ok {
                    self.link.full_life();
                    self.backoff = self.env.timings.first_backoff;
                    self.next_list = self.env.now() + self.env.timings.relist_every;
                } else {
                    self.next_list = self.env.now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(self.cfg.max_backoff);
                }
            }
            Event::Cleaned => self.cleaning = false,
            Event::HealthWritten { time, result } => {
                self.health_writing = None;
                match result {
                    Ok(()) => self.health.spooled(time),
                    Err(e) => log_debug!("{PLUGIN}: {e}"),
                }
            }
            Event::Published { spool, result } => {
                if let Some(spool) = self.spools.get_mut(spool) {
                    spool.writing = false;
                    written(spool, result);
                }
            }
        }
    }

    /// Queues the plugins due at `now`, longest first. A plugin that may not go out yet
    /// (its sample would not be newer than what SPOOL-META promised, see [`watermark`])
    /// waits for the second it may.
    fn dispatch(&mut self, now: u64) {
        let spools = &self.spools;
        self.plugins.take_due(now, |p| {
            let spool = &spools[p.spool];
            watermark::not_before(p.last, spool.floor, spool.said)
        });
    }

    /// Sends held polls to the workers while fewer than `allowed` are under way.
    fn send_held(&mut self, now: u64) {
        let room = self.allowed.saturating_sub(self.plugins.polling());
        let out = self.plugins.hand_out(room, now, self.env.now());
        for (id, _slot) in out {
            let p = self.plugins.get(id);
            let spool = &self.spools[p.spool];
            let job = Job {
                id,
                plugin: p.name.clone(),
                pipeline: p.dirty == Some(false),
                not_before: watermark::not_before(p.last, spool.floor, spool.said),
                writer: spool.writer.clone(),
                commit: self.commit.clone(),
            };
            self.stirred = true;
            let (link, env, reply) = (self.link.clone(), self.env.clone(), self.reply.clone());
            self.workers
                .run(Box::new(move || run_job(job, &link, &env, &reply)));
        }
    }

    /// When every poll under way has run past `STUCK` (hung plugins, most likely) and
    /// others wait, lets that many more go out at once, up to four times
    /// `--connections`; back to `--connections` once nothing waits.
    fn grow(&mut self) {
        let base = self.cfg.connections.max(1);
        let held = self.plugins.held();
        if held == 0 {
            if self.plugins.polling() <= base {
                self.allowed = base;
            }
            return;
        }
        let stuck = self.env.timings.stuck;
        // Every poll holding a connection has run over `stuck`: the latest handed out too.
        let all_stuck = self
            .plugins
            .polling_since()
            .is_some_and(|(_, latest)| self.env.now().saturating_duration_since(latest) > stuck);
        let room = (base * 4).saturating_sub(self.allowed);
        if !all_stuck || room == 0 {
            return;
        }
        let more = held.min(room);
        self.allowed += more;
        log_warn!(
            "every connection to munin-node is held by a request running over {} s \
             (a hung plugin?) and {held} poll(s) wait: {more} more opened, {} in all",
            stuck.as_secs(),
            self.allowed
        );
    }

    /// Starts reading the plugin list, on a worker.
    fn start_listing(&self) {
        let tx = self.reply.clone();
        let (host, timeout) = (self.cfg.host.clone(), self.cfg.request_timeout);
        self.workers.run(Box::new(move || {
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
            tx.send(Event::Listed(result));
        }));
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
                self.down_since.get_or_insert(self.env.now());
                if self.node_up != Some(false) {
                    log_error!("{e}; retrying until it answers");
                    self.env.notify(&format!(
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
            .map(|t| {
                format!(
                    " (back after {} s)",
                    self.env.now().saturating_duration_since(t).as_secs()
                )
            })
            .unwrap_or_default();
        if self.node_up != Some(true) {
            log_notice!(
                "munin-node at {} is up{back}: {} plugins on {} node(s)",
                self.cfg.host,
                total,
                lists.len()
            );
            self.env.notify(&format!(
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
        self.plugins.unlist_all();
        for (node, names) in lists {
            if let Some(spool) = self.spool_for(&node) {
                self.update_plugins(spool, &names);
            }
        }
        true
    }

    fn update_plugins(&mut self, spool: usize, list: &[String]) {
        let now = self.env.unix();
        let list = self.spoolable(spool, list);
        let known = &self.spools[spool];
        for name in &list {
            // First poll right away (a plugin not polled yet), then on its own slots.
            self.plugins
                .list(spool, name, now, self.cfg.default_rate, || {
                    log_debug!("new plugin {name}");
                    (
                        known.newest.get(&sanitise(name.as_bytes())).copied(),
                        known.before.poll_ms(name).map(Duration::from_millis),
                    )
                });
        }
        if let Err(e) = self.spools[spool].writer.write_list(&list) {
            log_error!("{e}");
        }
        self.spools[spool].dirty = true;
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
        let now = self.env.unix();
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
        match &done.result {
            Err(PollError::Node(NodeError::Connect { .. })) => {
                self.down_since.get_or_insert(self.env.now());
            }
            Ok(_) => {
                if let Some(t) = self.down_since.take() {
                    log_notice!(
                        "munin-node at {} answers again after {} s",
                        self.cfg.host,
                        self.env.now().saturating_duration_since(t).as_secs()
                    );
                }
            }
            _ => {}
        }
        let id = done.id;
        let p = self.plugins.get_mut(id);
        p.took = Some(done.took);
        // Asked again the next second, not a whole (perhaps default) rate later.
        let mut retry = None;
        match done.result {
            Ok(sample) => {
                if p.failing {
                    log_info!("plugin {} answers again", p.name);
                    p.failing = false;
                }
                p.last = Some(sample.time);
                p.dirty = Some(sample.dirty);
                let rate = sample.rate.unwrap_or(self.cfg.default_rate);
                if rate != p.rate {
                    self.spools[p.spool].dirty = true;
                    self.plugins.set_rate(id, rate);
                }
                // A sample alone changes only what SPOOL-META says for information
                // (`last-timestamp`, `poll_ms`): written with the next complete_until,
                // once the round is in, not once a second while it comes in.
            }
            Err(e @ PollError::TooEarly { last }) => {
                // Expected after a restart within the second of the last sample.
                log_info!("plugin {}: {e}", p.name);
                retry = Some(last + 1);
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
        self.plugins.back(id, now, retry);
    }

    /// Rewrites each node's SPOOL-META when something changed, at most once a second
    /// (every ten while a round is under way; with Durability::Record every write is
    /// synced), or now with `force` (at the stop:
    /// with nothing in flight, every sample up to `now` is in, and a restart takes none at
    /// or before it, see `floor`).
    fn publish(&mut self, now: u64, force: bool) {
        // Within `publish_gap` of the last write nothing is written: look again then (at
        // worst to find nothing new) rather than work out now what there would be.
        if !force
            && self
                .published
                .is_some_and(|at| self.env.now().saturating_duration_since(at) < self.publish_gap())
        {
            self.publish_pending |= std::mem::take(&mut self.stirred);
            return;
        }
        self.stirred = false;
        let next_due = [
            self.plugins.next_due(),
            Some(self.health.next()),
            Some(self.next_list_at),
        ]
        .into_iter()
        .flatten()
        .min();
        // What each spool's SPOOL-META would say, and whether that is news.
        let mut news = Vec::with_capacity(self.spools.len());
        for (i, spool) in self.spools.iter().enumerate() {
            let mut oldest = self.plugins.oldest(i, now);
            if i == 0 {
                // The health sample not spooled yet is a poll under way.
                oldest = oldest.into_iter().chain(self.health_time()).min();
            }
            let complete = watermark::complete_until(oldest, next_due, now, spool.said, force);
            let listed = self.plugins.of_spool(i).any(|p| p.listed);
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
            if spool.writing {
                // One write at a time: this one when the last is done.
                self.publish_pending = true;
                continue;
            }
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
            for p in self.plugins.of_spool(i).filter(|p| p.listed) {
                pairs.push((key::plugin_rate(&p.name), p.rate.to_string()));
                if let Some(took) = p.took {
                    pairs.push((key::poll_ms(&p.name), took.as_millis().to_string()));
                }
                if let Some(t) = p.last {
                    pairs.push((key::last_timestamp(&p.name), t.to_string()));
                }
            }
            // From now on no sample may be at or before what this write promises, whether
            // it lands or not (see `watermark::not_before`).
            spool.said = Some(complete);
            spool.dirty = false;
            wrote = true;
            if force {
                let result = spool.writer.write_meta(&pairs);
                written(spool, result);
            } else {
                // On a worker: with --durability record a write waits for the disk, and a
                // site's thousand nodes each write after their round.
                spool.writing = true;
                let (writer, reply) = (spool.writer.clone(), self.reply.clone());
                let commit = self.commit.clone();
                self.workers
                    .run(Box::new(move || commit.publish(writer, reply, i, &pairs)));
            }
        }
        if wrote {
            self.published = Some(self.env.now());
        }
    }
}

/// Takes in how writing a spool's SPOOL-META went.
fn written(spool: &mut NodeSpool, result: Result<(), WriteError>) {
    match result {
        Ok(()) => {
            if std::mem::take(&mut spool.meta_failing) {
                log_info!("{}: SPOOL-META written again", spool.writer.dir().display());
            }
        }
        Err(e) => {
            // Written again at the next turn.
            spool.dirty = true;
            if !std::mem::replace(&mut spool.meta_failing, true) {
                log_error!("{e}; munin-async keeps serving up to the last complete_until written");
            }
        }
    }
}
