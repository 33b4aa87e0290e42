//! munin-asyncd: polling munin-node and appending each sample to the spool.
//!
//! [`cli`] checks the command line and [`fanout`] the configuration file for several
//! munin-nodes. [`daemon`] runs one coordinator per munin-node: it reads the plugin list
//! and polls each plugin on its [`schedule`] through [`node`] connections on the
//! [`workers`] all nodes share, writes each sample with the spool's writer, publishes
//! `complete_until` ([`watermark`]), and spools its own [`health`]. [`signals`] turns
//! SIGTERM, SIGINT and SIGHUP into flags, wakes the sleeping loops, and talks to systemd.

pub mod cli;
pub(crate) mod commit;
pub(crate) mod coordinator;
pub mod daemon;
pub(crate) mod env;
pub(crate) mod fanout;
pub(crate) mod health;
#[cfg(test)]
mod in_process;
pub(crate) mod node;
pub(crate) mod poll;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod schedule;
pub mod signals;
pub(crate) mod watermark;
pub(crate) mod workers;
