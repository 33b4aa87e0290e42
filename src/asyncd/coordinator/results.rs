//! What comes back to a node's coordinator: the plugin list (read on a worker, the spools
//! of new virtual nodes opened there, each list file written on a worker when it
//! changed), and each poll's result, told the health counters, the listing and the
//! registry.

use std::time::Duration;

use super::Coordinator;
use crate::asyncd::health::{Dropped, Outcome};
use crate::asyncd::listing::{read_lists, SpoolPlace};
use crate::asyncd::msg::{Done, Event, Found, ListResult, PollError};
use crate::asyncd::node::NodeError;
use crate::spool::names::sanitise;
use crate::{log_debug, log_info, log_warn};

impl Coordinator<'_> {
    /// Starts reading the plugin list, on a worker.
    pub(super) fn start_listing(&self) {
        let tx = self.reply.clone();
        let link = self.link.clone();
        let place = SpoolPlace {
            root: self.cfg.spooldir.clone(),
            interval: self.cfg.interval,
            now: self.env.unix(),
            durability: self.cfg.durability,
            open: self.spools.iter().map(|s| s.node.clone()).collect(),
        };
        self.workers.run(Box::new(move || {
            tx.send(Event::Listed(read_lists(&link, &place)));
        }));
    }

    /// Takes in a plugin list.
    pub(super) fn listed(&mut self, result: ListResult) {
        let Found {
            hostname,
            lists,
            opened,
        } = match result {
            Ok(found) => found,
            Err(e) => {
                let max = self.cfg.max_backoff;
                self.lister.failed(&e, &self.env, &self.cfg.host, max);
                return;
            }
        };
        self.link.full_life();
        let total: usize = lists.iter().map(|(_, p)| p.len()).sum();
        self.lister
            .answered(&self.env, &self.cfg.host, (total, lists.len()));
        if !hostname.is_empty() {
            self.spools[0].hostname = hostname;
        }
        self.spools.extend(opened);
        self.plugins.unlist_all();
        for (node, names) in lists {
            if let Some(spool) = self.spools.iter().position(|s| s.node == node) {
                self.update_plugins(spool, &names);
            }
        }
    }

    pub(super) fn update_plugins(&mut self, spool: usize, list: &[String]) {
        let now = self.env.unix();
        let list = self.spoolable.filter(spool, list);
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
        // What SPOOL-META says of the plugins may have changed: it is written again.
        self.spools[spool].ledger.changed();
        if let Some(list) = self.spools[spool].list.want(list) {
            self.write_list(spool, list);
        }
    }

    /// Writes a spool's plugin list file, on a worker.
    pub(super) fn write_list(&self, spool: usize, list: Vec<String>) {
        let (writer, reply) = (self.spools[spool].writer.clone(), self.reply.clone());
        self.workers.run(Box::new(move || {
            let result = writer.write_list(&list);
            reply.send(Event::ListWritten {
                spool,
                list,
                result,
            });
        }));
    }

    pub(super) fn finished(&mut self, done: Done) {
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
                self.lister.unreachable(self.env.now());
            }
            Ok(_) => self.lister.reached(self.env.now(), &self.cfg.host),
            _ => {}
        }
        let (id, took) = (done.id, done.took);
        let name = || self.plugins.get(id).name();
        // Asked again the next second, not a whole (perhaps default) rate later.
        let mut retry = None;
        match done.result {
            Ok(sample) => {
                let rate = sample.rate.unwrap_or(self.cfg.default_rate);
                let told = self
                    .plugins
                    .sampled(id, took, (sample.time, sample.dirty, rate));
                let p = self.plugins.get(id);
                if told.answers_again {
                    log_info!("plugin {} answers again", p.name());
                }
                if told.rate_changed {
                    self.spools[p.spool()].ledger.changed();
                }
                // A sample alone changes only what SPOOL-META says for information
                // (`last-timestamp`, `poll_ms`): written with the next complete_until,
                // once the round is in, not once a second while it comes in.
            }
            Err(e @ PollError::TooEarly { last }) => {
                // Expected after a restart within the second of the last sample.
                log_info!("plugin {}: {e}", name());
                self.plugins.took_for_nothing(id, took);
                retry = Some(last + 1);
            }
            Err(PollError::Stopped) => self.plugins.took_for_nothing(id, took),
            Err(PollError::Unknown) => {
                log_warn!(
                    "plugin {} is gone from munin-node; reading the list again",
                    name()
                );
                self.plugins.gone(id, took);
                self.lister.soon(self.env.now());
            }
            Err(e) => {
                if self.plugins.failed(id, took) {
                    log_warn!("plugin {}: {e}", self.plugins.get(id).name());
                }
            }
        }
        self.plugins.back(id, now, retry);
    }
}
