//! munin-asyncd: polls munin-node and spools every sample for munin-async.

use std::process::ExitCode;

use clap::Parser;
use munin_async::asyncd::cli::AsyncdOpts;
use munin_async::asyncd::env::Env;
use munin_async::asyncd::{daemon, signals};
use munin_async::log_error;
use munin_async::util::exit;
use munin_async::util::log;

fn main() -> ExitCode {
    let cfgs = match AsyncdOpts::parse().into_configs() {
        Ok(cfgs) => cfgs,
        Err(msg) => {
            eprintln!("munin-asyncd: {msg}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let Some(first) = cfgs.first() else {
        return ExitCode::from(exit::USAGE);
    };
    let target = first.log_target;
    log::init("munin-asyncd", target, first.log_level);
    signals::install();
    match daemon::run_all(&cfgs, Env::system(), signals::subscribe) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            log_error!("{e}");
            if target == log::Target::Syslog {
                eprintln!("munin-asyncd: {e}");
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}
