//! Logging to syslog, or to stderr with `--screen`; never to stdout, which carries the
//! protocol.
//!
//! Syslog messages go straight to `/dev/log` as datagrams (facility daemon), so logging
//! needs no dependency. When syslog cannot be reached the message is dropped: falling back
//! to stderr would fill the pipe of an ssh master that never reads it.

use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

/// Severity, with syslog's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 3,
    /// Something is wrong but we went on.
    Warning = 4,
    /// What a sysadmin reads by default: a start, a reload, a recovery, a cut reply.
    Notice = 5,
    /// What a sysadmin may want to see with `--verbose`.
    Info = 6,
    /// Protocol traces, with `--debug`.
    Debug = 7,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The system log, through `/dev/log`.
    Syslog,
    /// Standard error (`--screen`).
    Stderr,
}

struct Logger {
    ident: &'static str,
    target: Target,
    max: Level,
    socket: Option<UnixDatagram>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up logging once per process; later calls are ignored. Until then nothing is logged.
pub fn init(ident: &'static str, target: Target, max: Level) {
    let socket = match target {
        Target::Syslog => UnixDatagram::unbound().ok(),
        Target::Stderr => None,
    };
    let _ = LOGGER.set(Logger {
        ident,
        target,
        max,
        socket,
    });
}

/// Logs one message.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let Some(l) = LOGGER.get() else { return };
    if level > l.max {
        return;
    }
    let text = args.to_string();
    let args = without_os_error(&text);
    match l.target {
        Target::Stderr => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}[{}]: {}: {}",
                l.ident,
                std::process::id(),
                level.name(),
                args
            );
        }
        Target::Syslog => {
            if let Some(sock) = &l.socket {
                const DAEMON: u8 = 3;
                let msg = format!(
                    "<{}>{}[{}]: {}",
                    DAEMON * 8 + level as u8,
                    l.ident,
                    std::process::id(),
                    args
                );
                let _ = sock.send_to(msg.as_bytes(), "/dev/log");
            }
        }
    }
}

/// The logging options both programs take, as Perl's did.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct LogOpts {
    /// Log what happens (sessions, polls, cleanup).
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
    /// Log every command or request (implies --verbose).
    #[arg(long)]
    pub(crate) debug: bool,
    /// Log to stderr instead of syslog.
    #[arg(long)]
    pub(crate) screen: bool,
}

impl LogOpts {
    /// Where logs go.
    pub(crate) fn target(&self) -> Target {
        if self.screen {
            Target::Stderr
        } else {
            Target::Syslog
        }
    }

    /// The most detailed level logged.
    pub(crate) fn level(&self) -> Level {
        if self.debug {
            Level::Debug
        } else if self.verbose {
            Level::Info
        } else {
            Level::Notice
        }
    }
}

/// A message without the ` (os error N)` that `io::Error` adds: the text before it says
/// the same to a sysadmin.
fn without_os_error(text: &str) -> std::borrow::Cow<'_, str> {
    const MARK: &str = " (os error ";
    if !text.contains(MARK) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let tail = &rest[at + MARK.len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = tail;
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Bytes from a peer or a file, quoted and escaped for a log line.
pub(crate) struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 200;
        f.write_str("\"")?;
        for &b in self.0.iter().take(MAX) {
            write!(f, "{}", std::ascii::escape_default(b))?;
        }
        if self.0.len() > MAX {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        f.write_str("\"")
    }
}

/// Logs an error.
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::util::log::log($crate::util::log::Level::Error, format_args!($($t)*)) } }
/// Logs a warning.
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::util::log::log($crate::util::log::Level::Warning, format_args!($($t)*)) } }
/// Logs a notice, shown by default.
#[macro_export]
macro_rules! log_notice { ($($t:tt)*) => { $crate::util::log::log($crate::util::log::Level::Notice, format_args!($($t)*)) } }
/// Logs what `--verbose` shows.
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::util::log::log($crate::util::log::Level::Info, format_args!($($t)*)) } }
/// Logs what `--debug` shows.
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::util::log::log($crate::util::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_left_out() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        let text = format!("cannot open /x: {e}");
        assert!(text.ends_with("(os error 2)"), "{text}");
        assert_eq!(
            without_os_error(&text),
            "cannot open /x: No such file or directory"
        );
        assert_eq!(
            without_os_error("a (os error 28) and b (os error 13), c"),
            "a and b, c"
        );
        // Not an os error number: kept.
        assert_eq!(without_os_error("x (os error y)"), "x (os error y)");
        assert_eq!(without_os_error("plain"), "plain");
    }

    #[test]
    fn quoting_escapes_and_bounds() {
        assert_eq!(Quoted(b"ok\n\xff").to_string(), "\"ok\\n\\xff\"");
        let long = vec![b'a'; 300];
        assert!(Quoted(&long).to_string().ends_with("…(300 bytes)\""));
    }
}
