//! Bounded line reading.
//!
//! Both the session (commands from the master) and the spool reader (lines of a spool
//! file) read newline-terminated lines from input that nobody vouches for. A line longer
//! than the limit is consumed and reported as [`LineEnd::TooLong`] instead of growing a
//! buffer without bound, so a peer cannot make us allocate more than the limit.

use std::io::{self, BufRead};

/// How a line read by [`read_line`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// Terminated by `\n`; the buffer holds the line without it.
    Newline,
    /// Input ended before a `\n`; the buffer holds what was there (never empty).
    Eof,
    /// Longer than the limit; the whole line up to its `\n` (or end of input) was
    /// consumed and the buffer is left empty.
    TooLong,
}

/// Reads one line into `buf` (cleared first), at most `max` bytes, not counting the `\n`.
///
/// Returns `Ok(None)` at a clean end of input (nothing read). A line over `max` bytes is
/// consumed to its end and reported as [`LineEnd::TooLong`].
pub fn read_line<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<(LineEnd, u64)>> {
    buf.clear();
    let mut too_long = false;
    let mut consumed: u64 = 0;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if consumed == 0 {
                None
            } else if too_long {
                Some((LineEnd::TooLong, consumed))
            } else {
                Some((LineEnd::Eof, consumed))
            });
        }
        let (chunk, found) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(found);
        r.consume(used);
        consumed += used as u64;
        if found {
            let end = if too_long {
                LineEnd::TooLong
            } else {
                LineEnd::Newline
            };
            return Ok(Some((end, consumed)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize, cap: usize) -> Vec<(LineEnd, Vec<u8>, u64)> {
        let mut r = io::BufReader::with_capacity(cap, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((end, n)) = read_line(&mut r, &mut buf, max).unwrap() {
            out.push((end, buf.clone(), n));
        }
        out
    }

    #[test]
    fn splits_lines_through_any_buffer_size() {
        for cap in [1, 2, 3, 7, 64] {
            let got = lines(b"ab\n\ncd", 10, cap);
            assert_eq!(
                got,
                vec![
                    (LineEnd::Newline, b"ab".to_vec(), 3),
                    (LineEnd::Newline, b"".to_vec(), 1),
                    (LineEnd::Eof, b"cd".to_vec(), 2),
                ],
                "buffer capacity {cap}"
            );
        }
    }

    #[test]
    fn long_line_is_consumed_and_reported() {
        for cap in [1, 4, 64] {
            let got = lines(b"0123456789abc\nok\n0123456789", 5, cap);
            assert_eq!(
                got,
                vec![
                    (LineEnd::TooLong, vec![], 14),
                    (LineEnd::Newline, b"ok".to_vec(), 3),
                    (LineEnd::TooLong, vec![], 10),
                ]
            );
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        let got = lines(b"12345\n", 5, 2);
        assert_eq!(got, vec![(LineEnd::Newline, b"12345".to_vec(), 6)]);
    }

    #[test]
    fn empty_input_is_a_clean_end() {
        assert!(lines(b"", 5, 2).is_empty());
    }
}
