//! Munin's asynchronous proxy node: `munin-async` serves a spool directory to a Munin
//! master over the munin-node protocol on stdin/stdout, and `munin-asyncd` (to come)
//! fills that spool by polling munin-node.
//!
//! The spool format is Debian's Munin 2.0 layout; see `docs/spool-format.md` and
//! `docs/protocol.md` in the source tree.

#![deny(missing_docs)]

pub mod app;
pub mod authkeys;
pub mod blocks;
pub mod cleanup;
pub mod cli;
pub mod daemon;
pub mod daemon_cli;
pub mod fanout;
pub mod health;
pub mod inspect;
pub mod line;
pub mod log;
pub mod meta;
pub mod names;
pub mod node;
pub mod output;
pub mod protocol;
pub mod record;
pub mod schedule;
pub mod session;
pub mod signals;
pub mod spool;
pub mod spoolfetch;
pub mod writer;
