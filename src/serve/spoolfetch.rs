//! `spoolfetch`: replaying the spool to the master, and the newest record for
//! `config`/`fetch`.
//!
//! The master stores as its cursor the **largest** timestamp it received. So every record
//! at or below that timestamp must be sent in the same reply, for every plugin, or it is
//! skipped forever. Perl's catch-up limit (six files per plugin) breaks that; ours is one
//! time window, the same for all plugins: records newer than the cursor and no later
//! than the oldest such record plus the window length. The window always holds at least
//! one record when there is one to send, so the cursor always moves.

use std::convert::Infallible;
use std::io::{self, Write};

use crate::spool::names::IntervalFile;
use crate::spool::record::{
    records, rewrite_value_line, write_served_line, Epoch, RecordSink, MAX_RECORD,
};
use crate::spool::{ScanError, Spool};
use crate::{log_error, log_warn};

/// Bytes gathered before a write to the master: half a default pipe buffer, so writing
/// overlaps with the reader draining the pipe (128 KiB writes were 40% slower).
const OUT_CHUNK: usize = 128 * 1024;

/// How a spoolfetch reply is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Per plugin and graph, one block per run of records with the same config: the
    /// config once, then every value (see [`crate::serve::blocks`]). Every listed plugin is named.
    Blocks,
    /// As Perl's munin-async: every record as it is in the spool, with its whole config
    /// (`--compat-output`).
    Records,
}

/// The records one spoolfetch sends: `after < t <= until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The master's cursor: only newer records are sent.
    pub(crate) after: u64,
    /// The newest time sent in this reply.
    pub(crate) until: u64,
}

impl Window {
    /// Whether a record with this time is sent.
    pub(crate) fn contains(&self, t: u64) -> bool {
        t > self.after && t <= self.until
    }

    /// Whether an interval file can hold records of the window. Like Perl, a file is
    /// skipped when its interval ended before the cursor.
    pub(crate) fn may_hold(&self, f: &IntervalFile) -> bool {
        f.end() >= self.after && f.start <= self.until
    }

    /// Plans the window for `spoolfetch after`, with a catch-up span in seconds (0: no
    /// limit).
    pub(crate) fn plan(spool: &Spool, files: &[IntervalFile], after: u64, span: u64) -> Window {
        let unlimited = Window {
            after,
            until: u64::MAX,
        };
        let relevant = files.iter().filter(|f| f.end() > after);
        let newest_end = relevant.clone().map(IntervalFile::end).max().unwrap_or(0);
        // The oldest record we could send is no older than this.
        let lowest = relevant
            .map(|f| f.start)
            .min()
            .unwrap_or(0)
            .max(after.saturating_add(1));
        if span == 0 || lowest.saturating_add(span) >= newest_end {
            // Every record is older than its file's end: the span cannot cut anything.
            return unlimited;
        }
        match first_record_after(spool, files, after) {
            Some(t0) => Window {
                after,
                until: t0.saturating_add(span),
            },
            None => unlimited,
        }
    }
}

/// Finds the oldest intact record newer than `after` in any file.
fn first_record_after(spool: &Spool, files: &[IntervalFile], after: u64) -> Option<u64> {
    struct Probe {
        after: u64,
        best: Option<u64>,
    }
    impl RecordSink for Probe {
        type Error = Infallible;
        fn wants(&mut self, t: u64) -> bool {
            t > self.after && self.best.is_none_or(|b| t < b)
        }
        fn begin(&mut self, e: &Epoch) -> Result<bool, Self::Error> {
            self.best = Some(e.value());
            // Records in a file are in time order (docs/spool-format.md, "Design
            // constraints"): the rest of this file cannot do better.
            Ok(false)
        }
    }
    let mut candidates: Vec<&IntervalFile> = files.iter().filter(|f| f.end() > after).collect();
    candidates.sort_by_key(|f| f.start.max(after.saturating_add(1)));
    let mut probe = Probe { after, best: None };
    for f in candidates {
        if probe
            .best
            .is_some_and(|b| f.start.max(after.saturating_add(1)) >= b)
        {
            break;
        }
        match spool.scan_file(f, &mut probe) {
            Ok(_) => {}
            Err(ScanError::Sink(never)) => match never {},
            Err(ScanError::Spool(e)) => log_error!("{e}"),
        }
    }
    probe.best
}

/// What a spoolfetch sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchReport {
    /// Records sent.
    pub(crate) records: u64,
    /// Damaged stretches skipped.
    pub(crate) damaged: u64,
    /// Files that could not be read.
    pub(crate) unreadable: u64,
    /// The newest time sent (what the master will store as its cursor).
    pub(crate) newest: Option<u64>,
}

/// Writes served records to the master in large chunks.
struct Served<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    window: Window,
    epoch: Option<Epoch>,
    report: FetchReport,
    /// Finds value lines in a run of lines.
    value: memchr::memmem::Finder<'static>,
    /// Scratch space for one rewritten line.
    rewritten: Vec<u8>,
}

impl<W: Write> RecordSink for Served<'_, W> {
    type Error = io::Error;
    fn wants(&mut self, t: u64) -> bool {
        self.window.contains(t)
    }
    fn begin(&mut self, e: &Epoch) -> io::Result<bool> {
        self.epoch = Some(*e);
        self.report.records += 1;
        self.report.newest = self.report.newest.max(Some(e.value()));
        Ok(true)
    }
    fn line(&mut self, line: &[u8]) -> io::Result<bool> {
        if let Some(e) = &self.epoch {
            write_served_line(line, e, &mut self.buf);
        }
        if self.buf.len() >= OUT_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(true)
    }
    fn lines(&mut self, run: &[u8]) -> io::Result<bool> {
        let Some(epoch) = self.epoch else {
            return Ok(true);
        };
        // Copy the run as it is, but for the value lines, found by their `.value`.
        let mut copied = 0;
        let mut search = 0;
        while let Some(i) = self.value.find(&run[search..]) {
            let at = search + i;
            let line_start =
                memchr::memrchr(b'\n', &run[copied..at]).map_or(copied, |j| copied + j + 1);
            let line_end = memchr::memchr(b'\n', &run[at..]).map_or(run.len(), |j| at + j);
            let mut rewritten = std::mem::take(&mut self.rewritten);
            rewritten.clear();
            if rewrite_value_line(&run[line_start..line_end], &epoch, &mut rewritten) {
                self.buf.extend_from_slice(&run[copied..line_start]);
                self.buf.extend_from_slice(&rewritten);
                copied = (line_end + 1).min(run.len());
            }
            self.rewritten = rewritten;
            search = (line_end + 1).min(run.len());
        }
        self.buf.extend_from_slice(&run[copied..]);
        if self.buf.len() >= OUT_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(true)
    }
    fn end(&mut self) -> io::Result<bool> {
        self.epoch = None;
        Ok(true)
    }
}

/// What reading one file for a reply met.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileRead {
    damaged: u64,
    unreadable: bool,
}

impl FileRead {
    /// Counts it in a reply's report.
    pub(crate) fn add_to(self, report: &mut FetchReport) {
        report.damaged += self.damaged;
        report.unreadable += u64::from(self.unreadable);
    }
}

/// Streams one interval file into a reply's sink. Damaged parts are skipped and an
/// unreadable file passed over, each logged (when `log`) and counted in what is returned;
/// only the sink's error (writing to the master) is returned as an error.
pub(crate) fn scan_for_reply<S: RecordSink<Error = io::Error>>(
    spool: &Spool,
    f: &IntervalFile,
    sink: &mut S,
    log: bool,
) -> io::Result<FileRead> {
    match spool.scan_file(f, sink) {
        Ok(stats) => {
            if let (true, Some((offset, what))) = (log, stats.first_damage) {
                log_warn!(
                    "{}: skipped {} damaged part(s), the first at byte {offset}: {what}",
                    spool.path_of(f).display(),
                    stats.damaged
                );
            }
            Ok(FileRead {
                damaged: stats.damaged,
                unreadable: false,
            })
        }
        Err(ScanError::Sink(e)) => Err(e),
        Err(ScanError::Spool(e)) => {
            if log {
                log_error!("{e}");
            }
            Ok(FileRead {
                damaged: 0,
                unreadable: true,
            })
        }
    }
}

/// Sends every record in `window`, plugin by plugin in name order, then the closing `.`.
/// Damaged parts and unreadable files are logged and skipped; only an error writing to
/// the master is returned.
pub(crate) fn spoolfetch<W: Write>(
    spool: &Spool,
    files: &[IntervalFile],
    window: Window,
    out: &mut W,
) -> io::Result<FetchReport> {
    let mut sink = Served {
        out,
        buf: Vec::with_capacity(OUT_CHUNK + MAX_RECORD.min(64 * 1024)),
        window,
        epoch: None,
        report: FetchReport::default(),
        value: memchr::memmem::Finder::new(b".value"),
        rewritten: Vec::new(),
    };
    for f in files.iter().filter(|f| window.may_hold(f)) {
        let read = scan_for_reply(spool, f, &mut sink, true)?;
        read.add_to(&mut sink.report);
    }
    sink.buf.extend_from_slice(b".\n");
    sink.out.write_all(&sink.buf)?;
    sink.out.flush()?;
    Ok(sink.report)
}

/// The newest intact record of one plugin: its time and its lines, each ending in `\n`.
pub(crate) fn newest_record(
    spool: &Spool,
    files: &[IntervalFile],
    service: &str,
) -> Option<(Epoch, Vec<u8>)> {
    let mut last: Option<(Epoch, Vec<u8>)> = None;
    // Newest interval first; the first one with an intact record has the newest.
    for f in files.iter().rev().filter(|f| f.service == service) {
        let mut sink = records(|e: &Epoch, body: &[u8]| {
            if last.as_ref().is_none_or(|(l, _)| e.value() >= l.value()) {
                last = Some((*e, body.to_vec()));
            }
            Ok::<_, Infallible>(true)
        });
        match spool.scan_file(f, &mut sink) {
            Ok(_) => {}
            Err(ScanError::Sink(never)) => match never {},
            Err(ScanError::Spool(e)) => log_error!("{e}"),
        }
        if last.is_some() {
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk path gives what the line-by-line path gives, for every value-line shape.
    #[test]
    fn a_run_of_lines_is_rewritten_like_each_line() {
        let lines = [
            "multigraph x",
            "graph_title a.value in a title",
            "load.value 0.06",
            "load.value N:0.06",
            "load.value U",
            "load.value N",
            "load.value 1234:5",
            "load.value N:",
            "load.value  ",
            "load.value ",
            "load.value",
            "a.b.value 5",
            ".value 5",
            "f0.info The f0.value field",
            "x.value 1.5e+10",
            "y.label has: colons",
            "z.value\t7",
            "",
        ];
        let run: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let epoch = Epoch::new(1795546911);
        let mut expected = Vec::new();
        for l in &lines {
            write_served_line(l.as_bytes(), &epoch, &mut expected);
        }
        let mut out = Vec::new();
        let mut sink = Served {
            out: &mut out,
            buf: Vec::new(),
            window: Window {
                after: 0,
                until: u64::MAX,
            },
            epoch: Some(epoch),
            report: FetchReport::default(),
            value: memchr::memmem::Finder::new(b".value"),
            rewritten: Vec::new(),
        };
        sink.lines(run.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sink.buf),
            String::from_utf8_lossy(&expected)
        );
    }
}
