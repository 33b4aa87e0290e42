//! The plugins of one munin-node, across its spools: what is known of each, and where
//! each is in its cycle, one [`State`] per plugin. The [`Schedule`] and the queue of held
//! polls are indexes the registry keeps in step with the states; nothing else changes
//! them.
//!
//! A plugin's cycle: `Waiting` in the schedule for its next slot; due, `Held` until a
//! connection is free (longest first); `Polling` while a worker asks munin-node;
//! `Syncing` while its record waits for the group commit's sync (with `--durability
//! record`: the connection is free, the sample does not count yet); back to `Waiting` on
//! its next slot, or `Off` when munin-node no longer lists it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::asyncd::schedule::Schedule;

/// Where a plugin is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not polled: munin-node does not list it (any more).
    Off,
    /// In the schedule, waiting for the second it is due.
    Waiting,
    /// Due for `slot`, waiting for a connection.
    Held { slot: u64 },
    /// Its poll for `slot` is under way, handed out at `since` (seconds since the epoch)
    /// and at `at` (to tell a hung one).
    Polling { slot: u64, since: u64, at: Instant },
    /// Its poll for `slot`, handed out at `since`, wrote its record, which waits for the
    /// group commit's sync: it no longer holds a connection.
    Syncing { slot: u64, since: u64 },
}

/// What is known of one plugin: read through its accessors, changed only by the
/// registry's methods.
#[derive(Debug)]
pub(crate) struct Plugin {
    /// Index into the node's spools.
    spool: usize,
    name: String,
    /// Its `update_rate`, or the default.
    rate: u64,
    /// In munin-node's last list. A plugin under way when it leaves the list finishes its
    /// poll, then is `Off`.
    listed: bool,
    /// Its last poll failed (logged once until it answers again).
    failing: bool,
    /// The time of its newest sample.
    last: Option<u64>,
    /// How long its last poll took (None before the first): the longest go out first.
    took: Option<Duration>,
    /// Whether its last config carried its values (None before the first sample): when
    /// it did not, config and fetch go out in one write.
    dirty: Option<bool>,
    state: State,
}

impl Plugin {
    /// Where it is in its cycle.
    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The index of its spool among the node's.
    pub(crate) fn spool(&self) -> usize {
        self.spool
    }

    /// Its name, as munin-node lists it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its `update_rate`, or the default.
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Whether munin-node's last list has it.
    pub(crate) fn listed(&self) -> bool {
        self.listed
    }

    /// The time of its newest sample.
    pub(crate) fn last(&self) -> Option<u64> {
        self.last
    }

    /// How long its last poll took.
    pub(crate) fn took(&self) -> Option<Duration> {
        self.took
    }

    /// Whether its config is known to carry no values, so config and fetch may go out in
    /// one write.
    pub(crate) fn pipelines(&self) -> bool {
        self.dirty == Some(false)
    }
}

/// What a poll's sample changed, for the caller to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sampled {
    /// The plugin had failed before: it answers again.
    pub(crate) answers_again: bool,
    /// Its `update_rate` changed (SPOOL-META says it).
    pub(crate) rate_changed: bool,
}

/// Every plugin of a node, by id (their order of discovery).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    plugins: Vec<Plugin>,
    /// (spool, plugin name) → id.
    by_name: BTreeMap<(usize, String), usize>,
    /// When each `Waiting` plugin is due.
    schedule: Schedule,
    /// The `Held` plugins, in the order they go out.
    held: VecDeque<usize>,
    /// How many are `Polling`, and `Syncing`.
    polling: usize,
    syncing: usize,
}

impl Registry {
    /// No plugin yet.
    pub(crate) fn new() -> Registry {
        Registry::default()
    }

    /// Plugin `id`.
    pub(crate) fn get(&self, id: usize) -> &Plugin {
        &self.plugins[id]
    }

    /// Every plugin with its id.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Plugin)> + Clone {
        self.plugins.iter().enumerate()
    }

    /// The plugins of one spool.
    pub(crate) fn of_spool(&self, spool: usize) -> impl Iterator<Item = &Plugin> + Clone {
        self.plugins.iter().filter(move |p| p.spool == spool)
    }

    /// A new list is coming: every plugin is unlisted until [`Registry::list`] names it.
    pub(crate) fn unlist_all(&mut self) {
        for p in &mut self.plugins {
            p.listed = false;
        }
    }

    /// munin-node lists `name` for `spool`. A plugin not known before is made with
    /// `rate`, and what the spool says of it (`last`, `took`); one not being polled is due
    /// at `now`, then on its own slots. Gives its id.
    pub(crate) fn list(
        &mut self,
        spool: usize,
        name: &str,
        now: u64,
        rate: u64,
        known: impl FnOnce() -> (Option<u64>, Option<Duration>),
    ) -> usize {
        let id = match self.by_name.get(&(spool, name.to_string())) {
            Some(&id) => id,
            None => {
                let (last, took) = known();
                let id = self.plugins.len();
                self.plugins.push(Plugin {
                    spool,
                    name: name.to_string(),
                    rate,
                    listed: false,
                    failing: false,
                    last,
                    took,
                    dirty: None,
                    state: State::Off,
                });
                self.by_name.insert((spool, name.to_string()), id);
                id
            }
        };
        let p = &mut self.plugins[id];
        p.listed = true;
        if p.state == State::Off {
            self.schedule.add_due(id, p.rate, now);
            p.state = State::Waiting;
        }
        id
    }

    /// Plugin `id`'s poll brought a sample at `time`, after `took`; its config said
    /// `dirty` (whether it carried the values) and `rate` (its `update_rate`, or the
    /// default), which holds from its next slot on.
    pub(crate) fn sampled(
        &mut self,
        id: usize,
        took: Duration,
        (time, dirty, rate): (u64, bool, u64),
    ) -> Sampled {
        let p = &mut self.plugins[id];
        p.took = Some(took);
        p.last = Some(time);
        p.dirty = Some(dirty);
        let answers_again = std::mem::take(&mut p.failing);
        let rate_changed = rate != p.rate;
        if rate_changed {
            p.rate = rate;
            self.schedule.set_rate(id, rate);
        }
        Sampled {
            answers_again,
            rate_changed,
        }
    }

    /// Plugin `id`'s poll failed after `took`. Says whether it answered before (so the
    /// failure is told once).
    pub(crate) fn failed(&mut self, id: usize, took: Duration) -> bool {
        let p = &mut self.plugins[id];
        p.took = Some(took);
        !std::mem::replace(&mut p.failing, true)
    }

    /// Plugin `id`'s poll took `took` and brought nothing to tell (too early, or stopped).
    pub(crate) fn took_for_nothing(&mut self, id: usize, took: Duration) {
        self.plugins[id].took = Some(took);
    }

    /// munin-node no longer knows plugin `id` (its poll, after `took`, said so): it is
    /// unlisted until a list names it again.
    pub(crate) fn gone(&mut self, id: usize, took: Duration) {
        let p = &mut self.plugins[id];
        p.took = Some(took);
        p.listed = false;
    }

    /// Queues the plugins due at `now`, the longest first behind those already held. One
    /// whose sample could not yet be newer than what was promised (`not_before`, see
    /// [`crate::asyncd::watermark`]) waits in the schedule for the second it can; one no
    /// longer listed is `Off`.
    pub(crate) fn take_due(&mut self, now: u64, not_before: impl Fn(&Plugin) -> u64) {
        let mut due = Vec::new();
        while let Some((id, slot)) = self.schedule.pop_due(now) {
            let p = &mut self.plugins[id];
            if !p.listed {
                p.state = State::Off;
                continue;
            }
            let t = not_before(p);
            if t > now {
                self.schedule.retry_at(id, t);
                continue;
            }
            p.state = State::Held { slot };
            due.push((id, slot));
        }
        longest_first(&mut due, |id| self.plugins[id].took);
        self.held.extend(due.into_iter().map(|(id, _)| id));
    }

    /// Hands out up to `room` held polls, in order: they are `Polling` from `since`
    /// (seconds since the epoch) and `at`. Gives each id with its slot.
    pub(crate) fn hand_out(&mut self, room: usize, since: u64, at: Instant) -> Vec<(usize, u64)> {
        let n = room.min(self.held.len());
        let mut out = Vec::with_capacity(n);
        for id in self.held.drain(..n) {
            let p = &mut self.plugins[id];
            if let State::Held { slot } = p.state {
                p.state = State::Polling { slot, since, at };
                out.push((id, slot));
            }
        }
        self.polling += out.len();
        out
    }

    /// Plugin `id`'s poll wrote its record, which waits for its sync: its connection is
    /// free. Says whether it was `Polling`.
    pub(crate) fn written(&mut self, id: usize) -> bool {
        let Some(p) = self.plugins.get_mut(id) else {
            return false;
        };
        let State::Polling { slot, since, .. } = p.state else {
            return false;
        };
        p.state = State::Syncing { slot, since };
        self.polling -= 1;
        self.syncing += 1;
        true
    }

    /// Plugin `id`'s poll is back at `now` (its record synced, or no record): it is due
    /// again at `retry` when given (off its slots), else at its next slot after both
    /// `slot` and `now`; `Off` when no longer listed. Gives the slot it was polled for,
    /// or None when it was not under way.
    pub(crate) fn back(&mut self, id: usize, now: u64, retry: Option<u64>) -> Option<u64> {
        let p = self.plugins.get_mut(id)?;
        let slot = match p.state {
            State::Polling { slot, .. } => {
                self.polling -= 1;
                slot
            }
            State::Syncing { slot, .. } => {
                self.syncing -= 1;
                slot
            }
            State::Off | State::Waiting | State::Held { .. } => return None,
        };
        p.state = if !p.listed {
            State::Off
        } else {
            match retry {
                Some(t) => self.schedule.retry_at(id, t),
                None => self.schedule.done(id, slot, now),
            }
            State::Waiting
        };
        Some(slot)
    }

    /// How many polls hold a connection.
    pub(crate) fn polling(&self) -> usize {
        self.polling
    }

    /// How many polls are under way: holding a connection, or their record waiting for
    /// its sync.
    pub(crate) fn under_way(&self) -> usize {
        self.polling + self.syncing
    }

    /// How many polls wait for a connection.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// The earliest second a `Waiting` plugin is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.schedule.next_due()
    }

    /// The earliest second a poll for `spool` under way (syncing too) or held went out
    /// (held ones go out at `now` at the earliest): no sample of the spool before it can
    /// still come.
    pub(crate) fn oldest(&self, spool: usize, now: u64) -> Option<u64> {
        self.of_spool(spool)
            .filter_map(|p| match p.state {
                State::Polling { since, .. } | State::Syncing { since, .. } => Some(since),
                State::Held { .. } => Some(now),
                State::Off | State::Waiting => None,
            })
            .min()
    }

    /// When the polls holding a connection were handed out: the earliest and the latest
    /// (None when none does).
    pub(crate) fn polling_since(&self) -> Option<(Instant, Instant)> {
        self.plugins
            .iter()
            .filter_map(|p| match p.state {
                State::Polling { at, .. } => Some(at),
                _ => None,
            })
            .fold(None, |span, at| match span {
                None => Some((at, at)),
                Some((first, last)) => Some((first.min(at), last.max(at))),
            })
    }
}

/// Orders due polls: earliest slot first, then the plugins that took longest last time, so
/// a slow one runs beside the quick ones instead of after them. Those never polled yet come
/// first of all, in the order given. A round then lasts about as long as its slowest plugin.
fn longest_first(due: &mut [(usize, u64)], took: impl Fn(usize) -> Option<Duration>) {
    due.sort_by_key(|&(id, slot)| (slot, Reverse(took(id).unwrap_or(Duration::MAX))));
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Checks the indexes agree with the states.
    fn consistent(r: &Registry) {
        let polling = r
            .plugins
            .iter()
            .filter(|p| matches!(p.state, State::Polling { .. }))
            .count();
        assert_eq!(polling, r.polling);
        let syncing = r
            .plugins
            .iter()
            .filter(|p| matches!(p.state, State::Syncing { .. }))
            .count();
        assert_eq!(syncing, r.syncing);
        let held: Vec<usize> = r
            .iter()
            .filter(|(_, p)| matches!(p.state, State::Held { .. }))
            .map(|(id, _)| id)
            .collect();
        let mut queued: Vec<usize> = r.held.iter().copied().collect();
        queued.sort_unstable();
        assert_eq!(held, queued);
    }

    fn known() -> (Option<u64>, Option<Duration>) {
        (None, None)
    }

    #[test]
    fn a_plugin_goes_round_its_cycle_with_one_state() {
        let mut r = Registry::new();
        let at = Instant::now();
        let a = r.list(0, "a", 1000, 60, known);
        let b = r.list(0, "b", 1000, 300, || {
            (Some(900), Some(Duration::from_secs(2)))
        });
        assert_eq!(r.get(b).last(), Some(900));
        assert_eq!(r.get(a).state(), State::Waiting);
        assert_eq!(r.next_due(), Some(1000));

        // Due at once; one connection: the unknown `a` first, `b` held.
        r.take_due(1000, |_| 0);
        consistent(&r);
        assert_eq!(r.hand_out(1, 1000, at), [(a, 1000)]);
        assert_eq!(r.get(b).state(), State::Held { slot: 1000 });
        assert_eq!(r.oldest(0, 1001), Some(1000));
        assert_eq!(r.oldest(1, 1001), None);
        assert_eq!(r.polling_since(), Some((at, at)));
        consistent(&r);

        // `a` back: due at its next slot; `b` goes out.
        assert_eq!(r.back(a, 1001, None), Some(1000));
        assert_eq!(r.get(a).state(), State::Waiting);
        assert_eq!(r.hand_out(4, 1001, at), [(b, 1000)]);
        assert_eq!(r.oldest(0, 1002), Some(1001));
        assert_eq!((r.polling(), r.held()), (1, 0));
        consistent(&r);

        // `b` leaves munin-node's list while under way: it finishes, then is Off.
        r.unlist_all();
        r.list(0, "a", 1002, 60, known);
        assert_eq!(
            r.get(b).state(),
            State::Polling {
                slot: 1000,
                since: 1001,
                at
            }
        );
        assert_eq!(r.back(b, 1003, None), Some(1000));
        assert_eq!(r.get(b).state(), State::Off);
        assert_eq!(r.back(b, 1003, None), None, "a second report is ignored");
        assert_eq!(r.next_due(), Some(1020));
        consistent(&r);

        // Listed again: due at once, same id, what was known kept.
        assert_eq!(r.list(0, "b", 1004, 60, known), b);
        assert_eq!(r.get(b).last(), Some(900));
        assert_eq!(r.next_due(), Some(1004));

        // Unlisted while waiting: Off when due, not polled.
        r.unlist_all();
        r.list(0, "a", 1005, 60, known);
        r.take_due(1005, |_| 0);
        assert_eq!(r.get(b).state(), State::Off);
        assert_eq!(r.held(), 0);
        consistent(&r);
    }

    #[test]
    fn a_written_record_frees_its_connection_and_still_holds_the_promise_until_synced() {
        let mut r = Registry::new();
        let at = Instant::now();
        let a = r.list(0, "a", 1000, 60, known);
        let b = r.list(0, "b", 1000, 60, known);
        r.take_due(1000, |_| 0);
        assert_eq!(r.hand_out(1, 1000, at), [(a, 1000)]);
        assert!(r.written(a));
        assert!(!r.written(a), "written once");
        assert_eq!(
            r.get(a).state(),
            State::Syncing {
                slot: 1000,
                since: 1000
            }
        );
        assert_eq!((r.polling(), r.under_way()), (0, 1));
        // Its connection goes to `b`; the promise still waits for `a`.
        assert_eq!(r.hand_out(1, 1001, at), [(b, 1000)]);
        r.back(b, 1001, None);
        assert_eq!(r.oldest(0, 1002), Some(1000));
        assert_eq!(r.back(a, 1002, None), Some(1000));
        assert_eq!(r.oldest(0, 1002), None);
        assert_eq!(r.under_way(), 0);
        consistent(&r);
    }

    #[test]
    fn a_plugin_that_cannot_go_out_yet_waits_for_its_second_and_a_retry_is_off_its_slots() {
        let mut r = Registry::new();
        let at = Instant::now();
        let a = r.list(0, "a", 1000, 300, known);
        r.take_due(1000, |_| 1002);
        assert_eq!(r.held(), 0);
        assert_eq!(r.next_due(), Some(1002));
        r.take_due(1002, |_| 1002);
        assert_eq!(r.hand_out(1, 1002, at), [(a, 1002)]);
        // Its sample would repeat a second: asked again the next.
        r.back(a, 1002, Some(1003));
        assert_eq!(r.next_due(), Some(1003));
        r.take_due(1003, |_| 0);
        r.hand_out(1, 1003, at);
        r.back(a, 1003, None);
        assert_eq!(r.next_due(), Some(1200));
        // A rate change takes effect from the next slot.
        r.take_due(1200, |_| 0);
        r.hand_out(1, 1200, at);
        let told = r.sampled(a, Duration::from_millis(5), (1200, true, 60));
        assert!(told.rate_changed && !told.answers_again);
        assert_eq!(r.get(a).rate(), 60);
        r.back(a, 1200, None);
        assert_eq!(r.next_due(), Some(1260));
        consistent(&r);
    }
}
