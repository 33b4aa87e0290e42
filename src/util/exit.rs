//! Exit codes, the same for both programs.

/// The program ended normally (munin-async: also when the master hung up).
pub const OK: u8 = 0;
/// The spool directory could not be used, or writing to the master failed.
pub const FAILURE: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
