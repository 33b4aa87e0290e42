//! Bounded line reading.
//!
//! Both the session (commands from the master) and the spool reader (lines of a spool
//! file) read newline-terminated lines from input that nobody vouches for. [`LineReader`]
//! hands out each line as a slice of its own buffer, so a line is never copied on its
//! way from the file to the parser. A line longer than the limit is consumed and
//! reported as [`LineEnd::TooLong`] instead of growing the buffer without bound, so a
//! peer cannot make us allocate more than the limit.

use std::io::{self, Read};

/// How a line read by [`LineReader::next_line`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// Terminated by `\n`; the line is given without it.
    Newline,
    /// Input ended before a `\n`; the line holds what was there (never empty).
    Eof,
    /// Longer than the limit; the whole line up to its `\n` (or end of input) was
    /// consumed and the line given is empty.
    TooLong,
}

/// Splits input into lines of at most `max` bytes, without copying them.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// The buffer's size when it is (re)made.
    capacity: usize,
    start: usize,
    end: usize,
    max: usize,
    /// Bytes of an over-long line dropped so far, while looking for its end.
    skipped: Option<u64>,
    eof: bool,
}

/// What [`LineReader::next_block`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Block<'a> {
    /// One or more complete lines, each within the limit and ending in `\n`.
    Lines(&'a [u8]),
    /// One line that did not end in a plain `\n` (too long, or cut by the end of input),
    /// with the bytes it took.
    Line(LineEnd, &'a [u8], u64),
}

impl<R: Read> LineReader<R> {
    /// Reads `inner` with a buffer of `capacity` bytes (grown up to `max + 1` for a long
    /// line).
    pub fn new(inner: R, capacity: usize, max: usize) -> LineReader<R> {
        // Never more than `max + 1`: then no complete line in the buffer is too long.
        let capacity = capacity.clamp(1, max.saturating_add(1));
        LineReader {
            inner,
            buf: vec![0; capacity],
            capacity,
            start: 0,
            end: 0,
            max,
            skipped: None,
            eof: false,
        }
    }

    /// The next line, how it ended, and how many input bytes it took (its `\n`
    /// included); `None` at a clean end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(LineEnd, &[u8], u64)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line_start = self.start;
                self.start += i + 1;
                let (end, n) = self.ended(i);
                return Ok(Some((end, self.slice(end, line_start, i), n)));
            }
            if let Some(last) = self.no_newline_left()? {
                return Ok(last.map(|(end, from, to, n)| (end, &self.buf[from..to], n)));
            }
        }
    }

    /// The reader underneath.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Every complete line buffered, as one block, or the one line that ends otherwise;
    /// `None` at a clean end of input. Lets the spool reader work on many lines at once.
    pub fn next_block(&mut self) -> io::Result<Option<Block<'_>>> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if self.skipped.is_some() {
                // Finish the over-long line first.
                if let Some(i) = memchr::memchr(b'\n', pending) {
                    self.start += i + 1;
                    let (end, n) = self.ended(i);
                    return Ok(Some(Block::Line(end, &[], n)));
                }
            } else if let Some(last) = memchr::memrchr(b'\n', pending) {
                // The buffer never holds more than `max + 1` bytes, so no complete line in
                // it is over the limit.
                let block_start = self.start;
                self.start += last + 1;
                return Ok(Some(Block::Lines(&self.buf[block_start..self.start])));
            }
            if let Some(last) = self.no_newline_left()? {
                return Ok(last.map(|(end, from, to, n)| Block::Line(end, &self.buf[from..to], n)));
            }
        }
    }

    /// How a line of `len` bytes ended by a `\n` counts, and the bytes it took.
    fn ended(&mut self, len: usize) -> (LineEnd, u64) {
        let consumed = len as u64 + 1;
        match self.skipped.take() {
            Some(skipped) => (LineEnd::TooLong, skipped + consumed),
            None if len > self.max => (LineEnd::TooLong, consumed),
            None => (LineEnd::Newline, consumed),
        }
    }

    /// The line's bytes: none for a line that was too long.
    fn slice(&self, end: LineEnd, from: usize, len: usize) -> &[u8] {
        match end {
            LineEnd::TooLong => &[],
            _ => &self.buf[from..from + len],
        }
    }

    /// No `\n` is buffered: drops an over-long partial line, and either reads more
    /// (`None`) or, at the end of input, gives the last line as indices into the buffer
    /// (`Some(None)` when there is none).
    #[allow(clippy::type_complexity)]
    fn no_newline_left(&mut self) -> io::Result<Option<Option<(LineEnd, usize, usize, u64)>>> {
        let pending = self.end - self.start;
        if pending > self.max {
            // Too long: drop what we have and look for the line's end.
            *self.skipped.get_or_insert(0) += pending as u64;
            self.start = 0;
            self.end = 0;
        }
        if self.eof {
            let n = self.end - self.start;
            let line_start = self.start;
            self.start = self.end;
            return Ok(Some(match (self.skipped.take(), n) {
                (Some(skipped), _) => Some((LineEnd::TooLong, 0, 0, skipped + n as u64)),
                (None, 0) => None,
                (None, _) => Some((LineEnd::Eof, line_start, self.end, n as u64)),
            }));
        }
        self.fill()?;
        Ok(None)
    }

    /// Frees the buffer when it holds nothing, until the next read makes it again: for a
    /// reader kept idle (a thousand-node site keeps four thousand connections).
    pub(crate) fn release(&mut self) {
        if self.start == self.end && self.skipped.is_none() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the partial line to the front and reads more after it.
    fn fill(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .min(self.max.saturating_add(1))
                .max(self.end + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `chunk` bytes per read, as a pipe may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn lines(input: &[u8], max: usize, cap: usize, chunk: usize) -> Vec<(LineEnd, Vec<u8>, u64)> {
        let mut r = LineReader::new(Trickle(input, chunk), cap, max);
        let mut out = Vec::new();
        while let Some((end, line, n)) = r.next_line().unwrap() {
            out.push((end, line.to_vec(), n));
        }
        out
    }

    #[test]
    fn splits_lines_through_any_buffer_and_read_size() {
        for cap in [1, 2, 3, 7, 64] {
            for chunk in [1, 2, 5, 100] {
                let got = lines(b"ab\n\ncd", 10, cap, chunk);
                assert_eq!(
                    got,
                    vec![
                        (LineEnd::Newline, b"ab".to_vec(), 3),
                        (LineEnd::Newline, b"".to_vec(), 1),
                        (LineEnd::Eof, b"cd".to_vec(), 2),
                    ],
                    "buffer {cap}, reads of {chunk}"
                );
            }
        }
    }

    #[test]
    fn long_line_is_consumed_and_reported() {
        for cap in [1, 4, 64] {
            for chunk in [1, 3, 100] {
                let got = lines(b"0123456789abc\nok\n0123456789", 5, cap, chunk);
                assert_eq!(
                    got,
                    vec![
                        (LineEnd::TooLong, vec![], 14),
                        (LineEnd::Newline, b"ok".to_vec(), 3),
                        (LineEnd::TooLong, vec![], 10),
                    ],
                    "buffer {cap}, reads of {chunk}"
                );
            }
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        for chunk in [1, 2, 6] {
            let got = lines(b"12345\n123456\n", 5, 2, chunk);
            assert_eq!(
                got,
                vec![
                    (LineEnd::Newline, b"12345".to_vec(), 6),
                    (LineEnd::TooLong, vec![], 7)
                ]
            );
        }
    }

    /// The lines `next_block` gives, split back into lines.
    fn block_lines(
        input: &[u8],
        max: usize,
        cap: usize,
        chunk: usize,
    ) -> Vec<(LineEnd, Vec<u8>, u64)> {
        let mut r = LineReader::new(Trickle(input, chunk), cap, max);
        let mut out = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            match b {
                Block::Lines(block) => {
                    assert!(block.ends_with(b"\n"));
                    for l in block[..block.len() - 1].split(|&b| b == b'\n') {
                        out.push((LineEnd::Newline, l.to_vec(), l.len() as u64 + 1));
                    }
                }
                Block::Line(end, line, n) => out.push((end, line.to_vec(), n)),
            }
        }
        out
    }

    #[test]
    fn blocks_split_like_lines() {
        let inputs: [&[u8]; 4] = [
            b"ab\n\ncd",
            b"0123456789abc\nok\n0123456789",
            b"12345\n123456\n",
            b"a\nb\nc\n",
        ];
        for input in inputs {
            for cap in [1, 2, 7, 64] {
                for chunk in [1, 3, 100] {
                    assert_eq!(
                        block_lines(input, 5, cap, chunk),
                        lines(input, 5, cap, chunk),
                        "{input:?}, buffer {cap}, reads of {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_input_is_a_clean_end() {
        assert!(lines(b"", 5, 2, 1).is_empty());
    }

    #[test]
    fn a_released_buffer_is_made_again_and_one_holding_a_line_is_kept() {
        let mut r = LineReader::new(&b"one\ntwo\nthree\n"[..], 8, 100);
        assert_eq!(r.next_line().unwrap().unwrap().1, b"one");
        // "two\n" is buffered: kept.
        r.release();
        assert_eq!(r.buf.len(), 8);
        assert_eq!(r.next_line().unwrap().unwrap().1, b"two");
        // The buffer now starts "three": still kept; then empty, released.
        r.release();
        assert_eq!(r.next_line().unwrap().unwrap().1, b"three");
        r.release();
        assert!(r.buf.is_empty());
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.buf.len(), 8, "made again at its first size");
    }

    #[test]
    fn the_buffer_never_grows_past_the_limit() {
        let input = vec![b'x'; 100_000];
        let mut r = LineReader::new(&input[..], 16, 1000);
        assert!(matches!(
            r.next_line().unwrap(),
            Some((LineEnd::TooLong, _, 100_000))
        ));
        assert!(r.buf.len() <= 1001);
    }
}
