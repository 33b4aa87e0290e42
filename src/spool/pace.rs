//! A catch-up window that follows the master.
//!
//! Debian's munin-update gives each node's worker `timeout_fetch_one_node` seconds (180 by
//! default) to read the whole spoolfetch reply and update the RRDs, and saves the node's
//! cursor only when the worker ends well. A worker killed by that timeout keeps the old
//! cursor, so the master asks again from the same one: with a fixed window it gets the same
//! reply, is killed again, and never catches up (munin-monitoring/munin#619).
//!
//! So munin-async remembers, per master, the last reply it sent ([`Sent`]: from which
//! cursor, up to when, over what span), in [`PACE_FILE`] in the spool directory. A master
//! is told apart by its cursor: each asks from where its last reply taken ended.
//! - Asked again from a cursor a reply was already sent from, which moved it: that reply
//!   was not taken. (A reply is recorded before it goes out, as being sent, and again
//!   once it is out: the master kills munin-async when its worker times out, maybe while
//!   the reply is still being read, and a reply that never went out whole was not taken
//!   either.) This one covers half the span (down to [`FLOOR`]), and never reaches
//!   past the end of the reply not taken: a worker killed while updating the RRDs may have
//!   brought some of them up to that end, and a later reply reaching past it would make
//!   rrdtool refuse those RRDs' whole batch, newer values too (holes for good). Replies that
//!   stop there only send such an RRD values it has.
//! - Asked from where the last reply ended: it was taken. The span doubles, up to three
//!   quarters of the smallest span not taken so far (the master's measure), and back to
//!   the configured window once a reply reached the end of the spool.
//! - A cursor no reply started or ended at (a new master, a restored one): the configured
//!   window.
//!
//! Two masters reading one spool (a standby) each have their own cursor, so their records
//! do not touch. The file keeps the [`KEPT`] most recent.

use std::fmt::Write as _;

/// The file, in the spool directory (ours only).
pub(crate) const PACE_FILE: &str = "munin-async.pace";

/// The shortest span a shortened reply covers, in seconds: still at least the oldest
/// record not sent, so the cursor moves.
pub(crate) const FLOOR: u64 = 60;

/// How many masters' last replies are kept.
const KEPT: usize = 8;

/// One reply sent to a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The cursor it was asked from.
    pub(crate) after: u64,
    /// The newest time it sent (the master's next cursor, if it takes it).
    pub(crate) until: u64,
    /// The span it was planned with, in seconds (0: no limit).
    pub(crate) span: u64,
    /// The smallest span the master did not take, until a reply reached the spool's end.
    pub(crate) ceiling: Option<u64>,
    /// Ends of replies not taken that this master's cursor has not passed: no reply
    /// reaches past the nearest.
    pub(crate) stops: Vec<u64>,
    /// It went out whole. False while it is being sent, and for good when munin-async was
    /// killed or the master went away before its end: no RRD of the master saw any of it
    /// (the master reads a whole reply before it updates one), so it is no stop.
    pub(crate) delivered: bool,
}

/// Why a reply has the span it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// No reply is known to this master: the configured window.
    Configured,
    /// The last reply, `sent`, was not taken: asked again from the same cursor.
    NotTaken(Sent),
    /// The last reply was taken.
    Taken,
}

/// The span and limit of the next reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The catch-up span, in seconds (0: no limit).
    pub(crate) span: u64,
    /// The reply sends nothing newer than this.
    pub(crate) stop: Option<u64>,
    pub(crate) ceiling: Option<u64>,
    pub(crate) why: Why,
}

/// The replies last sent to each master, most recent last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pace {
    pub(crate) sent: Vec<Sent>,
}

impl Pace {
    /// Reads the file's text: one reply a line, `after until span ceiling stops state`
    /// (ceiling `-` for none, stops comma-separated or `-`, state `sent` or `sending`). A
    /// line that does not read so is left out: the master it was for gets the configured
    /// window.
    pub(crate) fn parse(text: &[u8]) -> Pace {
        let text = String::from_utf8_lossy(text);
        let sent = text
            .lines()
            .filter_map(|line| {
                let mut w = line.split_ascii_whitespace();
                let mut num = || w.next().and_then(|x| x.parse::<u64>().ok());
                let (after, until, span) = (num()?, num()?, num()?);
                let rest: Vec<&str> = line.split_ascii_whitespace().skip(3).collect();
                let ceiling = match rest.first() {
                    Some(&"-") => None,
                    Some(c) => Some(c.parse().ok()?),
                    None => return None,
                };
                let stops = match rest.get(1) {
                    Some(&"-") => Vec::new(),
                    Some(s) => s
                        .split(',')
                        .map(|x| x.parse().ok())
                        .collect::<Option<Vec<u64>>>()?,
                    None => return None,
                };
                let delivered = match rest.get(2) {
                    Some(&"sent") => true,
                    Some(&"sending") => false,
                    _ => return None,
                };
                (until >= after).then_some(Sent {
                    after,
                    until,
                    span,
                    ceiling,
                    stops,
                    delivered,
                })
            })
            .collect();
        Pace { sent }
    }

    /// The file's text.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.sent {
            let ceiling = s.ceiling.map_or("-".to_string(), |c| c.to_string());
            let stops = if s.stops.is_empty() {
                "-".to_string()
            } else {
                s.stops
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let state = if s.delivered { "sent" } else { "sending" };
            let _ = writeln!(
                out,
                "{} {} {} {ceiling} {stops} {state}",
                s.after, s.until, s.span
            );
        }
        out
    }

    /// The plan of a reply to `spoolfetch after`, with the configured window `window`
    /// (seconds, 0: no limit).
    pub(crate) fn plan(&self, after: u64, window: u64) -> Plan {
        let configured = Plan {
            span: window,
            stop: None,
            ceiling: None,
            why: Why::Configured,
        };
        // The newest record of this master: a reply from its cursor that moved it (not
        // taken), or one that ended at its cursor (taken).
        let Some(last) = self
            .sent
            .iter()
            .rev()
            .find(|s| (s.after == after && s.until > after) || s.until == after)
        else {
            return configured;
        };
        let stops: Vec<u64> = last.stops.iter().copied().filter(|&t| t > after).collect();
        if last.after == after && last.until > after {
            // Not taken. A reply without limit halves the span it covered.
            let covered = if last.span == 0 {
                last.until - last.after
            } else {
                last.span
            };
            let span = (covered / 2).max(FLOOR);
            let mut stops = stops;
            if last.delivered {
                stops.push(last.until);
            }
            return Plan {
                span,
                stop: stops.iter().copied().min(),
                ceiling: Some(last.ceiling.map_or(covered, |c| c.min(covered))),
                why: Why::NotTaken(last.clone()),
            };
        }
        // Taken.
        if last.ceiling.is_none() && stops.is_empty() {
            return Plan {
                why: Why::Taken,
                ..configured
            };
        }
        let limit = |x: u64| if window == 0 { x } else { x.min(window) };
        let grown = last.span.saturating_mul(2);
        let span = match last.ceiling {
            Some(c) => limit(grown.min(c / 4 * 3)).max(last.span).max(FLOOR),
            None => limit(grown),
        };
        Plan {
            span,
            stop: stops.iter().copied().min(),
            ceiling: last.ceiling,
            why: Why::Taken,
        }
    }

    /// A reply planned so goes out from `after` up to `until` (the newest time sent, or
    /// while it is `delivered: false`, the newest it may send); `whole`: it reached the
    /// end of what the spool had to send. Replaces this master's record.
    pub(crate) fn sent(
        &mut self,
        (after, until): (u64, u64),
        plan: &Plan,
        whole: bool,
        delivered: bool,
    ) {
        let mut stops: Vec<u64> = match &plan.why {
            Why::NotTaken(last) => last
                .stops
                .iter()
                .copied()
                .chain(last.delivered.then_some(last.until))
                .collect(),
            _ => self
                .sent
                .iter()
                .rev()
                .find(|s| s.until == after)
                .map(|s| s.stops.clone())
                .unwrap_or_default(),
        };
        stops.retain(|&t| t > until);
        stops.sort_unstable();
        stops.dedup();
        let record = Sent {
            after,
            until,
            span: plan.span,
            ceiling: if whole { None } else { plan.ceiling },
            stops,
            delivered,
        };
        self.sent
            .retain(|s| !(s.after == after || s.until == after || s.until == until));
        self.sent.push(record);
        let extra = self.sent.len().saturating_sub(KEPT);
        self.sent.drain(..extra);
    }

    /// The span of the reply sent last (for munin-asyncd's health).
    pub(crate) fn current_span(&self) -> Option<u64> {
        self.sent.last().map(|s| s.span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const W: u64 = 6 * DAY;

    /// The master asks from `after`; the reply covers `plan.span` from `after` (the
    /// oldest record right after the cursor), stopped at `plan.stop`, and at `end` (the
    /// newest record).
    fn reply(pace: &mut Pace, after: u64, end: u64) -> (Plan, u64) {
        let plan = pace.plan(after, W);
        let mut until = if plan.span == 0 {
            end
        } else {
            (after + plan.span).min(end)
        };
        if let Some(stop) = plan.stop {
            until = until.min(stop);
        }
        pace.sent((after, until), &plan, until == end, true);
        (plan, until)
    }

    #[test]
    fn a_reply_not_taken_halves_the_span_and_a_taken_one_grows_it_back() {
        let mut pace = Pace::default();
        let end = 20 * DAY;
        let (plan, first) = reply(&mut pace, 0, end);
        assert_eq!((plan.span, plan.why, first), (W, Why::Configured, W));
        // Not taken: from 0 again, half, and never past the first reply's end.
        let (plan, second) = reply(&mut pace, 0, end);
        assert_eq!(plan.span, W / 2);
        assert!(matches!(plan.why, Why::NotTaken(_)));
        assert_eq!(plan.stop, Some(W));
        assert_eq!(second, W / 2);
        // Taken: from its end; grown, but to 3/4 of what was not taken, and stopped at
        // the first reply's end.
        let (plan, third) = reply(&mut pace, second, end);
        assert_eq!(plan.why, Why::Taken);
        assert_eq!(plan.span, W / 4 * 3);
        assert_eq!(third, W);
        // Past that end: no stop; still under the ceiling.
        let (plan, fourth) = reply(&mut pace, third, end);
        assert_eq!((plan.span, plan.stop), (W / 4 * 3, None));
        assert_eq!(fourth, W + W / 4 * 3);
        // Caught up (the reply reached the spool's end): back to the configured window.
        let mut at = fourth;
        for _ in 0..10 {
            at = reply(&mut pace, at, end).1;
        }
        assert_eq!(at, end);
        let plan = pace.plan(end, W);
        assert_eq!((plan.span, plan.ceiling, plan.stop), (W, None, None));
        // The file says the same.
        assert_eq!(Pace::parse(pace.text().as_bytes()), pace);
    }

    #[test]
    fn halving_stops_at_the_floor_and_every_reply_moves_the_cursor() {
        let mut pace = Pace::default();
        let mut spans = Vec::new();
        for _ in 0..30 {
            let (plan, until) = reply(&mut pace, 0, 100 * DAY);
            assert!(until > 0);
            spans.push(plan.span);
        }
        assert_eq!(spans[0], W);
        assert_eq!(*spans.last().unwrap(), FLOOR);
        assert!(spans.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn two_masters_do_not_shrink_each_others_span() {
        let mut pace = Pace::default();
        let end = 30 * DAY;
        // Master A is killed each time from 0; master B, from 10 days, takes each reply.
        let (_, a1) = reply(&mut pace, 0, end);
        let (_, b1) = reply(&mut pace, 10 * DAY, end);
        let (a, _) = reply(&mut pace, 0, end);
        let (b, b2) = reply(&mut pace, b1, end);
        assert_eq!(a.span, W / 2);
        assert_eq!(a.stop, Some(a1));
        assert_eq!((b.span, b.why, b.stop), (W, Why::Taken, None));
        assert_eq!(b2, b1 + W);
    }

    #[test]
    fn a_reply_without_limit_not_taken_is_halved_from_what_it_covered() {
        let mut pace = Pace::default();
        let plan = pace.plan(1000, 0);
        assert_eq!(plan.span, 0);
        pace.sent((1000, 1000 + 8 * DAY), &plan, true, true);
        let plan = pace.plan(1000, 0);
        assert_eq!(plan.span, 4 * DAY);
        assert_eq!(plan.stop, Some(1000 + 8 * DAY));
    }

    #[test]
    fn an_unreadable_line_is_left_out() {
        let pace =
            Pace::parse(b"1 2 3 - - sent\nnonsense\n5 4 3 - - sent\n7 9 60 120 10,11 sending\n");
        assert_eq!(pace.sent.len(), 2);
        assert_eq!(pace.sent[1].stops, [10, 11]);
        assert_eq!(pace.sent[1].ceiling, Some(120));
        assert!(pace.sent[0].delivered && !pace.sent[1].delivered);
    }

    #[test]
    fn a_reply_cut_off_on_its_way_is_no_stop() {
        let mut pace = Pace::default();
        let plan = pace.plan(0, W);
        // Recorded before it goes out; munin-async killed while the master reads it.
        pace.sent((0, W), &plan, false, false);
        let plan = pace.plan(0, W);
        assert_eq!((plan.span, plan.stop), (W / 2, None));
        assert!(matches!(plan.why, Why::NotTaken(_)));
    }
}
