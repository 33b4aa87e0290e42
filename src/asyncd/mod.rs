//! munin-asyncd: polling munin-node and appending each sample to the spool.
//!
//! [`cli`] checks the command line and [`fanout`] the configuration file for several
//! munin-nodes. [`daemon`] opens each node's spool ([`node_spool`]) and runs one
//! [`coordinator`] per munin-node on one driving thread: it reads the plugin list
//! ([`listing`]) into its [`registry`] and polls each plugin on its [`schedule`] ([`poll`]) through [`node`] connections on the
//! [`workers`] all nodes share, writes each sample with the spool's writer, made durable
//! as [`commit`] says, publishes SPOOL-META ([`ledger`]) with `complete_until`
//! ([`watermark`]), and spools its own
//! [`health`]. The threads talk in [`msg`]'s messages. [`signals`] turns SIGTERM, SIGINT
//! and SIGHUP into requests the driving thread hears on its channel, and talks to
//! systemd; [`env`](mod@env) is the clock and the rest the core takes from the world.
//!
//! The modules import each other without a cycle: `msg`, `node`, `schedule`, `signals`
//! at the bottom, `daemon` at the top (`tests/architecture.rs` checks it).

pub mod cli;
pub(crate) mod commit;
pub(crate) mod coordinator;
pub mod daemon;
pub mod env;
pub(crate) mod fanout;
pub(crate) mod health;
pub(crate) mod ledger;
pub(crate) mod listing;
pub(crate) mod msg;
pub(crate) mod node;
pub(crate) mod node_spool;
pub(crate) mod poll;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod schedule;
pub mod signals;
pub(crate) mod watermark;
pub(crate) mod workers;

#[cfg(test)]
mod tests;
