//! `complete_until`: up to which second a spool is complete, for munin-async to serve.
//!
//! A sample's time is the second its request went out. munin-async serves nothing newer
//! than `complete_until`, and the master asks next for samples newer than the newest it
//! got, so every sample still to come must be newer than any `complete_until` published:
//!
//! - a poll under way since second `t` may still land with time `t`: at most `t - 1`;
//! - with nothing under way, a poll can still go out later this second: at most
//!   `now - 1`; but when the next poll the schedule knows of (or the next health sample,
//!   or the next reading of the plugin list, whose new plugins go out at once) is not due
//!   before second `e`, up to `e - 1`, so an idle daemon need not rewrite SPOOL-META
//!   every second. A poll nothing foresaw (a plugin found by a `list` a SIGHUP asked for)
//!   goes out no earlier than what was published plus one: the coordinator holds it back
//!   (`not_before`);
//! - never lower than what was published while running: the promise above stands;
//! - at a stop, with nothing under way, exactly `now`: every sample is in, none is newer
//!   than `now`, so a promise beyond it can be taken back, and must be: the next start
//!   takes no sample at or before what it finds (`floor`), and should not wait for a
//!   promise it did not make. (A crash leaves the promise; the next start takes it back
//!   the same way, see `open_spool`.) But never below the newest sample: after the wall
//!   clock stepped back, `now` can be older than samples a master may already have.

/// The `complete_until` to publish for one spool.
///
/// `in_flight_since`: when the oldest poll under way for this spool went out, if any;
/// `newest`: the time of the newest sample spooled, if any; `next_due`: the earliest second the schedule, the health plugin or the plugin list
/// sends a poll;
/// `said`: the value published before, if any; `stopping`: nothing will go out any more
/// (then `said` is not kept: see the module doc).
pub(crate) fn complete_until(
    (in_flight_since, newest): (Option<u64>, Option<u64>),
    next_due: Option<u64>,
    now: u64,
    said: Option<u64>,
    stopping: bool,
) -> u64 {
    match (in_flight_since, stopping) {
        (Some(t), true) => t.saturating_sub(1),
        (None, true) => now.max(newest.unwrap_or(0)),
        (Some(t), false) => t.saturating_sub(1).max(said.unwrap_or(0)),
        (None, false) => match next_due {
            Some(e) if e > now => e - 1,
            _ => now.saturating_sub(1),
        }
        .max(said.unwrap_or(0)),
    }
}

/// The earliest second a poll of a plugin may go out: after its last sample, after what a
/// restart found published (`floor`), and after what is published now (`said`).
pub(crate) fn not_before(last: Option<u64>, floor: u64, said: Option<u64>) -> u64 {
    let after = |t: u64| t.saturating_add(1);
    last.map_or(0, after)
        .max(after(floor))
        .max(said.map_or(0, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_after_the_clock_went_back_keeps_the_newest_sample_promised() {
        // Idle at a stop: `now`, but not below the newest sample.
        assert_eq!(
            complete_until((None, Some(900)), None, 1000, Some(1100), true),
            1000
        );
        assert_eq!(
            complete_until((None, Some(1200)), None, 1000, Some(1250), true),
            1200
        );
        // Running: never below what was said.
        assert_eq!(
            complete_until((None, Some(1200)), Some(1300), 1000, Some(1250), false),
            1299
        );
    }

    #[test]
    fn a_poll_under_way_holds_it_back_to_the_second_before_it() {
        assert_eq!(
            complete_until((Some(100), None), Some(200), 150, None, false),
            99
        );
        // Also at a stop: an abandoned poll may have been written.
        assert_eq!(complete_until((Some(100), None), None, 150, None, true), 99);
    }

    #[test]
    fn idle_it_reaches_to_the_second_before_the_next_due_poll() {
        assert_eq!(
            complete_until((None, None), Some(3600), 1000, None, false),
            3599
        );
        // The same while nothing changes: nothing to rewrite.
        assert_eq!(
            complete_until((None, None), Some(3600), 2000, Some(3599), false),
            3599
        );
    }

    #[test]
    fn with_a_poll_due_now_or_nothing_scheduled_it_is_the_second_before_now() {
        assert_eq!(
            complete_until((None, None), Some(1000), 1000, None, false),
            999
        );
        assert_eq!(
            complete_until((None, None), Some(900), 1000, None, false),
            999
        );
        assert_eq!(complete_until((None, None), None, 1000, None, false), 999);
    }

    #[test]
    fn at_a_stop_with_nothing_under_way_everything_up_to_now_is_in() {
        assert_eq!(
            complete_until((None, None), Some(5000), 1000, Some(999), true),
            1000
        );
        // A promise beyond now is taken back.
        assert_eq!(
            complete_until((None, None), Some(5000), 1000, Some(4999), true),
            1000
        );
    }

    #[test]
    fn it_never_goes_back() {
        // A poll held back by not_before is under way since before what was published.
        assert_eq!(
            complete_until((Some(1000), None), Some(3600), 1000, Some(3599), false),
            3599
        );
        assert_eq!(complete_until((None, None), None, 0, Some(7), false), 7);
    }

    #[test]
    fn nothing_goes_out_at_or_before_what_is_published() {
        assert_eq!(not_before(None, 0, None), 1);
        assert_eq!(not_before(Some(100), 0, None), 101);
        assert_eq!(not_before(Some(100), 200, None), 201);
        assert_eq!(not_before(Some(100), 200, Some(3599)), 3600);
        assert_eq!(not_before(Some(u64::MAX), 0, Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn every_sample_to_come_is_newer_than_every_value_published() {
        // A day of one plugin at a 300 s rate and a health sample every 300 s, a new
        // plugin found at 1234 that the schedule did not foresee: each sample's time is
        // above every complete_until published before it went out.
        let mut said: Option<u64> = None;
        let mut published_max = 0;
        let mut due = 0u64;
        let mut surprise = Some(1234u64);
        for now in 0..86_400u64 {
            let mut sent = Vec::new();
            if now >= due {
                sent.push(now);
                due = (now / 300 + 1) * 300;
            }
            if let Some(s) = surprise {
                if now >= s && now >= not_before(None, 0, said) {
                    sent.push(now);
                    surprise = None;
                }
            }
            for t in &sent {
                assert!(said.is_none_or(|c| *t > c), "{t} at or before {said:?}");
            }
            // The polls land within the second.
            let c = complete_until((None, None), Some(due), now, said, false);
            published_max = published_max.max(c);
            said = Some(c);
        }
        assert!(surprise.is_none(), "the unforeseen poll never went out");
        assert!(published_max >= 86_100 - 1);
    }
}
