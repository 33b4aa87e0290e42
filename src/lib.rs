//! Munin's asynchronous proxy node: `munin-asyncd` polls munin-node and spools every
//! sample; `munin-async` serves the spool to a Munin master over the munin-node protocol.
//!
//! One sample's way from munin-node to the master, through the modules:
//!
//! 1. [`asyncd::daemon`] finds the plugin `load` due on its [`asyncd::schedule`] and hands
//!    it to a worker, which asks munin-node `config load` and `fetch load` over an
//!    [`asyncd::node`] connection.
//! 2. The worker writes the answer as one sealed record with [`spool::writer`] (format:
//!    [`spool::record`]) into `munin-daemon.load.<interval>.<size>` ([`spool::names`]);
//!    the coordinator publishes `complete_until` in `SPOOL-META` ([`spool::meta`]).
//! 3. The master runs munin-async over ssh. [`serve::app`] opens the spool
//!    ([`spool::reader`]) and runs a [`serve::session`]: the master asks `spoolfetch N`
//!    ([`serve::protocol`]).
//! 4. [`serve::blocks`] reads every record newer than N (up to `complete_until`, within the
//!    catch-up window of [`serve::spoolfetch`]), checks each record's seal with the
//!    [`spool::record`] scanner, and sends each plugin's config once and then its values,
//!    each with the time it was taken, through [`serve::output`].
//! 5. Later, [`spool::cleanup`] removes the interval file once it is old enough.
//!
//! [`util`] holds what both programs use: bounded line reading, logging, the clock and
//! exit codes. Neither program's modules import the other's; what both need of the spool
//! is in [`spool`]. `docs/spool-format.md`, `docs/protocol.md` and `docs/daemon.md` in
//! the source tree describe the format, the protocol and the daemon.

#![deny(missing_docs)]
// The crate's API is its own: items are `pub(crate)` unless a binary, a fuzz target or a
// test needs them, and the documentation is for contributors, built with
// `cargo doc --document-private-items`, where links to crate-private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod asyncd;
pub mod serve;
pub mod spool;
pub mod util;
