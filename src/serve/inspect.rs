//! A look inside a spool directory (`munin-async --inspect`): per plugin, its samples,
//! oldest and newest, gaps, bytes and damaged parts. It reads only: nothing is repaired,
//! cleaned up or rewritten, so it is safe on a live spool and on a copy from a broken host.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::spool::record::{Damage, Epoch, RecordSink};
use crate::spool::{ScanError, Spool, SpoolError};

/// What one plugin's files hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PluginReport {
    /// The sanitised plugin name, as in the file names.
    pub(crate) service: String,
    /// Interval files.
    pub(crate) files: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Intact samples (records).
    pub(crate) samples: u64,
    /// The oldest and newest sample's time.
    pub(crate) oldest: Option<u64>,
    /// See `oldest`.
    pub(crate) newest: Option<u64>,
    /// The plugin's rate: `plugin_rates/` in SPOOL-META, else the shortest step seen.
    pub(crate) rate: Option<u64>,
    /// Steps between samples longer than 1.5 × the rate, and the longest step.
    pub(crate) gaps: u64,
    /// See `gaps`.
    pub(crate) longest_gap: u64,
    /// Damaged parts skipped, and the first: file, byte offset, what.
    pub(crate) damaged: u64,
    /// See `damaged`.
    pub(crate) first_damage: Option<(String, u64, Damage)>,
    /// Files that could not be read, with why.
    pub(crate) unreadable: Vec<String>,
}

/// What a spool directory holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpoolReport {
    /// `hostname` from SPOOL-META.
    pub(crate) hostname: Option<String>,
    /// `complete_until` from SPOOL-META (written by our munin-asyncd only).
    pub(crate) complete_until: Option<u64>,
    /// Problems with SPOOL-META itself.
    pub(crate) meta_problems: Vec<String>,
    /// One entry per plugin, in name order.
    pub(crate) plugins: Vec<PluginReport>,
}

impl SpoolReport {
    /// Whether anything damaged or unreadable was found.
    pub(crate) fn is_clean(&self) -> bool {
        self.meta_problems.is_empty()
            && self
                .plugins
                .iter()
                .all(|p| p.damaged == 0 && p.unreadable.is_empty())
    }
}

/// Collects the times of the intact records.
struct Times(Vec<u64>);

impl RecordSink for Times {
    type Error = std::convert::Infallible;
    fn begin(&mut self, e: &Epoch) -> Result<bool, Self::Error> {
        self.0.push(e.value());
        Ok(true)
    }
    // The lines are not looked at: not even split.
    fn lines(&mut self, _: &[u8]) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Reads every interval file of `spool`.
pub(crate) fn inspect(spool: &Spool) -> Result<SpoolReport, SpoolError> {
    let mut report = SpoolReport::default();
    match spool.meta() {
        Ok(meta) => {
            match meta.hostname() {
                Ok(h) => report.hostname = h.map(str::to_string),
                Err(e) => report.meta_problems.push(e.to_string()),
            }
            report.complete_until = meta.complete_until();
            for e in [meta.interval_size().err(), meta.interval_keep().err()]
                .into_iter()
                .flatten()
            {
                report.meta_problems.push(e.to_string());
            }
            let mut by_service: BTreeMap<String, PluginReport> = BTreeMap::new();
            let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for f in spool.interval_files()? {
                let p = by_service
                    .entry(f.service.clone())
                    .or_insert_with(|| PluginReport {
                        service: f.service.clone(),
                        ..PluginReport::default()
                    });
                let name = f.file_name();
                p.files += 1;
                p.bytes += spool.size_of(&f);
                let mut sink = Times(Vec::new());
                match spool.scan_file(&f, &mut sink) {
                    Ok(stats) => {
                        p.damaged += stats.damaged;
                        if let (None, Some((offset, what))) = (&p.first_damage, stats.first_damage)
                        {
                            p.first_damage = Some((name, offset, what));
                        }
                    }
                    Err(ScanError::Spool(e)) => p.unreadable.push(e.to_string()),
                    Err(ScanError::Sink(never)) => match never {},
                }
                times.entry(f.service.clone()).or_default().extend(sink.0);
            }
            let rates = meta.plugin_rates();
            for (service, mut ts) in times {
                let Some(p) = by_service.get_mut(&service) else {
                    continue;
                };
                ts.sort_unstable();
                p.samples = ts.len() as u64;
                p.oldest = ts.first().copied();
                p.newest = ts.last().copied();
                let steps: Vec<u64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
                let declared = rates.get(&service).copied();
                p.rate = declared.or_else(|| steps.iter().copied().filter(|&s| s > 0).min());
                if let Some(rate) = p.rate {
                    p.gaps = steps.iter().filter(|&&s| s * 2 > rate * 3).count() as u64;
                }
                p.longest_gap = steps.iter().copied().max().unwrap_or(0);
            }
            report.plugins = by_service.into_values().collect();
        }
        Err(e) => return Err(e),
    }
    Ok(report)
}

/// A time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn utc(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil-from-days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The report as text for a person: a header, one line per plugin, then the problems.
pub(crate) fn render(dir: &std::path::Path, r: &SpoolReport) -> String {
    let mut out = String::new();
    let bytes: u64 = r.plugins.iter().map(|p| p.bytes).sum();
    let samples: u64 = r.plugins.iter().map(|p| p.samples).sum();
    let _ = writeln!(
        out,
        "spool {}: host {}, {} plugins, {samples} samples, {bytes} bytes",
        dir.display(),
        r.hostname.as_deref().unwrap_or("(none in SPOOL-META)"),
        r.plugins.len()
    );
    if let Some(t) = r.complete_until {
        let _ = writeln!(out, "complete until {} UTC", utc(t));
    }
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:<19}  {:<19}  {:>6} {:>5} {:>8} {:>10} {:>7}",
        "plugin",
        "samples",
        "oldest (UTC)",
        "newest (UTC)",
        "rate",
        "gaps",
        "longest",
        "bytes",
        "damaged"
    );
    for p in &r.plugins {
        let when = |t: Option<u64>| t.map_or("-".to_string(), utc);
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:<19}  {:<19}  {:>6} {:>5} {:>8} {:>10} {:>7}",
            p.service,
            p.samples,
            when(p.oldest),
            when(p.newest),
            p.rate.map_or("-".to_string(), |r| format!("{r}s")),
            p.gaps,
            format!("{}s", p.longest_gap),
            p.bytes,
            p.damaged
        );
    }
    for problem in &r.meta_problems {
        let _ = writeln!(out, "problem: SPOOL-META: {problem}");
    }
    for p in &r.plugins {
        if let Some((file, offset, what)) = &p.first_damage {
            let _ = writeln!(
                out,
                "problem: {}: {} damaged part(s), the first in {file} at byte {offset}: {what}",
                p.service, p.damaged
            );
        }
        for e in &p.unreadable {
            let _ = writeln!(out, "problem: {}: {e}", p.service);
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if r.is_clean() {
            "no damage found"
        } else {
            "damage found (munin-async skips damaged parts; munin-asyncd cuts torn tails at start)"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::write_sealed;

    /// The daemon keeps a plugin's rate under the name munin-node lists (`if_eth0.1`), the
    /// files under the sanitised one (`if_eth0_1`): --inspect must find the rate anyway.
    #[test]
    fn the_declared_rate_of_a_plugin_whose_name_needs_sanitising_is_found() {
        use crate::spool::meta::key;
        use crate::spool::writer::{record_body, Durability, SpoolWriter};
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(dir.path(), 86_400, Durability::Kernel).unwrap();
        for plugin in ["if_eth0.1", "cpu"] {
            let service = crate::spool::names::sanitise(plugin.as_bytes());
            // Samples 30 s apart, but the plugin declares 60 s: a gap-free rate of 30
            // would mean the declaration was not read.
            for t in [86_400u64, 86_430, 86_460, 86_520] {
                let mut body = Vec::new();
                record_body(&service, [&b"v.label v"[..], b"v.value 1"], &mut body);
                w.append(plugin, t, &body).unwrap();
            }
        }
        w.write_meta(&[
            (key::HOSTNAME.into(), "node.example.org".into()),
            (key::plugin_rate("if_eth0.1"), "60".into()),
            (key::plugin_rate("cpu"), "60".into()),
        ])
        .unwrap();
        let r = inspect(&Spool::open(dir.path()).unwrap()).unwrap();
        let rates: Vec<(&str, Option<u64>)> = r
            .plugins
            .iter()
            .map(|p| (p.service.as_str(), p.rate))
            .collect();
        assert_eq!(rates, [("cpu", Some(60)), ("if_eth0_1", Some(60))]);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_558_613), "2026-11-24 22:16:53");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59");
    }

    #[test]
    fn counts_samples_gaps_bytes_and_damage_without_changing_anything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("SPOOL-META"),
            "hostname:node.example.org\ncomplete_until:86700\nplugin_rates/load:300\n",
        )
        .unwrap();
        let mut load = Vec::new();
        for t in [86_400u64, 86_700, 87_000, 88_200, 88_500] {
            write_sealed(t, b"multigraph load\nload.value 1\n", &mut load);
        }
        // A damaged record: one byte changed.
        let mut bad = Vec::new();
        write_sealed(88_800, b"multigraph load\nload.value 1\n", &mut bad);
        let n = bad.len();
        bad[n - 2] = b'7';
        load.extend_from_slice(&bad);
        let load_file = dir.path().join("munin-daemon.load.86400.86400");
        std::fs::write(&load_file, &load).unwrap();
        let mut cpu = b"timestamp 86460\nmultigraph cpu\nuser.value 3\n".to_vec();
        cpu.extend_from_slice(b"timestamp 86520\nmultigraph cpu\nuser.value 4\n");
        std::fs::write(dir.path().join("munin-daemon.cpu.86400.86400"), &cpu).unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let r = inspect(&spool).unwrap();
        assert_eq!(r.hostname.as_deref(), Some("node.example.org"));
        assert_eq!(r.complete_until, Some(86_700));
        assert!(!r.is_clean());
        let (cpu_r, load_r) = (&r.plugins[0], &r.plugins[1]);
        assert_eq!(
            (
                cpu_r.service.as_str(),
                cpu_r.samples,
                cpu_r.rate,
                cpu_r.gaps
            ),
            ("cpu", 2, Some(60), 0)
        );
        assert_eq!(load_r.samples, 5);
        assert_eq!((load_r.oldest, load_r.newest), (Some(86_400), Some(88_500)));
        // 87000 → 88200 misses three slots of 300 s.
        assert_eq!(
            (load_r.rate, load_r.gaps, load_r.longest_gap),
            (Some(300), 1, 1200)
        );
        assert_eq!(load_r.damaged, 1);
        assert_eq!(load_r.bytes, load.len() as u64);
        let text = render(dir.path(), &r);
        assert!(text.contains("load.86400.86400 at byte"), "{text}");
        assert!(text.ends_with("damage found (munin-async skips damaged parts; munin-asyncd cuts torn tails at start)\n"), "{text}");
        // Nothing was changed.
        assert_eq!(std::fs::read(&load_file).unwrap(), load);
    }
}
