//! The spool directory: the format both programs share.
//!
//! One directory per node. munin-asyncd appends each sample as a record to the interval
//! file of its plugin ([`writer`]); munin-async lists the files and streams their records
//! ([`reader`]), which [`record`] parses and checks; [`meta`] is the `SPOOL-META` file and
//! every key in it; [`names`] the file names; [`cleanup`] removes old files. The format
//! itself is written down in `docs/spool-format.md`.
//!
//! Every file name in a spool directory is defined here or in [`names`] (interval files)
//! and [`meta`] (`SPOOL-META`).
//!
//! What follows is `docs/spool-format.md`, the contract, included whole: its design
//! constraints (one writer per directory, time order within a file, the limits, why there
//! is no magic number or version) and its ledger (`complete_until`) hold for every module
//! here.
//!
#![doc = include_str!("../../docs/spool-format.md")]

pub(crate) mod cleanup;
#[cfg(test)]
pub(crate) mod crash_tests;
pub mod meta;
pub mod names;
pub(crate) mod pace;
pub mod reader;
pub mod record;
pub(crate) mod trace;
pub mod writer;

pub(crate) use reader::create_private;
pub use reader::{ScanError, Spool, SpoolError};

/// Where Debian keeps the spool.
pub(crate) const DEFAULT_SPOOLDIR: &str = "/var/lib/munin-async";

/// The plugins munin-asyncd last found on the node: their names, sanitised, on one line
/// (Perl's too).
pub(crate) const LIST_FILE: &str = "munin-daemon.list";

/// Held locked by the munin-asyncd writing the directory, so a second one is refused
/// (ours only).
pub(crate) const LOCK_FILE: &str = "munin-asyncd.lock";

/// Where munin-async records, after each whole `spoolfetch` reply, the time of the newest
/// sample sent (or the master's cursor when nothing newer was there), for the daemon's
/// lag graph: one decimal number and a newline (ours only).
pub(crate) const CURSOR_FILE: &str = "munin-async.cursor";

/// The plugin munin-asyncd spools its own health as, beside the node's plugins.
pub(crate) const HEALTH_PLUGIN: &str = "munin_asyncd";
