//! The checks run on each crash state: what munin-async's reader accepts and a session
//! serves, the daemon's start on it, and the invariants of the folder's documentation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::asyncd::node_spool::open_spool;
use crate::serve::session::{run, Catchup, SessionConfig};
use crate::serve::spoolfetch::Form;
use crate::spool::meta::SpoolMeta;
use crate::spool::record::{Epoch, RecordSink};
use crate::spool::writer::Durability;
use crate::spool::Spool;

use super::exploration::Report;
use super::model::{Prefix, Shape};
use super::workloads::{meta_pairs, Appended, Recorded, HOST};

/// A record a reader accepted: its service (from the file name), time and body.
pub(crate) type Seen = (String, u64, Vec<u8>);

/// Every record munin-async's reader accepts in `dir`, whatever SPOOL-META says.
pub(crate) fn accepted(dir: &Path) -> Result<Vec<Seen>, String> {
    struct Collect<'a> {
        service: &'a str,
        out: &'a mut Vec<Seen>,
        cur: Option<(u64, Vec<u8>)>,
    }
    impl RecordSink for Collect<'_> {
        type Error = std::convert::Infallible;
        fn wants(&mut self, _: u64) -> bool {
            true
        }
        fn begin(&mut self, e: &Epoch) -> Result<bool, Self::Error> {
            self.cur = Some((e.value(), Vec::new()));
            Ok(true)
        }
        fn line(&mut self, line: &[u8]) -> Result<bool, Self::Error> {
            if let Some((_, b)) = &mut self.cur {
                b.extend_from_slice(line);
                b.push(b'\n');
            }
            Ok(true)
        }
        fn end(&mut self) -> Result<bool, Self::Error> {
            if let Some((t, b)) = self.cur.take() {
                self.out.push((self.service.to_string(), t, b));
            }
            Ok(true)
        }
    }
    let spool = Spool::open(dir).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for f in spool.interval_files().map_err(|e| e.to_string())? {
        let mut sink = Collect {
            service: &f.service,
            out: &mut out,
            cur: None,
        };
        match spool.scan_file(&f, &mut sink) {
            Ok(_) => {}
            Err(crate::spool::ScanError::Spool(e)) => return Err(e.to_string()),
            Err(crate::spool::ScanError::Sink(never)) => match never {},
        }
    }
    Ok(out)
}

/// The (graph, time) pairs a `spoolfetch 0` session serves from `dir`.
pub(crate) fn served(dir: &Path) -> Result<BTreeSet<(String, u64)>, String> {
    let spool = Spool::open(dir).map_err(|e| e.to_string())?;
    let cfg = SessionConfig {
        hostname: "x".into(),
        spoolfetch: true,
        catchup: Catchup::Seconds(0),
        form: Form::Blocks,
        interval_size: 86400,
        clock: || 4_000_000_000,
    };
    let mut out = Vec::new();
    run(&spool, &cfg, &b"spoolfetch 0\nquit\n"[..], &mut out).map_err(|e| format!("{e:?}"))?;
    let text = String::from_utf8_lossy(&out);
    let mut graph = String::new();
    let mut pairs = BTreeSet::new();
    for line in text.lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            graph = g.to_string();
        } else if let Some((_, v)) = line.split_once(".value ") {
            let t = v.split(':').next().and_then(|t| t.parse().ok());
            match t {
                Some(t) => {
                    pairs.insert((graph.clone(), t));
                }
                None => return Err(format!("a value without its time: {line}")),
            }
        }
    }
    Ok(pairs)
}

/// Checks one state; violations go into the report.
pub(crate) fn check(
    r: &Recorded,
    k: usize,
    p: &Prefix<'_>,
    shape: &Shape,
    i: u128,
    report: &mut Report,
) {
    report.states += 1;
    let state = p.state(shape, i);
    let at = |what: &str| {
        format!(
            "{} crash after op {k} (dir ops {}, state {i}): {what}",
            r.name, shape.dir
        )
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return report.violations.push(at(&format!("tempdir: {e}"))),
    };
    for (name, data) in &state {
        if let Err(e) = fs::write(dir.path().join(name), data) {
            return report
                .violations
                .push(at(&format!("materialise {name}: {e}")));
        }
    }
    let expected: BTreeMap<(&str, u64), &[u8]> = r
        .appended
        .iter()
        .map(|a| ((a.service.as_str(), a.time), a.body.as_slice()))
        .collect();
    let graphs: BTreeSet<(String, u64)> = r
        .appended
        .iter()
        .map(|a| (a.service.clone(), a.time))
        .collect();
    let record_mode = r.durability == Durability::Record;
    // Records in files cleanup or the size cap removed (and the removal persisted) are
    // gone by design.
    let unlinked = p.unlinked(shape.dir);
    let kept = |a: &Appended| !unlinked.contains(&a.file(r.interval));
    // 1: what the reader accepts is whole and unaltered, each record once.
    let whole = |when: &str, report: &mut Report| -> Option<BTreeSet<(String, u64)>> {
        let seen = match accepted(dir.path()) {
            Ok(s) => s,
            Err(e) => {
                report
                    .violations
                    .push(at(&format!("{when}: reading failed: {e}")));
                return None;
            }
        };
        let mut once = BTreeSet::new();
        for (service, t, b) in &seen {
            match expected.get(&(service.as_str(), *t)) {
                Some(want) if *want == b.as_slice() => {}
                _ => report.violations.push(at(&format!(
                    "{when}: served a torn or altered record: {service} at {t}: {:?}",
                    String::from_utf8_lossy(b)
                ))),
            }
            if !once.insert((service.clone(), *t)) {
                report
                    .violations
                    .push(at(&format!("{when}: {service} at {t} served twice")));
            }
        }
        Some(once)
    };
    let sessions = |when: &str, report: &mut Report| -> Option<BTreeSet<(String, u64)>> {
        match served(dir.path()) {
            Ok(s) => {
                for pair in s.difference(&graphs) {
                    report.violations.push(at(&format!(
                        "{when}: a session served {pair:?}, never written"
                    )));
                }
                Some(s)
            }
            Err(e) => {
                report
                    .violations
                    .push(at(&format!("{when}: the session failed: {e}")));
                None
            }
        }
    };
    if whole("before the repair", report).is_none() {
        return;
    }
    sessions("before the repair", report);
    let meta_before = fs::read(dir.path().join(crate::spool::meta::FILE_NAME))
        .ok()
        .map(|b| SpoolMeta::parse(&b));
    // 2: the daemon starts on it.
    let now = crate::util::clock::system_clock();
    let node = match open_spool(dir.path(), "", (r.interval, now), r.durability) {
        Ok(n) => n,
        Err(e) => {
            return report
                .violations
                .push(at(&format!("munin-asyncd cannot start: {e}")));
        }
    };
    let Some(present) = whole("after the repair", report) else {
        return;
    };
    // 4: complete_until never past durable data.
    if let Some(c) = meta_before.as_ref().and_then(|m| m.complete_until()) {
        let began = r
            .metas
            .iter()
            .filter(|m| m.complete_until == c)
            .map(|m| m.began)
            .max();
        let missing: Vec<_> = r
            .appended
            .iter()
            .filter(|a| began.is_some_and(|b| a.done <= b) && a.time <= c && kept(a))
            .filter(|a| !present.contains(&(a.service.clone(), a.time)))
            .map(|a| (a.service.clone(), a.time))
            .collect();
        if !missing.is_empty() {
            report.past_durable += 1;
            if record_mode {
                report.violations.push(at(&format!(
                    "complete_until {c} points past records lost: {missing:?}"
                )));
            }
        }
        if began.is_none() {
            report.violations.push(at(&format!(
                "SPOOL-META says complete_until {c}, never written"
            )));
        }
    }
    // 3: every record whose append returned is there.
    let committed: Vec<&Appended> = r
        .appended
        .iter()
        .filter(|a| a.done <= k && kept(a))
        .collect();
    if record_mode {
        for a in &committed {
            if !present.contains(&(a.service.clone(), a.time)) {
                report.violations.push(at(&format!(
                    "{} at {} was synced (append returned at op {}, began at {}) and is lost",
                    a.service, a.time, a.done, a.began
                )));
            }
        }
    }
    // 2 (continued): the host name kept or forgotten, never garbage; SPOOL-META written
    // anew as the daemon's first publication does, and the session serves what is there.
    if !(node.hostname == HOST || node.hostname.is_empty()) {
        report
            .violations
            .push(at(&format!("host name read back as {:?}", node.hostname)));
    }
    let host = if node.hostname.is_empty() {
        "unknown"
    } else {
        &node.hostname
    };
    if let Err(e) = node
        .writer
        .write_meta(&meta_pairs(host, r.interval, r.end.max(node.floor)))
    {
        return report
            .violations
            .push(at(&format!("SPOOL-META cannot be written: {e}")));
    }
    drop(node);
    if let Some(s) = sessions("after the restart", report) {
        if record_mode {
            for a in &committed {
                if !s.contains(&(a.service.clone(), a.time)) {
                    report.violations.push(at(&format!(
                        "{} at {} is synced but not served after the restart",
                        a.service, a.time
                    )));
                }
            }
        }
    }
}
