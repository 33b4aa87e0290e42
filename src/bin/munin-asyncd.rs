//! munin-asyncd: polls munin-node and spools every sample for munin-async.

use std::process::ExitCode;

use clap::Parser;
use munin_async::cli::exit;
use munin_async::daemon_cli::AsyncdOpts;
use munin_async::{daemon, log, log_error, signals};

fn main() -> ExitCode {
    let cfg = match AsyncdOpts::parse().into_config() {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("munin-asyncd: {msg}");
            return ExitCode::from(exit::USAGE);
        }
    };
    log::init("munin-asyncd", cfg.log_target, cfg.log_level);
    signals::install();
    match daemon::run(&cfg) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            log_error!("{e}");
            if cfg.log_target == log::Target::Syslog {
                eprintln!("munin-asyncd: {e}");
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}
