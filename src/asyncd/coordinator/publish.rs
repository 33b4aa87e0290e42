//! What a node's coordinator writes besides samples: its SPOOL-META files (worked out
//! here, their state in each spool's [`Ledger`](crate::asyncd::ledger::Ledger), written
//! on a worker) and its health sample.

use super::{Coordinator, HEALTH_WAIT};
use crate::asyncd::health::PLUGIN;
use crate::asyncd::ledger;
use crate::asyncd::watermark;
use crate::log_debug;

impl Coordinator<'_> {
    /// Rewrites each node's SPOOL-META when something changed, at most once a second
    /// (every ten while a round is under way; with Durability::Record every write is
    /// synced), or now with `force` (at the stop: with nothing in flight, every sample up
    /// to `now` is in, and a restart takes none at or before it, see `floor`).
    pub(super) fn publish(&mut self, now: u64, force: bool) {
        // Within `publish_gap` of the last write nothing is written: look again then (at
        // worst to find nothing new) rather than work out now what there would be.
        if !self.pacing.go(self.env.now(), self.publish_gap(), force) {
            return;
        }
        let next_due = [
            self.plugins.next_due(),
            Some(self.health.next()),
            Some(self.lister.next_at(self.env.now(), now)),
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
            let said = spool.ledger.said();
            let mut newest = self.plugins.of_spool(i).filter_map(|p| p.last()).max();
            if i == 0 {
                newest = newest.max(Some(self.health.last()));
            }
            let complete = watermark::complete_until((oldest, newest), next_due, now, said, force);
            let listed = self.plugins.of_spool(i).any(|p| p.listed());
            news.push((complete, force || spool.ledger.news(complete, listed)));
        }
        let mut wrote = false;
        for (i, spool) in self.spools.iter_mut().enumerate() {
            let (complete, news) = news[i];
            if !news {
                continue;
            }
            if spool.ledger.writing() {
                // One write at a time: this one when the last is done.
                self.pacing.postpone();
                continue;
            }
            let pairs = ledger::pairs(
                &spool.hostname,
                (self.cfg.interval, self.cfg.retain),
                now,
                complete,
                self.plugins.of_spool(i),
            );
            // From now on no sample may be at or before what this write promises, whether
            // it lands or not (see `watermark::not_before`).
            spool.ledger.promise(complete, !force);
            wrote = true;
            if force {
                let result = spool.writer.write_meta(&pairs);
                spool.ledger.written(spool.writer.dir(), result);
            } else {
                // On a worker: with --durability record a write waits for the disk, and a
                // site's thousand nodes each write after their round.
                let (writer, reply) = (spool.writer.clone(), self.reply.clone());
                let commit = self.commit.clone();
                self.workers
                    .run(Box::new(move || commit.publish(writer, reply, i, &pairs)));
            }
        }
        if wrote {
            self.pacing.wrote(self.env.now());
        }
    }

    /// Takes the health sample when one is due (none while the last is still being
    /// written: a disk that slow gets one sample, not a queue of them), and hands it to a
    /// worker once the node's round is in (no poll holds a connection or waits for one),
    /// or [`HEALTH_WAIT`] after its time at the latest: measuring the spool takes a
    /// system call a file, which the round's second is better without.
    pub(super) fn spool_health(&mut self, now: u64) {
        let Some(root) = self.spools.first() else {
            return;
        };
        self.health.unended(self.link.unended.count());
        if let Some(sample) = self.health.take_due(now, root.floor) {
            match self.health_time() {
                Some(last) => log_debug!(
                    "{}: the health sample at {last} is not written yet: none at {now}",
                    self.cfg.host
                ),
                None => {
                    self.pacing.stir();
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
    pub(super) fn health_time(&self) -> Option<u64> {
        self.health_due
            .as_ref()
            .map(|s| s.time)
            .or(self.health_writing)
    }
}
