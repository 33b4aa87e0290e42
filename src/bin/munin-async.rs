//! munin-async: serves a spool directory to a Munin master on stdin/stdout.

use std::process::ExitCode;

use clap::Parser;
use munin_async::serve::cli::AsyncOpts;
use munin_async::util::exit;

fn main() -> ExitCode {
    match AsyncOpts::parse().into_config() {
        Ok(cfg) => munin_async::serve::app::run(cfg),
        Err(msg) => {
            eprintln!("munin-async: {msg}");
            ExitCode::from(exit::USAGE)
        }
    }
}
