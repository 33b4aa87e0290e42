//! `SPOOL-META`: the spool directory's `key:value` metadata file.
//!
//! Written by munin-asyncd (Perl's `Munin::Common::SyncDictFile` rewrites it whole through
//! `SPOOL-META.tmp` and a rename). Perl takes the first line whose key matches, so we do
//! too. Lines that are not `key:value` are ignored; values that do not make sense are
//! reported by the accessor, which falls back to the default, so a damaged file never
//! stops the reader.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::spool::names::parse_decimal;

/// File name of the metadata file inside the spool directory.
pub(crate) const FILE_NAME: &str = "SPOOL-META";

/// The largest SPOOL-META we read; anything past it is ignored.
pub(crate) const MAX_SIZE: u64 = 1 << 20;

/// Default interval file length, seconds (Perl's `DEFAULT_TIME`).
pub(crate) const DEFAULT_INTERVAL_SIZE: u64 = 86_400;
/// Default number of intervals kept (Perl's `MAXIMUM_AGE`).
pub(crate) const DEFAULT_INTERVAL_KEEP: u64 = 7;
/// Largest interval size we accept from the file (a year).
pub(crate) const MAX_INTERVAL_SIZE: u64 = 366 * 86_400;
/// Largest interval count we accept from the file.
pub(crate) const MAX_INTERVAL_KEEP: u64 = 100_000;

/// Every SPOOL-META key, defined once for the writer (munin-asyncd), the reader
/// (munin-async) and `--inspect`.
pub mod key {
    /// The name munin-async greets the master with (Perl's).
    pub(crate) const HOSTNAME: &str = "hostname";
    /// Seconds per interval file (Perl's).
    pub(crate) const INTERVAL_SIZE: &str = "interval_size";
    /// Interval files kept (Perl's).
    pub(crate) const INTERVAL_KEEP: &str = "interval_keep";
    /// When the daemon last wrote the file (Perl's).
    pub(crate) const LAST_RUN_TIME: &str = "lastruntime";
    /// Every sample at or before this time is in the spool or has failed (ours).
    pub(crate) const COMPLETE_UNTIL: &str = "complete_until";
    /// The prefix of a plugin's own `update_rate` (Perl's, with the plugin's name as
    /// munin-node lists it, not sanitised).
    pub(crate) const PLUGIN_RATE_PREFIX: &str = "plugin_rates/";
    /// The prefix of how long a plugin's last poll took, in ms (ours; the plugin's name).
    pub(crate) const POLL_MS_PREFIX: &str = "poll_ms/";
    /// The prefix of a plugin's newest sample (the development branch's; sanitised name).
    pub(crate) const LAST_TIMESTAMP_PREFIX: &str = "last-timestamp.";

    /// `plugin_rates/<plugin>`.
    pub(crate) fn plugin_rate(plugin: &str) -> String {
        format!("{PLUGIN_RATE_PREFIX}{plugin}")
    }

    /// `poll_ms/<plugin>`.
    pub(crate) fn poll_ms(plugin: &str) -> String {
        format!("{POLL_MS_PREFIX}{plugin}")
    }

    /// `last-timestamp.<plugin, sanitised>`.
    pub(crate) fn last_timestamp(plugin: &str) -> String {
        format!(
            "{LAST_TIMESTAMP_PREFIX}{}",
            crate::spool::names::sanitise(plugin.as_bytes())
        )
    }
}

/// The parsed metadata: the raw `key:value` pairs in file order.
#[derive(Debug, Default, Clone)]
pub struct SpoolMeta {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A value in SPOOL-META that was present but unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// The key.
    pub(crate) key: &'static str,
    /// The value as found, lossily decoded for messages.
    pub(crate) value: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SPOOL-META: unusable {} value {:?}",
            self.key, self.value
        )
    }
}

impl SpoolMeta {
    /// Parses the bytes of a SPOOL-META file.
    pub fn parse(bytes: &[u8]) -> SpoolMeta {
        let pairs = bytes
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                let (key, value) = (&line[..colon], &line[colon + 1..]);
                if key.is_empty() {
                    return None;
                }
                Some((key.to_vec(), value.to_vec()))
            })
            .collect();
        SpoolMeta { pairs }
    }

    /// Reads `dir/SPOOL-META`. A missing file is an empty metadata set (Perl creates it
    /// empty); other errors are returned so the caller can say which file failed.
    pub(crate) fn load(dir: &Path) -> io::Result<SpoolMeta> {
        let path = dir.join(FILE_NAME);
        match fs::File::open(&path) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(MAX_SIZE).read_to_end(&mut bytes)?;
                Ok(SpoolMeta::parse(&bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(SpoolMeta::default()),
            Err(e) => Err(e),
        }
    }

    /// Every pair, as text, with the value of `key` replaced by `value` (added if absent):
    /// what to write back to change one key.
    pub(crate) fn pairs_with(&self, key: &str, value: &str) -> Vec<(String, String)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut out: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != key.as_bytes())
            .map(|(k, v)| (text(k), text(v)))
            .collect();
        out.push((key.to_string(), value.to_string()));
        out
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The host name the spool was written for, when it is usable in a greeting: non-empty,
    /// printable ASCII without spaces.
    pub fn hostname(&self) -> Result<Option<&str>, BadValue> {
        match self.get(key::HOSTNAME) {
            None | Some(b"") => Ok(None),
            Some(v) if is_hostname(v) => Ok(std::str::from_utf8(v).ok()),
            Some(v) => Err(bad(key::HOSTNAME, v)),
        }
    }

    /// `complete_until`: every sample taken at or before this time is in the spool or
    /// known to have failed (written by our munin-asyncd; Perl's never writes it).
    pub(crate) fn complete_until(&self) -> Option<u64> {
        self.get(key::COMPLETE_UNTIL)
            .and_then(|v| crate::spool::names::parse_decimal(v.trim_ascii()))
    }

    /// `interval_size`, else the default.
    pub fn interval_size(&self) -> Result<u64, BadValue> {
        self.bounded(key::INTERVAL_SIZE, DEFAULT_INTERVAL_SIZE, MAX_INTERVAL_SIZE)
    }

    /// `interval_keep`, else the default.
    pub fn interval_keep(&self) -> Result<u64, BadValue> {
        self.bounded(key::INTERVAL_KEEP, DEFAULT_INTERVAL_KEEP, MAX_INTERVAL_KEEP)
    }

    /// Each plugin's declared `update_rate` (`plugin_rates/<plugin>`), by its sanitised
    /// name, as the spool files name it. The keys hold the name munin-node lists
    /// (`if_eth0.1`), the files the sanitised one (`if_eth0_1`). Unusable values are left
    /// out; the first key for a name wins, as for every key.
    pub(crate) fn plugin_rates(&self) -> std::collections::BTreeMap<String, u64> {
        let mut rates = std::collections::BTreeMap::new();
        for (k, v) in &self.pairs {
            let Some(name) = k.strip_prefix(key::PLUGIN_RATE_PREFIX.as_bytes()) else {
                continue;
            };
            if let Some(rate) = parse_decimal(v.trim_ascii()).filter(|&r| r > 0) {
                rates
                    .entry(crate::spool::names::sanitise(name))
                    .or_insert(rate);
            }
        }
        rates
    }

    /// How long the plugin's last poll took (`poll_ms/<plugin>`), in ms.
    pub(crate) fn poll_ms(&self, plugin: &str) -> Option<u64> {
        self.get(&key::poll_ms(plugin))
            .and_then(|v| parse_decimal(v.trim_ascii()))
    }

    fn bounded(&self, key: &'static str, default: u64, max: u64) -> Result<u64, BadValue> {
        match self.get(key) {
            None | Some(b"") => Ok(default),
            Some(v) => match parse_decimal(v.trim_ascii()) {
                Some(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(bad(key, v)),
            },
        }
    }
}

fn bad(key: &'static str, value: &[u8]) -> BadValue {
    BadValue {
        key,
        value: String::from_utf8_lossy(value).chars().take(100).collect(),
    }
}

/// Whether a name can stand in `# munin node at NAME` and be read back by the master's
/// `(\S+)`.
pub(crate) fn is_hostname(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 253 && v.iter().all(|&b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_wins_and_junk_is_ignored() {
        let m = SpoolMeta::parse(
            b"garbage line\n:novalue\nhostname:node1.example.org\nhostname:other\ninterval_size:3600\r\n",
        );
        assert_eq!(m.hostname(), Ok(Some("node1.example.org")));
        assert_eq!(m.interval_size(), Ok(3600));
        assert_eq!(m.interval_keep(), Ok(DEFAULT_INTERVAL_KEEP));
    }

    #[test]
    fn unusable_values_are_reported() {
        let m = SpoolMeta::parse(b"hostname:a b\ninterval_size:0\ninterval_keep:lots\n");
        assert!(m.hostname().is_err());
        assert_eq!(m.interval_size().unwrap_err().key, "interval_size");
        assert!(m.interval_keep().is_err());
        let m = SpoolMeta::parse(b"interval_size:99999999999999999999999\n");
        assert!(m.interval_size().is_err());
    }

    #[test]
    fn empty_and_binary_files() {
        let m = SpoolMeta::parse(b"");
        assert_eq!(m.hostname(), Ok(None));
        assert_eq!(m.interval_size(), Ok(DEFAULT_INTERVAL_SIZE));
        let m = SpoolMeta::parse(b"\x00\xff:\xfe\nhostname:\xff\n");
        assert!(m.hostname().is_err());
    }
}
