//! munin-asyncd: polls munin-node and spools every sample for munin-async.

use std::process::ExitCode;

use clap::Parser;
use munin_async::asyncd::cli::AsyncdOpts;
use munin_async::asyncd::env::Env;
use munin_async::asyncd::{daemon, signals};
use munin_async::util::exit::{self, Exit};
use munin_async::util::log;

fn main() -> ExitCode {
    let cfgs = match AsyncdOpts::parse().into_configs() {
        Ok(cfgs) => cfgs,
        Err(msg) => {
            eprintln!("munin-asyncd: {msg}");
            return Exit::Usage.into();
        }
    };
    let Some(first) = cfgs.first() else {
        return Exit::Usage.into();
    };
    let target = first.log_target;
    log::init("munin-asyncd", target, first.log_level);
    signals::install();
    match daemon::run_all(&cfgs, Env::system(), signals::subscribe) {
        Ok(()) => Exit::Ok,
        Err(e) => exit::fail("munin-asyncd", target, &e),
    }
    .into()
}
