//! Spool records: parsing, sealing, and the line rewriting spoolfetch does.
//!
//! A record is a `timestamp` line followed by the plugin's output lines. Perl's reader
//! recognises a record by `^timestamp (\d+)` and ignores whatever follows the digits, so
//! our writer seals records on that same line without breaking it:
//!
//! ```text
//! timestamp 1795546911                          a plain record (Perl's writer)
//! timestamp 1795546911 len=58 crc32=0a1b2c3d    a sealed record (ours)
//! ```
//!
//! `len` is the byte length of the body (every line after the `timestamp` line, each
//! with its `\n`); `crc32` is the CRC-32 (IEEE) of the header up to and excluding the
//! space before `crc32=`, followed by the body. A sealed record counts as committed only
//! when its whole body is there and the checksum matches; anything else is damage and is
//! never served. Plain records cannot be checked; we serve them as Perl does, except a
//! last line cut off without its `\n` and lines that are just `.` (which would end the
//! master's read early). `docs/spool-format.md` has the full rules.
//!
//! [`Scanner`] turns lines into records with no I/O of its own, so every case is tested
//! on byte slices.

use crate::util::line::LineEnd;

/// The largest sealed record body: the writer refuses a longer one, and the reader counts
/// a longer one as damaged. (Munin's largest plugins, diskstats on a host with hundreds of
/// disks, stay well under it.)
pub(crate) const MAX_RECORD: usize = 4 << 20;
/// The longest spool line we accept.
pub const MAX_LINE: usize = 1 << 20;

const HEADER: &[u8] = b"timestamp ";

/// A record's time: its value and its digits exactly as written, which is what Perl
/// copies into value lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    value: u64,
    text: [u8; 20],
    len: u8,
}

impl Epoch {
    /// Builds an epoch from its value (tests).
    #[cfg(test)]
    pub(crate) fn new(value: u64) -> Epoch {
        let s = value.to_string();
        let mut text = [0u8; 20];
        text[..s.len()].copy_from_slice(s.as_bytes());
        Epoch {
            value,
            text,
            len: s.len() as u8,
        }
    }

    /// Parses 1 to 20 ASCII digits that fit a `u64`.
    fn from_digits(digits: &[u8]) -> Option<Epoch> {
        let value = crate::spool::names::parse_decimal(digits)?;
        let mut text = [0u8; 20];
        text.get_mut(..digits.len())?.copy_from_slice(digits);
        Some(Epoch {
            value,
            text,
            len: digits.len() as u8,
        })
    }

    /// Seconds since the epoch.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The digits as written in the spool.
    pub(crate) fn text(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

/// What a `timestamp` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// `timestamp EPOCH`: Perl's format, not verifiable.
    Plain(Epoch),
    /// `timestamp EPOCH len=N crc32=X`: ours.
    Sealed {
        /// The record's time.
        epoch: Epoch,
        /// Body length in bytes.
        len: usize,
        /// Expected CRC-32.
        crc: u32,
        /// Length of the header prefix covered by the checksum.
        covered: usize,
    },
    /// Looks like a header to Perl but cannot be used: an epoch that does not fit 64 bits,
    /// or anything after the digits that is not a valid seal.
    Damaged,
}

/// Whether a line starts a record for Perl's reader (`^timestamp \d`).
#[inline]
pub(crate) fn is_header(line: &[u8]) -> bool {
    // Most lines fail on the first byte.
    line.first() == Some(&b't')
        && line
            .strip_prefix(HEADER)
            .and_then(|r| r.first())
            .is_some_and(u8::is_ascii_digit)
}

/// Parses a `timestamp` line (without its `\n`); `None` if the line does not start a record.
pub(crate) fn parse_header(line: &[u8]) -> Option<Header> {
    if !is_header(line) {
        return None;
    }
    let rest = &line[HEADER.len()..];
    let ndigits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(epoch) = Epoch::from_digits(&rest[..ndigits]) else {
        return Some(Header::Damaged);
    };
    let tail = &rest[ndigits..];
    if tail.is_empty() {
        return Some(Header::Plain(epoch));
    }
    // Perl's writer writes nothing after the digits; anything but our seal there is a
    // damaged header, never a plain one, so a damaged seal cannot pass unchecked.
    let Some(seal) = tail.strip_prefix(b" len=") else {
        return Some(Header::Damaged);
    };
    Some(
        parse_seal(seal).map_or(Header::Damaged, |(len, crc, covered)| Header::Sealed {
            epoch,
            len,
            crc,
            covered: HEADER.len() + ndigits + covered,
        }),
    )
}

/// Parses `N crc32=XXXXXXXX` after ` len=`; returns the length, the CRC and how many bytes
/// of the seal (from the space before `len=`) the checksum covers.
fn parse_seal(seal: &[u8]) -> Option<(usize, u32, usize)> {
    let nlen = seal.iter().take_while(|b| b.is_ascii_digit()).count();
    let len = usize::try_from(crate::spool::names::parse_decimal(&seal[..nlen])?).ok()?;
    let hex = seal[nlen..].strip_prefix(b" crc32=")?;
    if hex.len() != 8 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((len, crc, " len=".len() + nlen))
}

/// Appends a sealed record for `body` (lines each ending in `\n`) to `out`.
pub fn write_sealed(epoch: u64, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(format!("timestamp {epoch} len={}", body.len()).as_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..]);
    h.update(body);
    out.extend_from_slice(format!(" crc32={:08x}\n", h.finalize()).as_bytes());
    out.extend_from_slice(body);
}

/// Whether a byte is whitespace for Perl's `\s` on byte strings.
fn is_perl_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Appends `line` to `out` as spoolfetch sends it, with its `\n`.
///
/// A value line without a time of its own gets the record's time, exactly as Perl's
/// `s/^(\w+)\.value\s+(?:N:)?([^:]+)$/$1.value $epoch:$2/` does: `f.value 12`,
/// `f.value N:12` and `f.value U` become `f.value EPOCH:…`; `f.value 1234:5` is sent as
/// it is.
#[inline]
pub fn write_served_line(line: &[u8], epoch: &Epoch, out: &mut Vec<u8>) {
    if !rewrite_value_line(line, epoch, out) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// Appends the rewritten line, with its `\n`, when `line` is a value line without a time
/// of its own (see [`write_served_line`]); returns whether it did.
#[inline]
pub(crate) fn rewrite_value_line(line: &[u8], epoch: &Epoch, out: &mut Vec<u8>) -> bool {
    let Some((field, value)) = value_of(line) else {
        return false;
    };
    out.extend_from_slice(field);
    out.extend_from_slice(b".value ");
    out.extend_from_slice(epoch.text());
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b'\n');
    true
}

/// Whether a line is a field's value line (`field.value …`), with or without a time.
pub(crate) fn is_value_line(line: &[u8]) -> bool {
    field_and_rest(line).is_some_and(|(_, rest)| rest.first().is_none_or(|&b| is_perl_space(b)))
}

/// Splits `field.value…` into the field and what follows `.value`, as Perl's
/// `^(\w+)\.value` does.
#[inline]
fn field_and_rest(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let nfield = line
        .iter()
        .take_while(|&&b| crate::spool::names::is_service_byte(b))
        .count();
    if nfield == 0 {
        return None;
    }
    let (field, rest) = line.split_at(nfield);
    Some((field, rest.strip_prefix(b".value")?))
}

/// Splits a value line without a time of its own into field name and value, following
/// Perl's regular expression (see [`write_served_line`]), backtracking included.
#[inline]
fn value_of(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let (field, rest) = field_and_rest(line)?;
    let nspace = rest.iter().take_while(|&&b| is_perl_space(b)).count();
    if nspace == 0 {
        return None;
    }
    let value = &rest[nspace..];
    if value.is_empty() {
        // `\s+` gives back its last character to `[^:]+`.
        return (nspace >= 2).then(|| (field, &rest[nspace - 1..]));
    }
    if let Some(v) = value.strip_prefix(b"N:") {
        if !v.is_empty() && memchr::memchr(b':', v).is_none() {
            return Some((field, v));
        }
    }
    memchr::memchr(b':', value)
        .is_none()
        .then_some((field, value))
}

/// Receives the records a [`Scanner`] finds, in the shape of ripgrep's `Sink`: every
/// method has a default, and each answers `Ok(true)` to go on, `Ok(false)` to end the
/// scan there (a sink that has seen enough), or an error, which ends it too and is handed
/// back to the caller.
pub trait RecordSink {
    /// The error the sink may fail with (writing to the master, say).
    type Error;
    /// Whether the record with this time is wanted; unwanted records are not checked.
    /// Every record by default.
    fn wants(&mut self, _epoch: u64) -> bool {
        true
    }
    /// A wanted record begins. Every following `line` belongs to it until `end`.
    fn begin(&mut self, _epoch: &Epoch) -> Result<bool, Self::Error> {
        Ok(true)
    }
    /// One line of the record, without its `\n`. Ignored by default.
    fn line(&mut self, _line: &[u8]) -> Result<bool, Self::Error> {
        Ok(true)
    }
    /// Several lines of the record at once, each ending in `\n` (never a `timestamp` or
    /// `.` line). A sink that can work on many lines at once overrides this.
    fn lines(&mut self, run: &[u8]) -> Result<bool, Self::Error> {
        let run = run.strip_suffix(b"\n").unwrap_or(run);
        for line in run.split(|&b| b == b'\n') {
            if !self.line(line)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    /// The record is over (and whole: its seal checked).
    fn end(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A sink that hands each whole record to a closure: its time, and its lines, each
/// ending in `\n` (see [`records`]).
pub struct Records<F> {
    f: F,
    epoch: Option<Epoch>,
    body: Vec<u8>,
    /// The record grew past [`MAX_RECORD`] (a classic record has no seal to say so
    /// first): it is not handed on.
    overflow: bool,
}

/// A [`RecordSink`] from a closure that takes each intact record whole, and answers as a
/// sink's method does (`Ok(false)` ends the scan). A record over [`MAX_RECORD`] is left
/// out, as munin-async's replies leave it out.
pub fn records<E, F: FnMut(&Epoch, &[u8]) -> Result<bool, E>>(f: F) -> Records<F> {
    Records {
        f,
        epoch: None,
        body: Vec::new(),
        overflow: false,
    }
}

impl<E, F: FnMut(&Epoch, &[u8]) -> Result<bool, E>> RecordSink for Records<F> {
    type Error = E;
    fn begin(&mut self, epoch: &Epoch) -> Result<bool, E> {
        self.epoch = Some(*epoch);
        self.body.clear();
        self.overflow = false;
        Ok(true)
    }
    fn line(&mut self, line: &[u8]) -> Result<bool, E> {
        self.lines_of(line, true);
        Ok(true)
    }
    fn lines(&mut self, run: &[u8]) -> Result<bool, E> {
        self.lines_of(run, false);
        Ok(true)
    }
    fn end(&mut self) -> Result<bool, E> {
        match (self.epoch.take(), self.overflow) {
            (Some(epoch), false) => (self.f)(&epoch, &self.body),
            _ => Ok(true),
        }
    }
}

impl<F> Records<F> {
    fn lines_of(&mut self, text: &[u8], one: bool) {
        if self.overflow || self.body.len() + text.len() + usize::from(one) > MAX_RECORD {
            self.overflow = true;
            return;
        }
        self.body.extend_from_slice(text);
        if one {
            self.body.push(b'\n');
        }
    }
}

/// How a scan step ended early: the sink stopped it, or failed.
enum Halt<E> {
    Stopped,
    Failed(E),
}

/// A scan step: `Err` when the scan ends here.
type Step<E> = Result<(), Halt<E>>;

/// A sink's answer as a step.
fn go<E>(answer: Result<bool, E>) -> Step<E> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(Halt::Stopped),
        Err(e) => Err(Halt::Failed(e)),
    }
}

/// A step as the scanner's callers see it: `Ok(false)` when the sink stopped the scan.
fn outcome<E>(step: Step<E>) -> Result<bool, E> {
    match step {
        Ok(()) => Ok(true),
        Err(Halt::Stopped) => Ok(false),
        Err(Halt::Failed(e)) => Err(e),
    }
}

/// Why part of a spool file was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Lines outside any record (before the first `timestamp` line, or after a sealed record).
    Junk,
    /// A `timestamp` line with an unusable epoch or seal.
    BadHeader,
    /// A sealed record whose body is shorter than its seal says (a crash while writing).
    Torn,
    /// A sealed record whose lines do not end where its length says.
    BadLength,
    /// A sealed record whose checksum does not match.
    Checksum,
    /// A sealed record longer than [`MAX_RECORD`].
    TooLarge,
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// The file ends in the middle of a line.
    TruncatedLine,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::Junk => "lines outside any record",
            Damage::BadHeader => "unusable timestamp line",
            Damage::Torn => "record cut short",
            Damage::BadLength => "record length does not match its lines",
            Damage::Checksum => "checksum mismatch",
            Damage::TooLarge => "record too large",
            Damage::LineTooLong => "line too long",
            Damage::TruncatedLine => "file ends in mid-line",
        })
    }
}

/// What a scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Records handed to the sink.
    pub served: u64,
    /// Damaged stretches skipped.
    pub damaged: u64,
    /// The first damage: byte offset of the line where it was found, and what it was.
    pub(crate) first_damage: Option<(u64, Damage)>,
    /// Where the last record handed to the sink ends in the file (0 if none was).
    pub(crate) served_until: u64,
}

enum State {
    /// Before the first header, or skipping after damage.
    Outside { junk: bool },
    /// Inside a plain record.
    Plain { wanted: bool },
    /// Inside a sealed record, collecting `len` bytes of body.
    Sealed {
        epoch: Epoch,
        len: usize,
        crc: crc32fast::Hasher,
        expected: u32,
        wanted: bool,
        seen: usize,
    },
}

/// Splits a spool file's lines into records and hands the intact ones to a sink.
pub struct Scanner {
    state: State,
    /// Finds the next record header in a block.
    header: memchr::memmem::Finder<'static>,
    /// Finds the next `.` line in a block.
    dot: memchr::memmem::Finder<'static>,
    body: Vec<u8>,
    /// File offset of the start of the line being fed.
    offset: u64,
    /// Bytes the line being fed takes in the file.
    consumed: u64,
    stats: ScanStats,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner at the start of a file.
    pub fn new() -> Scanner {
        Scanner {
            state: State::Outside { junk: false },
            header: memchr::memmem::Finder::new(b"\ntimestamp "),
            dot: memchr::memmem::Finder::new(b"\n.\n"),
            body: Vec::new(),
            offset: 0,
            consumed: 0,
            stats: ScanStats::default(),
        }
    }

    /// What the scan found so far.
    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    fn damage(&mut self, what: Damage) {
        self.stats.damaged += 1;
        if self.stats.first_damage.is_none() {
            self.stats.first_damage = Some((self.offset, what));
        }
    }

    /// Ends the current record, if any, before a new one or the end of the file.
    fn close<S: RecordSink>(&mut self, sink: &mut S) -> Step<S::Error> {
        match std::mem::replace(&mut self.state, State::Outside { junk: false }) {
            State::Plain { wanted: true } => {
                self.stats.served += 1;
                self.stats.served_until = self.offset;
                go(sink.end())?;
            }
            State::Sealed { .. } => self.damage(Damage::Torn),
            State::Plain { wanted: false } | State::Outside { .. } => {}
        }
        Ok(())
    }

    /// Feeds a block of complete lines, each ending in `\n` and none over the limit.
    /// Inside a plain record, the lines up to the next header or `.` line go to the sink
    /// in one call; everything else goes line by line. `Ok(false)` when the sink ended
    /// the scan.
    pub fn block<S: RecordSink>(&mut self, block: &[u8], sink: &mut S) -> Result<bool, S::Error> {
        outcome(self.block_steps(block, sink))
    }

    fn block_steps<S: RecordSink>(&mut self, block: &[u8], sink: &mut S) -> Step<S::Error> {
        let mut pos = 0;
        while pos < block.len() {
            if let Some(stop) = self.sealed_body_end(block, pos) {
                // The rest of a sealed body lies whole in this block: take it at once.
                let body = &block[pos..stop];
                if let State::Sealed {
                    crc, wanted, seen, ..
                } = &mut self.state
                {
                    if *wanted {
                        crc.update(body);
                        self.body.extend_from_slice(body);
                    }
                    *seen += body.len();
                }
                self.offset += body.len() as u64;
                pos = stop;
                self.sealed_complete(sink)?;
                continue;
            }
            if let State::Plain { wanted } = self.state {
                let run_end = self.next_special(block, pos);
                if run_end > pos {
                    if wanted {
                        go(sink.lines(&block[pos..run_end]))?;
                    }
                    self.offset += (run_end - pos) as u64;
                    pos = run_end;
                    continue;
                }
            }
            let rest = &block[pos..];
            let n = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let line = rest[..n].strip_suffix(b"\n").unwrap_or(&rest[..n]);
            self.line_step(line, LineEnd::Newline, n as u64, sink)?;
            pos += n;
        }
        Ok(())
    }

    /// Inside a sealed record, where its body ends when that end is in `block`, on a line
    /// boundary, with no header before it; `None` sends the lines one by one, which finds
    /// the damage.
    fn sealed_body_end(&self, block: &[u8], pos: usize) -> Option<usize> {
        let State::Sealed { len, seen, .. } = self.state else {
            return None;
        };
        let stop = pos.checked_add(len - seen)?;
        if stop > block.len() || stop == pos || block[stop - 1] != b'\n' {
            return None;
        }
        let body = &block[pos..stop];
        let first = &body[..memchr::memchr(b'\n', body).unwrap_or(body.len())];
        if is_header(first) {
            return None;
        }
        let mut from = 0;
        while let Some(i) = self.header.find(&body[from..]) {
            let start = from + i + 1;
            if body
                .get(start + HEADER.len())
                .is_some_and(u8::is_ascii_digit)
            {
                return None;
            }
            from = start;
        }
        Some(stop)
    }

    /// Where the first line at or after `pos` that a plain record must not pass on as it
    /// is (a header or a `.` line) starts; the block's length if there is none.
    fn next_special(&self, block: &[u8], pos: usize) -> usize {
        let first = &block[pos..];
        let first = &first[..memchr::memchr(b'\n', first).unwrap_or(first.len())];
        if first == b"." || is_header(first) {
            return pos;
        }
        let mut end = block.len();
        let mut from = pos;
        while let Some(i) = self.header.find(&block[from..end]) {
            let start = from + i + 1;
            if block
                .get(start + HEADER.len())
                .is_some_and(u8::is_ascii_digit)
            {
                end = start;
                break;
            }
            from = start;
        }
        match self.dot.find(&block[pos..end]) {
            Some(i) => pos + i + 1,
            None => end,
        }
    }

    /// Feeds one line (without its `\n`), how it ended and how many bytes it took in the
    /// file. `Ok(false)` when the sink ended the scan.
    #[inline]
    pub fn line<S: RecordSink>(
        &mut self,
        line: &[u8],
        end: LineEnd,
        consumed: u64,
        sink: &mut S,
    ) -> Result<bool, S::Error> {
        outcome(self.line_step(line, end, consumed, sink))
    }

    #[inline]
    fn line_step<S: RecordSink>(
        &mut self,
        line: &[u8],
        end: LineEnd,
        consumed: u64,
        sink: &mut S,
    ) -> Step<S::Error> {
        self.consumed = consumed;
        let r = self.line_inner(line, end, sink);
        self.offset += consumed;
        self.consumed = 0;
        r
    }

    fn line_inner<S: RecordSink>(
        &mut self,
        line: &[u8],
        end: LineEnd,
        sink: &mut S,
    ) -> Step<S::Error> {
        if end == LineEnd::TooLong {
            self.close_damaged(sink, Damage::LineTooLong)?;
            return Ok(());
        }
        if let Some(header) = is_header(line).then(|| parse_header(line)).flatten() {
            self.close(sink)?;
            if end == LineEnd::Eof {
                // A header cut off at the end of the file has no body: it is torn.
                self.damage(Damage::TruncatedLine);
                return Ok(());
            }
            self.state = match header {
                Header::Damaged => {
                    self.damage(Damage::BadHeader);
                    State::Outside { junk: true }
                }
                Header::Plain(epoch) => {
                    let wanted = sink.wants(epoch.value());
                    if wanted {
                        go(sink.begin(&epoch))?;
                    }
                    State::Plain { wanted }
                }
                Header::Sealed {
                    epoch,
                    len,
                    crc,
                    covered,
                } => {
                    if len > MAX_RECORD {
                        self.damage(Damage::TooLarge);
                        State::Outside { junk: true }
                    } else {
                        let wanted = sink.wants(epoch.value());
                        let mut hasher = crc32fast::Hasher::new();
                        hasher.update(&line[..covered]);
                        self.body.clear();
                        State::Sealed {
                            epoch,
                            len,
                            crc: hasher,
                            expected: crc,
                            wanted,
                            seen: 0,
                        }
                    }
                }
            };
            return self.sealed_complete(sink);
        }
        match &mut self.state {
            State::Outside { junk } => {
                if !*junk && !line.is_empty() {
                    *junk = true;
                    self.damage(Damage::Junk);
                }
            }
            State::Plain { wanted } => {
                if end == LineEnd::Eof {
                    self.close_damaged(sink, Damage::TruncatedLine)?;
                } else if *wanted && line != b"." {
                    go(sink.line(line))?;
                }
            }
            State::Sealed {
                crc,
                wanted,
                seen,
                len,
                ..
            } => {
                if end == LineEnd::Eof {
                    self.state = State::Outside { junk: true };
                    self.damage(Damage::Torn);
                    return Ok(());
                }
                let room = *len - *seen;
                if line.len() + 1 > room {
                    self.state = State::Outside { junk: true };
                    self.damage(Damage::BadLength);
                    // The seal says where the record ends: a damaged newline glues the
                    // next record's header onto this line, so resume right there.
                    return match line.get(room..) {
                        Some(rest) if !rest.is_empty() => self.line_inner(rest, end, sink),
                        _ => Ok(()),
                    };
                }
                *seen += line.len() + 1;
                if *wanted {
                    crc.update(line);
                    crc.update(b"\n");
                    self.body.extend_from_slice(line);
                    self.body.push(b'\n');
                }
                return self.sealed_complete(sink);
            }
        }
        Ok(())
    }

    /// Serves a sealed record once its whole body has arrived.
    fn sealed_complete<S: RecordSink>(&mut self, sink: &mut S) -> Step<S::Error> {
        let State::Sealed { seen, len, .. } = &self.state else {
            return Ok(());
        };
        if seen != len {
            return Ok(());
        }
        let State::Sealed {
            epoch,
            crc,
            expected,
            wanted,
            ..
        } = std::mem::replace(&mut self.state, State::Outside { junk: false })
        else {
            return Ok(());
        };
        if !wanted {
            return Ok(());
        }
        if crc.finalize() != expected {
            self.damage(Damage::Checksum);
            return Ok(());
        }
        go(sink.begin(&epoch))?;
        let body = std::mem::take(&mut self.body);
        let clean = !body.is_empty()
            && !body.starts_with(b"\n")
            && !body.starts_with(b".\n")
            && self.dot.find(&body).is_none()
            && memchr::memmem::find(&body, b"\n\n").is_none();
        if clean {
            // No empty or `.` line (and never a header): the sink may take it whole.
            let result = go(sink.lines(&body));
            self.body = body;
            result?;
            self.stats.served += 1;
            self.stats.served_until = self.offset + self.consumed;
            return go(sink.end());
        }
        let mut result = Ok(());
        for line in body.split(|&b| b == b'\n') {
            // The body ends with `\n`, so the last piece is empty; `.` lines would end
            // the master's read.
            if line.is_empty() || line == b"." || is_header(line) {
                continue;
            }
            result = go(sink.line(line));
            if result.is_err() {
                break;
            }
        }
        self.body = body;
        result?;
        self.stats.served += 1;
        self.stats.served_until = self.offset + self.consumed;
        go(sink.end())
    }

    fn close_damaged<S: RecordSink>(&mut self, sink: &mut S, what: Damage) -> Step<S::Error> {
        // What a plain record delivered before the damage stays delivered; it ends here.
        if let State::Plain { wanted: true } = self.state {
            self.stats.served += 1;
            self.stats.served_until = self.offset;
            go(sink.end())?;
        }
        self.state = State::Outside { junk: true };
        self.damage(what);
        Ok(())
    }

    /// The file is over. `Ok(false)` when the sink ended the scan.
    pub fn finish<S: RecordSink>(&mut self, sink: &mut S) -> Result<bool, S::Error> {
        outcome(self.close(sink))
    }
}

#[cfg(test)]
mod tests;
