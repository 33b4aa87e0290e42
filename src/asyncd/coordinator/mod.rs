//! One munin-node's loop, as a state machine the daemon's one driving thread turns
//! ([`crate::asyncd::daemon`]): it reads the plugin list into its [`Registry`], hands the
//! due polls to the shared [`workers`](crate::asyncd::workers) up to `--connections` at
//! once (longest first, more while they hang), takes in what the polls report, has its
//! [`health`](crate::asyncd::health) spooled, publishes SPOOL-META with `complete_until`
//! ([`watermark`](crate::asyncd::watermark)), and has old spool files cleaned ([`retention`]).
//!
//! It reads the time, the stop and reload requests, systemd and its timings only through
//! its [`Env`], so a test turns it in-process on a clock it moves by hand.
//!
//! munin-node's own node (the one its greeting names) spools into the spool directory
//! itself (Debian's layout); each virtual node it serves besides (`nodes`) spools into a
//! subdirectory named after it. munin-node down at start or later is retried with backoff
//! and logged once per change; the daemon never exits for it.
//!
//! Each piece of its state has one owner: the plugin list's reading is the [`Lister`]'s
//! ([`crate::asyncd::listing`]), each plugin's cycle the [`Registry`]'s, what SPOOL-META
//! said each spool's `Ledger` and when it may be written the [`Pacing`]'s
//! ([`crate::asyncd::ledger`]). This file holds the turn, the events and the wake-up;
//! `dispatch.rs` hands polls out, `results.rs` takes lists and poll results in,
//! `publish.rs` writes SPOOL-META and the health sample.

mod dispatch;
mod publish;
mod results;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::commit::Commit;
use crate::asyncd::env::Env;
use crate::asyncd::health::{HealthSample, Recorder, PLUGIN};
use crate::asyncd::ledger::Pacing;
use crate::asyncd::listing::{Lister, Spoolable};
use crate::asyncd::msg::{Event, Reply};
use crate::asyncd::node_spool::NodeSpool;
use crate::asyncd::registry::Registry;
use crate::asyncd::retention;
use crate::asyncd::workers::{NodeLink, Workers};
use crate::{log_debug, log_error, log_info, log_notice};

/// The longest a health sample waits for its node's round to be in, in seconds.
const HEALTH_WAIT: u64 = 5;

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
    /// When the plugin list is read, and what munin-node answered.
    lister: Lister,
    /// Which plugins of a list can be spooled (refusals logged once).
    spoolable: Spoolable,
    /// When old spool files are next looked for, and whether a worker is at it.
    next_cleanup: Instant,
    cleaning: bool,
    /// When SPOOL-META may be written next.
    pacing: Pacing,
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
        let mut health = Recorder::new(env.unix(), cfg.default_rate);
        // Its samples stay in time order across a restart, even with a clock gone back.
        if let Some(&last) = root.newest.get(PLUGIN) {
            health.spooled(last);
        }
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
            lister: Lister::new(now),
            spoolable: Spoolable::default(),
            next_cleanup: now,
            cleaning: false,
            pacing: Pacing::default(),
            health,
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
        self.lister.reload(self.env.now());
    }

    /// The wall clock stepped: counted in the health plugin.
    pub(crate) fn clock_stepped(&mut self) {
        self.health.stepped();
    }

    /// Does what is due: reads the list, hands out due polls, spools the health sample,
    /// publishes SPOOL-META, cleans up. Says when it next has something to do (unless an
    /// event comes first).
    pub(crate) fn turn(&mut self) -> Instant {
        if self.lister.due(self.env.now()) {
            self.start_listing();
            self.lister.start(&self.env.timings);
        }
        let now = self.env.unix();
        self.dispatch(now);
        self.grow();
        self.send_held(now);
        self.spool_health(now);
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

    /// When something is next due: a poll, the health sample, the list, cleanup,
    /// SPOOL-META held back by its once-a-second limit, a look at polls under way that
    /// may hang while others wait. Polls done and the list read come as events.
    fn next_wake(&self) -> Instant {
        let mut wake = self.lister.wake(self.env.now(), &self.env.timings);
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
        if let Some(at) = self.pacing.wake(self.publish_gap()) {
            wake = wake.min(at);
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
            + self.spools.iter().filter(|s| s.ledger.writing()).count()
            + usize::from(self.health_writing.is_some())
    }

    /// Whether writes are under way: samples waiting for their group's sync, or SPOOL-META.
    pub(crate) fn writing(&self) -> bool {
        self.spools.iter().any(|s| s.ledger.writing()) || self.commit.pending() > 0
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
        self.lister.reading()
            || self.cleaning
            || self.in_flight() > 0
            || self.plugins.held() > 0
            || self.spools.iter().any(|s| s.list.writing())
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
        if !matches!(
            event,
            Event::Published { .. }
                | Event::Written { .. }
                | Event::Cleaned
                | Event::ListWritten { .. }
        ) {
            self.pacing.stir();
        }
        match event {
            Event::Written { id } => {
                self.plugins.written(id);
            }
            Event::Done(done) => self.finished(done),
            Event::Listed(result) => self.listed(result),
            Event::Cleaned => self.cleaning = false,
            Event::HealthWritten { time, result } => {
                self.health_writing = None;
                match result {
                    Ok(()) => self.health.spooled(time),
                    Err(e) => log_debug!("{PLUGIN}: {e}"),
                }
            }
            Event::ListWritten {
                spool,
                list,
                result,
            } => {
                if let Err(e) = &result {
                    log_error!("{e}");
                }
                let next = self
                    .spools
                    .get_mut(spool)
                    .and_then(|s| s.list.written(list, result.is_ok()));
                if let Some(list) = next {
                    self.write_list(spool, list);
                }
            }
            Event::Published { spool, result } => {
                if let Some(spool) = self.spools.get_mut(spool) {
                    spool.ledger.written(spool.writer.dir(), result);
                }
            }
        }
    }
}
