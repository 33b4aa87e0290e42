//! munin-async: serves a spool directory to a Munin master on stdin/stdout.

use std::process::ExitCode;

use clap::Parser;
use munin_async::cli::{exit, AsyncOpts};

fn main() -> ExitCode {
    match AsyncOpts::parse().into_config() {
        Ok(cfg) => munin_async::app::run(cfg),
        Err(msg) => {
            eprintln!("munin-async: {msg}");
            ExitCode::from(exit::USAGE)
        }
    }
}
