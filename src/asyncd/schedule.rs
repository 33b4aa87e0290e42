//! When each plugin is polled.
//!
//! Every plugin runs on wall-clock slots of its own rate: a plugin with `update_rate 5`
//! runs at every multiple of 5 seconds, one with the default 300 at :00, :05, … A plugin is
//! never asked again while a request for it is in flight. A plugin slower than its rate
//! therefore skips the slots it overran and runs at the next free one. It never piles up
//! requests, and it never delays another plugin.
//!
//! [`Schedule`] holds no clock of its own: callers pass the time in, so tests drive
//! hours of schedule in microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A plugin's polling rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Seconds between samples (at least 1).
    pub(crate) seconds: u64,
    /// `aligned`: the master rounds sample times to the rate.
    pub(crate) aligned: bool,
}

/// Parses the value of an `update_rate` line as Munin's master does: digits, an optional
/// unit (`s`, `m`, `h`, `d`, `w`, `t` = 31 days, `y` = 365 days), an optional ` aligned`.
/// `None` for anything the master would read as 0.
pub(crate) fn parse_update_rate(value: &[u8]) -> Option<Rate> {
    let value = value.trim_ascii();
    let ndigits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = crate::spool::names::parse_decimal(&value[..ndigits])?;
    let mut rest = &value[ndigits..];
    let unit = match rest.first() {
        Some(b's') => 1,
        Some(b'm') => 60,
        Some(b'h') => 3600,
        Some(b'd') => 86_400,
        Some(b'w') => 7 * 86_400,
        Some(b't') => 31 * 86_400,
        Some(b'y') => 365 * 86_400,
        _ => 0,
    };
    if unit != 0 {
        rest = &rest[1..];
    }
    let aligned = match rest.trim_ascii() {
        b"" => false,
        b"aligned" => true,
        _ => return None,
    };
    let seconds = n.checked_mul(unit.max(1))?;
    (seconds > 0).then_some(Rate { seconds, aligned })
}

/// The plugin's own rate from its config output: the first graph-level `update_rate` line.
pub(crate) fn rate_in_config<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Rate> {
    lines
        .into_iter()
        .find_map(|l| l.strip_prefix(b"update_rate ").map(parse_update_rate))
        .flatten()
}

/// The first slot of `rate` strictly after `t`.
pub(crate) fn next_slot(t: u64, rate: u64) -> u64 {
    let rate = rate.max(1);
    (t / rate).saturating_add(1).saturating_mul(rate)
}

/// Due times of a set of plugins, identified by index.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    due: BinaryHeap<Reverse<(u64, usize)>>,
    rates: Vec<u64>,
}

impl Schedule {
    /// Adds plugin `id` with `rate`, first due at its next slot after `now`.
    pub(crate) fn add(&mut self, id: usize, rate: u64, now: u64) {
        if self.rates.len() <= id {
            self.rates.resize(id + 1, 0);
        }
        self.rates[id] = rate.max(1);
        self.due.push(Reverse((next_slot(now, rate), id)));
    }

    /// Adds plugin `id` with `rate`, first due at `due` (then on its slots).
    pub(crate) fn add_due(&mut self, id: usize, rate: u64, due: u64) {
        self.add(id, rate, 0);
        self.due.retain(|Reverse((_, i))| *i != id);
        self.due.push(Reverse((due, id)));
    }

    /// Changes a plugin's rate; it takes effect from its next slot.
    pub(crate) fn set_rate(&mut self, id: usize, rate: u64) {
        if let Some(r) = self.rates.get_mut(id) {
            *r = rate.max(1);
        }
    }

    /// The earliest due time, if any plugin is waiting.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes the next plugin due at or before `now` out of the schedule, with the slot it
    /// is due for.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(usize, u64)> {
        let Reverse((t, id)) = *self.due.peek()?;
        if t > now {
            return None;
        }
        self.due.pop();
        Some((id, t))
    }

    /// Plugin `id` is done (or failed) at `now`: it is due again at its first slot after
    /// both the slot it ran for and `now`.
    pub(crate) fn done(&mut self, id: usize, slot: u64, now: u64) {
        let rate = self.rates.get(id).copied().unwrap_or(300);
        self.due.push(Reverse((next_slot(slot.max(now), rate), id)));
    }

    /// Plugin `id` is done without a sample and must be asked again at `t`, off its slots
    /// (its sample would have repeated the time of the last one).
    pub(crate) fn retry_at(&mut self, id: usize, t: u64) {
        self.due.push(Reverse((t, id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_rate_forms() {
        let cases: &[(&str, Option<(u64, bool)>)] = &[
            ("30", Some((30, false))),
            ("5m", Some((300, false))),
            ("1h", Some((3600, false))),
            ("2d", Some((172_800, false))),
            ("1w", Some((604_800, false))),
            ("1t", Some((2_678_400, false))),
            ("1y", Some((31_536_000, false))),
            ("60 aligned", Some((60, true))),
            ("5m aligned", Some((300, true))),
            (" 10 ", Some((10, false))),
            ("0", None),
            ("", None),
            ("abc", None),
            ("5x", None),
            ("5 sometimes", None),
            ("99999999999999999999y", None),
        ];
        for (value, want) in cases {
            let got = parse_update_rate(value.as_bytes()).map(|r| (r.seconds, r.aligned));
            assert_eq!(got, *want, "{value:?}");
        }
    }

    #[test]
    fn rate_comes_from_the_graph_level_line() {
        let config: [&[u8]; 3] = [b"graph_title x", b"a.update_rate 10", b"update_rate 5"];
        assert_eq!(rate_in_config(config).map(|r| r.seconds), Some(5));
        assert_eq!(rate_in_config([&b"graph_title x"[..]]), None);
    }

    #[test]
    fn a_plugin_skipped_for_repeating_a_time_is_asked_again_the_next_second() {
        let mut s = Schedule::default();
        s.add_due(0, 300, 1000);
        assert_eq!(s.pop_due(1000), Some((0, 1000)));
        s.retry_at(0, 1001);
        assert_eq!(s.pop_due(1000), None);
        assert_eq!(s.pop_due(1001), Some((0, 1001)));
        // Back on its slots once it has a sample.
        s.done(0, 1001, 1001);
        assert_eq!(s.next_due(), Some(1200));
    }

    #[test]
    fn plugins_run_on_their_own_slots() {
        let mut s = Schedule::default();
        s.add(0, 5, 1000);
        s.add(1, 300, 1000);
        let mut runs = Vec::new();
        let mut now = 1000;
        while now <= 1300 {
            while let Some((id, slot)) = s.pop_due(now) {
                runs.push((id, slot));
                s.done(id, slot, now);
            }
            now += 1;
        }
        let fast: Vec<u64> = runs.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
        assert_eq!(fast, (1005..=1300).step_by(5).collect::<Vec<_>>());
        let slow: Vec<u64> = runs.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
        assert_eq!(slow, vec![1200]);
    }

    #[test]
    fn a_slow_plugin_skips_its_overrun_slots_and_never_delays_the_others() {
        let mut s = Schedule::default();
        s.add(0, 5, 0); // takes 12 s per poll
        s.add(1, 5, 0); // instant
        let mut busy_until: Option<(u64, u64)> = None;
        let mut runs: Vec<(usize, u64, u64)> = Vec::new();
        for now in 0..=60u64 {
            if let Some((end, slot)) = busy_until {
                if now >= end {
                    s.done(0, slot, now);
                    busy_until = None;
                }
            }
            while let Some((id, slot)) = s.pop_due(now) {
                runs.push((id, slot, now));
                if id == 0 {
                    assert!(
                        busy_until.is_none(),
                        "two requests in flight for one plugin"
                    );
                    busy_until = Some((now + 12, slot));
                } else {
                    s.done(id, slot, now);
                }
            }
        }
        let fast: Vec<u64> = runs.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
        assert_eq!(
            fast,
            (5..=60).step_by(5).collect::<Vec<_>>(),
            "the fast plugin keeps every slot"
        );
        assert!(
            runs.iter().all(|&(_, slot, at)| slot == at),
            "every poll starts on its slot"
        );
        let slow: Vec<u64> = runs.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
        assert_eq!(
            slow,
            vec![5, 20, 35, 50],
            "the slow one runs at the next free slot"
        );
    }

    #[test]
    fn slots_are_wall_clock_multiples() {
        assert_eq!(next_slot(1000, 300), 1200);
        assert_eq!(next_slot(1200, 300), 1500);
        assert_eq!(next_slot(7, 5), 10);
        // No slot left before the end of time: never, rather than an overflow.
        assert_eq!(next_slot(u64::MAX - 1, 300), u64::MAX);
    }
}
