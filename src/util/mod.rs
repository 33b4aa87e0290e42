//! Helpers both programs use: bounded line reading, logging, the clock, exit codes.

pub(crate) mod clock;
pub mod exit;
pub mod line;
pub mod log;
