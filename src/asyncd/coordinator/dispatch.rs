//! Handing a node's due polls to the workers: queued longest first, sent while fewer
//! than `allowed` hold a connection, more allowed while every one under way hangs; idle
//! connections closed between rounds.

use std::time::Duration;

use super::Coordinator;
use crate::asyncd::poll::{run_job, Job};
use crate::asyncd::watermark;
use crate::{log_debug, log_warn};

impl Coordinator<'_> {
    /// Queues the plugins due at `now`, longest first. A plugin that may not go out yet
    /// (its sample would not be newer than what SPOOL-META promised, see [`watermark`])
    /// waits for the second it may.
    pub(super) fn dispatch(&mut self, now: u64) {
        let spools = &self.spools;
        self.plugins.take_due(now, |p| {
            let spool = &spools[p.spool()];
            watermark::not_before(p.last(), spool.floor, spool.ledger.said())
        });
    }

    /// Sends held polls to the workers while fewer than `allowed` are under way.
    pub(super) fn send_held(&mut self, now: u64) {
        let room = self.allowed.saturating_sub(self.plugins.polling());
        let out = self.plugins.hand_out(room, now, self.env.now());
        for (id, _slot) in out {
            let p = self.plugins.get(id);
            let spool = &self.spools[p.spool()];
            let job = Job {
                id,
                plugin: p.name().to_string(),
                pipeline: p.pipelines(),
                not_before: watermark::not_before(p.last(), spool.floor, spool.ledger.said()),
                writer: spool.writer.clone(),
                commit: self.commit.clone(),
            };
            self.pacing.stir();
            let (link, env, reply) = (self.link.clone(), self.env.clone(), self.reply.clone());
            self.workers
                .run(Box::new(move || run_job(job, &link, &env, &reply)));
        }
    }

    /// When every poll under way has run past `STUCK` (hung plugins, most likely) and
    /// others wait, lets that many more go out at once, up to four times
    /// `--connections`; back to `--connections` once nothing waits.
    pub(super) fn grow(&mut self) {
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

    /// Between rounds, closes the idle connections that would be too old to use by the
    /// next due poll (see [`NodeLink::close_expiring_by`](crate::asyncd::workers::NodeLink::close_expiring_by)).
    pub(super) fn close_idle_connections(&self, now: u64) {
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
}
