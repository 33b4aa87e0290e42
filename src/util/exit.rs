//! How both programs end: their exit codes ([`Exit`]), and the one place that reports the
//! error that ends one ([`fail`]).

use std::process::ExitCode;

use crate::log_error;
use crate::util::log::Target;

/// A program's exit status, the same for both programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The program ended normally (munin-async: also when the master hung up).
    Ok,
    /// The spool directory could not be used, or writing to the master failed
    /// (munin-async `--inspect`: the spool holds damage).
    Failure,
    /// The command line was wrong.
    Usage,
}

impl Exit {
    /// The number the process exits with.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// Reports the error that ends `program`: one line to its log, and to stderr as well when
/// the log is syslog (an ssh master passes stderr on to its own log; systemd's journal
/// shows it beside the unit's failure). Says [`Exit::Failure`].
pub fn fail(program: &str, target: Target, msg: &dyn std::fmt::Display) -> Exit {
    log_error!("{msg}");
    if target == Target::Syslog {
        eprintln!("{program}: {msg}");
    }
    Exit::Failure
}
