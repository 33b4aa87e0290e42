//! munin-async: serving a spool directory to a Munin master on stdin/stdout.
//!
//! [`cli`] checks the command line and [`app`] runs it: it opens the spool and runs a
//! [`session`], which reads the master's commands ([`protocol`]) and answers them, a
//! `spoolfetch` in blocks ([`blocks`], the default) or as Perl did ([`spoolfetch`], which
//! also holds the catch-up window, which [`crate::spool::pace`] fits to the master), through a writer thread ([`output`]). [`inspect`]
//! (`--inspect`) reports what a spool holds; [`authkeys`] (`--authorized-keys`) prints the
//! hardened line for a master's key.

pub mod app;
pub(crate) mod authkeys;
pub(crate) mod blocks;
pub mod cli;
pub(crate) mod inspect;
pub(crate) mod output;
pub(crate) mod protocol;
pub mod session;
pub mod spoolfetch;
pub(crate) mod ssh_command;
