//! munin-async: serves a spool directory to a Munin master on stdin/stdout.

use std::process::ExitCode;

use clap::Parser;
use munin_async::serve::cli::AsyncOpts;
use munin_async::util::exit::{self, Exit};

fn main() -> ExitCode {
    let cfg = match AsyncOpts::parse().into_config() {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("munin-async: {msg}");
            return Exit::Usage.into();
        }
    };
    let target = cfg.log_target;
    match munin_async::serve::app::run(cfg) {
        Ok(exit) => exit,
        Err(msg) => exit::fail("munin-async", target, &msg),
    }
    .into()
}
