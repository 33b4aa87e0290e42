//! The session munin-async serves on stdin/stdout.
//!
//! Greeting, then one reply per command, flushed after each, until `quit` or the end of
//! input. Nothing in this module writes anything but protocol to the output; problems go
//! to the log and, where the master should know, to a `#` comment line. See
//! `docs/protocol.md`.

use std::io::{self, Read, Write};

use crate::serve::blocks::spoolfetch_blocks;
use crate::serve::protocol::{parse, Command, Since, MAX_COMMAND};
use crate::serve::spoolfetch::{newest_record, spoolfetch, Form, Window};
use crate::spool::names::sanitise;
use crate::spool::pace::{Pace, Why};
use crate::spool::record::{is_value_line, write_served_line};
use crate::spool::Spool;
use crate::util::line::{LineEnd, LineReader};
use crate::util::log::Quoted;
use crate::{log_debug, log_error, log_info, log_notice, log_warn};

/// How far one spoolfetch may reach past the oldest record it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    /// This many spool intervals (`interval_size` from SPOOL-META).
    Intervals(u64),
    /// This many seconds; 0 means no limit.
    Seconds(u64),
}

/// The default catch-up window: six spool intervals, six days with Debian's default
/// interval (what Perl sends at most, counted in files).
pub(crate) const DEFAULT_CATCHUP: Catchup = Catchup::Intervals(6);

/// What the session needs to know.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name in the greeting.
    pub hostname: String,
    /// Announce the `spool` capability (`--spoolfetch`).
    pub spoolfetch: bool,
    /// The catch-up window.
    pub catchup: Catchup,
    /// How spoolfetch replies are laid out.
    pub form: Form,
    /// The spool's interval size, for [`Catchup::Intervals`].
    pub interval_size: u64,
    /// The current time, seconds since the epoch (injected for tests).
    pub clock: fn() -> u64,
}

impl SessionConfig {
    /// The catch-up window in seconds (0: none).
    pub(crate) fn catchup_seconds(&self) -> u64 {
        match self.catchup {
            Catchup::Intervals(n) => n.saturating_mul(self.interval_size),
            Catchup::Seconds(s) => s,
        }
    }
}

/// The session could not go on.
#[derive(Debug)]
pub enum SessionError {
    /// Reading the master's commands failed.
    Input(io::Error),
    /// Writing to the master failed (a broken pipe means the master hung up).
    Output(io::Error),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Input(e) => write!(f, "reading from the master: {e}"),
            SessionError::Output(e) => write!(f, "writing to the master: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// Serves one session: greeting, commands until `quit` or end of input.
pub fn run<R: Read, W: Write>(
    spool: &Spool,
    cfg: &SessionConfig,
    input: R,
    out: &mut W,
) -> Result<(), SessionError> {
    let o = SessionError::Output;
    writeln!(out, "# munin node at {}", cfg.hostname).map_err(o)?;
    out.flush().map_err(o)?;
    let mut lines = LineReader::new(input, 8 * 1024, MAX_COMMAND);
    let mut master = Master::default();
    loop {
        let Some((end, line, _)) = lines.next_line().map_err(SessionError::Input)? else {
            log_info!("the master closed the session");
            return Ok(());
        };
        match end {
            LineEnd::TooLong => {
                log_warn!("command line over {MAX_COMMAND} bytes ignored");
                writeln!(out, "# Line too long (over {MAX_COMMAND} bytes); ignored").map_err(o)?;
            }
            LineEnd::Eof => {
                log_warn!("input ended in mid-line, command ignored: {}", Quoted(line));
                return Ok(());
            }
            LineEnd::Newline => {
                log_debug!("< {}", Quoted(line));
                if !answer(spool, cfg, &mut master, line, out).map_err(o)? {
                    return Ok(());
                }
            }
        }
        out.flush().map_err(o)?;
    }
}

/// What a session has shown of its peer.
#[derive(Debug, Default)]
struct Master {
    /// It announced its capabilities, as munin-update does before every spoolfetch (it
    /// learns from our answer that it can spoolfetch at all): its spoolfetch replies are
    /// fitted to what it took before ([`crate::spool::pace`]). A session that does not
    /// (a look by hand, a test reading a spool) neither reads nor moves that record.
    announced: bool,
}

/// Answers one command; `false` when the session is over.
fn answer<W: Write>(
    spool: &Spool,
    cfg: &SessionConfig,
    master: &mut Master,
    line: &[u8],
    out: &mut W,
) -> io::Result<bool> {
    match parse(line) {
        Command::Quit => return Ok(false),
        Command::Cap(_) => {
            master.announced = true;
            let spool_cap = if cfg.spoolfetch { " spool" } else { "" };
            writeln!(out, "cap multigraph{spool_cap}")?;
        }
        Command::List(_) => {
            // Like Perl, the node argument is ignored: a spool holds one node, and the
            // master may know it under another name than the greeting's.
            let plugins = spool.plugins().unwrap_or_else(|e| {
                log_error!("{e}");
                Vec::new()
            });
            writeln!(out, "{}", plugins.join(" "))?;
        }
        Command::Nodes => writeln!(out, "{}\n.", cfg.hostname)?,
        Command::Version => writeln!(
            out,
            "munins node on {} version: {} (munin-async, Rust)",
            cfg.hostname,
            env!("CARGO_PKG_VERSION")
        )?,
        Command::Config(p) => serve_newest(spool, p, false, out)?,
        Command::Fetch(p) => serve_newest(spool, p, true, out)?,
        Command::MissingPlugin(verb) => {
            writeln!(
                out,
                "# {} needs a plugin name\n.",
                String::from_utf8_lossy(verb)
            )?;
        }
        Command::Spoolfetch(since) => {
            let after = match since {
                Since::After(n) => n,
                Since::Last(n) => (cfg.clock)().saturating_sub(n),
            };
            serve_spoolfetch(spool, cfg, after, master.announced, out)?;
        }
        Command::BadSpoolfetch(arg) => {
            log_warn!("spoolfetch with unusable argument {}", Quoted(arg));
            writeln!(
                out,
                "# spoolfetch needs a timestamp (seconds since the epoch) or -SECONDS, got {}\n.",
                Quoted(arg)
            )?;
        }
        Command::Empty | Command::Unknown => {
            log_debug!("unknown command {}", Quoted(line));
            writeln!(
                out,
                "# Unknown command. Try cap, list, nodes, config, fetch, spoolfetch, version or quit"
            )?;
        }
    }
    Ok(true)
}

fn serve_spoolfetch<W: Write>(
    spool: &Spool,
    cfg: &SessionConfig,
    after: u64,
    paced: bool,
    out: &mut W,
) -> io::Result<()> {
    let files = match spool.interval_files() {
        Ok(f) => f,
        Err(e) => {
            log_error!("spoolfetch: {e}");
            return writeln!(out, "# cannot read the spool directory\n.");
        }
    };
    let configured = cfg.catchup_seconds();
    let plan = match paced {
        true => spool.pace().plan(after, configured),
        false => Pace::default().plan(after, configured),
    };
    let mut window = Window::plan(spool, &files, after, plan.span);
    if let Some(stop) = plan.stop {
        window.until = window.until.min(stop);
    }
    let cut = window.until != u64::MAX;
    // Our munin-asyncd says up to when every sample is in: nothing newer is sent yet,
    // or the master's cursor could pass a sample still being taken.
    let complete = spool.meta().ok().and_then(|m| m.complete_until());
    if let Some(complete) = complete {
        window.until = window.until.min(complete);
    }
    if let Why::NotTaken(last) = &plan.why {
        log_notice!(
            "spoolfetch {after}: the master asks again from the cursor of the last reply \
             (up to {}, a span of {} s), so it did not take it (its timeout_fetch_one_node \
             ran out?): this reply covers {} s{}",
            last.until,
            last.span,
            plan.span,
            plan.stop
                .map_or(String::new(), |s| format!(" and stops at {s}"))
        );
    }
    // The master's record of this reply, read again each time: another master's may
    // have been recorded meanwhile.
    let whole = !cut || complete.is_some_and(|c| window.until >= c);
    let record = |until: u64, delivered: bool| {
        if paced {
            let mut pace = spool.pace();
            pace.sent((after, until), &plan, whole, delivered);
            spool.record_pace(&pace);
        }
    };
    // Recorded before it goes out: the master may kill munin-async while it reads.
    let planned = match window.until {
        u64::MAX => files.iter().map(|f| f.end()).max().unwrap_or(after),
        until => until,
    };
    record(planned.max(after), false);
    let report = match cfg.form {
        Form::Records => spoolfetch(spool, &files, window, out)?,
        Form::Blocks => {
            let mut listed = spool.listed().unwrap_or_default();
            // munin-asyncd's own health plugin is not in munin-node's list, but is a
            // graph of this host all the same.
            if files
                .iter()
                .any(|f| f.service == crate::spool::HEALTH_PLUGIN)
            {
                listed.insert(crate::spool::HEALTH_PLUGIN.to_string());
            }
            spoolfetch_blocks(spool, &files, window, &listed, out)?
        }
    };
    if cut {
        log_notice!(
            "spoolfetch {after}: a backlog, sent up to {} (a span of {} s; the catch-up \
             window is {configured} s); the rest comes with the next fetches",
            report.newest.unwrap_or(after),
            plan.span
        );
    }
    // The reply went out whole: the master has every sample up to the newest sent.
    let newest = report.newest.map_or(after, |n| n.max(after));
    spool.record_cursor(newest);
    record(newest, true);
    log_info!(
        "spoolfetch {after}: sent {} records up to {} (window ends {}), {} damaged parts skipped, {} files unreadable",
        report.records,
        report.newest.map_or("none".to_string(), |t| t.to_string()),
        if window.until == u64::MAX {
            "nowhere".to_string()
        } else {
            window.until.to_string()
        },
        report.damaged,
        report.unreadable
    );
    Ok(())
}

/// `config P` and `fetch P` from the newest intact record of P.
fn serve_newest<W: Write>(
    spool: &Spool,
    plugin: &[u8],
    values: bool,
    out: &mut W,
) -> io::Result<()> {
    let service = sanitise(plugin);
    let files = spool.interval_files().unwrap_or_else(|e| {
        log_error!("{e}");
        Vec::new()
    });
    let Some((epoch, body)) = newest_record(spool, &files, &service) else {
        return writeln!(out, "# Unknown service\n.");
    };
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // The writer adds `multigraph SERVICE` before a plain plugin's output; a plain
    // plugin's config and fetch do not carry it.
    let multigraphs = lines
        .iter()
        .filter(|l| l.starts_with(b"multigraph "))
        .count();
    let added = format!("multigraph {service}");
    let skip_first = multigraphs == 1 && lines.first() == Some(&added.as_bytes());
    let mut reply = Vec::with_capacity(body.len() + 64);
    for (i, l) in lines.iter().enumerate() {
        if i == 0 && skip_first {
            continue;
        }
        if l.starts_with(b"multigraph ") {
            reply.extend_from_slice(l);
            reply.push(b'\n');
        } else if is_value_line(l) == values {
            if values {
                write_served_line(l, &epoch, &mut reply);
            } else {
                reply.extend_from_slice(l);
                reply.push(b'\n');
            }
        }
    }
    reply.extend_from_slice(b".\n");
    out.write_all(&reply)
}
