//! Crash-state exploration of the spool writer, after ALICE (Pillai et al., OSDI 2014).
//!
//! A workload drives a [`SpoolWriter`](crate::spool::writer::SpoolWriter) on a real
//! directory with a [`Trace`](crate::spool::trace::Trace) attached, so
//! every file operation it performs is recorded. For every prefix of that trace (a crash
//! after each operation) the generator builds the directories a power loss could leave,
//! under the persistence model below, and the checker runs on each: munin-async's reader
//! and a whole session on the state as it is, then munin-asyncd's start on it
//! ([`open_spool`](crate::asyncd::node_spool::open_spool): the lock, the torn-tail repair, SPOOL-META read back), then a session
//! again after the daemon's first SPOOL-META.
//!
//! # The persistence model
//!
//! Close to ext4 with `data=ordered` as ALICE models it, and no more generous:
//!
//! - What a file's `fdatasync`/`fsync` covered persists: every write and truncation of the
//!   file before it.
//! - Each later write to the file may be missing, present, or cut at a 512-byte boundary
//!   of the file; each later truncation applied or not. They are chosen independently, so
//!   a later write can persist while an earlier one is lost (the hole reads as zeros).
//! - Directory operations (a new file's entry, a rename, an unlink) are atomic and
//!   persist in the order they were made (the journal): some prefix of them. Those before
//!   the directory's last `fsync` always persist.
//! - Files that existed before the workload are durable as they were.
//!
//! # The invariants
//!
//! 1. Nothing torn or altered is served: every record munin-async's reader accepts, before
//!    the repair and after it, is byte for byte one the workload appended, each once; a
//!    session's `spoolfetch` serves no graph and time the workload did not write.
//! 2. The daemon starts on every state (no crash loop): the lock, the repair and reading
//!    SPOOL-META succeed, and SPOOL-META, lost or damaged, is written anew.
//! 3. With `--durability record`, every record whose `append` returned before the crash
//!    is there after the repair, and served once the daemon has published its
//!    `complete_until`.
//! 4. With `--durability record`, the `complete_until` a state's SPOOL-META holds never
//!    points past durable data: every record appended before that SPOOL-META was written,
//!    with a time at or before it, is there.
//!
//! With `--durability kernel` nothing is synced, so 3 and 4 are not promised: the states
//! are sampled and 1 and 2 checked, and the states that break 4 counted for the docs.
//!
//! # The files
//!
//! `workloads.rs` makes and records the workloads, `model.rs` is the persistence model
//! (a trace cut at a crash, the choices it leaves, the directory each makes),
//! `exploration.rs` walks the states and `checks.rs` checks each; `tests.rs` runs them,
//! bounded or long.

mod checks;
mod exploration;
mod model;
mod workloads;

pub(crate) use checks::*;
pub(crate) use exploration::*;
pub(crate) use model::*;
pub(crate) use workloads::*;

#[cfg(test)]
mod tests;
