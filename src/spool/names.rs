//! Names in the spool directory.
//!
//! A spool directory holds one file per plugin and interval,
//! `munin-daemon.<service>.<interval_start>.<interval_size>`, where `<service>` is the
//! plugin name with every byte outside `[A-Za-z0-9_]` replaced by `_` (Debian bug
//! 710529: munin-update squashes names the same way). Only names that parse here are
//! ever opened or deleted, so a name chosen by a peer can never point outside the
//! directory.

/// The prefix of every interval file.
pub(crate) const PREFIX: &str = "munin-daemon.";

/// The longest service name we accept in a file name (Linux allows 255-byte names).
pub(crate) const MAX_SERVICE_LEN: usize = 200;

/// One interval file of one plugin, as named in the spool directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct IntervalFile {
    /// The sanitised plugin name.
    pub(crate) service: String,
    /// Start of the interval, seconds since the epoch (a multiple of `size`).
    pub(crate) start: u64,
    /// Length of the interval in seconds.
    pub(crate) size: u64,
}

impl IntervalFile {
    /// Parses a directory entry name; `None` for anything that is not an interval file.
    pub(crate) fn parse(name: &[u8]) -> Option<IntervalFile> {
        let rest = name.strip_prefix(PREFIX.as_bytes())?;
        let mut parts = rest.rsplitn(3, |&b| b == b'.');
        let size = parse_decimal(parts.next()?)?;
        let start = parse_decimal(parts.next()?)?;
        let service = parts.next()?;
        if service.is_empty()
            || service.len() > MAX_SERVICE_LEN
            || !service.iter().all(|&b| is_service_byte(b))
        {
            return None;
        }
        let service = String::from_utf8(service.to_vec()).ok()?;
        if size == 0 {
            return None;
        }
        Some(IntervalFile {
            service,
            start,
            size,
        })
    }

    /// The file name this interval file has in the spool directory.
    pub(crate) fn file_name(&self) -> String {
        format!("{PREFIX}{}.{}.{}", self.service, self.start, self.size)
    }

    /// The end of the interval (exclusive), saturating.
    pub(crate) fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// Whether a byte may stand in a sanitised service name.
pub(crate) fn is_service_byte(b: u8) -> bool {
    WORD[usize::from(b)]
}

/// `[A-Za-z0-9_]` as a table: the spool reader asks for every byte of every field name.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

/// Squashes a plugin name the way munin-update and Perl's SpoolWriter do: every byte
/// outside `[A-Za-z0-9_]` becomes `_`.
pub fn sanitise(name: &[u8]) -> String {
    name.iter()
        .map(|&b| if is_service_byte(b) { b as char } else { '_' })
        .collect()
}

/// Parses ASCII digits as a `u64`; `None` when empty, not all digits, or too large.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interval_file_names() {
        let f = IntervalFile::parse(b"munin-daemon.if_eth0.1795478400.86400").unwrap();
        assert_eq!(f.service, "if_eth0");
        assert_eq!((f.start, f.size), (1795478400, 86400));
        assert_eq!(f.file_name(), "munin-daemon.if_eth0.1795478400.86400");
    }

    #[test]
    fn rejects_everything_else() {
        for name in [
            &b"munin-daemon.list"[..],
            b"SPOOL-META",
            b"munin-daemon..1.2",
            b"munin-daemon.a.b.1.2",
            b"munin-daemon.a.1.0",
            b"munin-daemon.a.1.2.tmp",
            b"munin-daemon.a.x.2",
            b"munin-daemon.a.1.",
            b"munin-daemon.a-b.1.2",
            b"munin-daemon.../../etc.1.2",
            b"munin-daemon.a.99999999999999999999999.2",
            b"munin-daemon.a.+1.2",
            b"munin-daemon.\xff.1.2",
        ] {
            assert_eq!(
                IntervalFile::parse(name),
                None,
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn sanitises_like_munin_update() {
        assert_eq!(sanitise(b"if_eth0"), "if_eth0");
        assert_eq!(sanitise(b"if_eth0.100"), "if_eth0_100");
        assert_eq!(sanitise(b"a-b/../c\x00\xc3\xa9"), "a_b____c___");
    }

    #[test]
    fn decimal_bounds() {
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b""), None);
    }
}
