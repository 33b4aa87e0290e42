//! The system clock, in whole seconds: the one place the programs read it, so that the
//! parts that take a clock (the session, the schedule) can be given another in tests.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, from the system clock (0 before 1970).
pub(crate) fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
