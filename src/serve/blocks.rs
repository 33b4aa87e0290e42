//! The spoolfetch reply in blocks: per plugin and per graph (multigraph service), in time
//! order, one block per run of records with the same config: the config lines once, then
//! every value line of those records, each with its time.
//!
//! The spool holds each sample with its plugin's whole config, so a reply of records is
//! mostly repeated config, and the master parses every copy. Munin 2.0's munin-update
//! merges the blocks of one service (it keeps the first `graph_*` value and the last field
//! attribute, and appends every value), so one block per config gives it the same RRD
//! updates from a fraction of the text; see `docs/protocol.md`.
//!
//! A plugin's graphs are laid out one after the other. The first streams to the master
//! as the plugin's files are read; the others (multigraph children, a few values each) are
//! held in memory meanwhile, up to 4 MiB in all; a graph past that is read again in a
//! pass of its own, so memory stays bounded whatever the backlog.
//!
//! Every plugin the node still lists (`munin-daemon.list`) is named in every reply: one
//! with no record in the window gets its newest spooled config without values, so
//! munin-update 2.0, which rebuilds its list of graphs from the reply, keeps its graphs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::serve::spoolfetch::{newest_record, scan_for_reply, FetchReport, Window};
use crate::spool::names::IntervalFile;
use crate::spool::record::{is_value_line, rewrite_value_line, Epoch, RecordSink};
use crate::spool::Spool;

/// Bytes gathered before a write to the master.
const OUT_CHUNK: usize = 128 * 1024;

/// A graph of a record: the name after `multigraph` (None for lines before any
/// `multigraph` line, which the writer never leaves but an old spool might).
type Graph = Option<Vec<u8>>;

/// Whether a line starts a graph: `multigraph NAME`, as the master reads it.
fn graph_name(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"multigraph")?;
    let name = rest
        .strip_prefix(b" ")
        .or_else(|| rest.strip_prefix(b"\t"))?;
    let name = name.trim_ascii();
    (!name.is_empty()).then_some(name)
}

/// A record's lines without its values: every graph's `multigraph` line and config.
fn config_only(body: &[u8], out: &mut Vec<u8>) {
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if !is_value_line(line) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}

/// Most bytes of a plugin's later graphs held in memory while its first graph streams
/// out; a graph past it is dropped from memory and written by a pass of its own.
const HELD_MAX: usize = 4 << 20;

/// One graph's output: its blocks, in time order.
struct GraphOut {
    graph: Graph,
    /// The config of the block being written.
    current: Option<Vec<u8>>,
    /// Its blocks so far (a later graph's, held until the first graph is out).
    held: Vec<u8>,
    /// Held too much: left for a pass of its own.
    overflow: bool,
}

impl GraphOut {
    fn new(graph: Graph) -> GraphOut {
        GraphOut {
            graph,
            current: None,
            held: Vec::new(),
            overflow: false,
        }
    }
}

/// Appends one graph of one record: a block (header and config) when its config differs
/// from the block being written, then its values with their time. `config` is swapped
/// with the block's config when it changes.
fn emit(
    out: &mut Vec<u8>,
    current: &mut Option<Vec<u8>>,
    graph: &Graph,
    config: &mut Vec<u8>,
    values: &[(usize, usize)],
    record: &[u8],
    epoch: &Epoch,
) {
    if current.as_ref() != Some(config) {
        if let Some(name) = graph {
            out.extend_from_slice(b"multigraph ");
            out.extend_from_slice(name);
            out.push(b'\n');
        }
        out.extend_from_slice(config);
        *config = current.replace(std::mem::take(config)).unwrap_or_default();
    }
    for &(a, b) in values {
        let v = &record[a..b];
        if !rewrite_value_line(v, epoch, out) {
            out.extend_from_slice(v);
            out.push(b'\n');
        }
    }
}

/// One pass over a plugin's records in the window. The target graph streams to the
/// master; on the first pass (target None: the first graph met) every other graph is held
/// in memory (up to [`HELD_MAX`] in all) to be written after it.
struct Pass<'w, W: Write> {
    out: &'w mut W,
    buf: &'w mut Vec<u8>,
    window: Window,
    target: Option<GraphOut>,
    /// The other graphs, in the order first met (first pass only).
    others: Option<Vec<GraphOut>>,
    held: usize,
    held_max: usize,
    epoch: Option<Epoch>,
    record: Vec<u8>,
    config: Vec<u8>,
    values: Vec<(usize, usize)>,
    report: &'w mut FetchReport,
}

impl<W: Write> Pass<'_, W> {
    /// The graph whose lines were gathered in `config` and `values` is over.
    fn section(&mut self, graph: &Graph, record: &[u8], epoch: &Epoch) {
        if self.target.is_none() {
            self.target = Some(GraphOut::new(graph.clone()));
        }
        if let Some(t) = self.target.as_mut().filter(|t| &t.graph == graph) {
            emit(
                self.buf,
                &mut t.current,
                graph,
                &mut self.config,
                &self.values,
                record,
                epoch,
            );
            return;
        }
        let Some(others) = &mut self.others else {
            return;
        };
        let i = match others.iter().position(|g| &g.graph == graph) {
            Some(i) => i,
            None => {
                others.push(GraphOut::new(graph.clone()));
                others.len() - 1
            }
        };
        let g = &mut others[i];
        if g.overflow {
            return;
        }
        let before = g.held.len();
        emit(
            &mut g.held,
            &mut g.current,
            graph,
            &mut self.config,
            &self.values,
            record,
            epoch,
        );
        self.held += g.held.len() - before;
        if self.held > self.held_max {
            self.held -= g.held.len();
            g.overflow = true;
            g.held = Vec::new();
            g.current = None;
        }
    }
}

impl<W: Write> RecordSink for Pass<'_, W> {
    type Error = io::Error;
    fn wants(&mut self, t: u64) -> bool {
        self.window.contains(t)
    }
    fn begin(&mut self, e: &Epoch) -> io::Result<bool> {
        self.epoch = Some(*e);
        self.record.clear();
        if self.others.is_some() {
            self.report.records += 1;
            self.report.newest = self.report.newest.max(Some(e.value()));
        }
        Ok(true)
    }
    fn line(&mut self, line: &[u8]) -> io::Result<bool> {
        self.record.extend_from_slice(line);
        self.record.push(b'\n');
        Ok(true)
    }
    fn lines(&mut self, run: &[u8]) -> io::Result<bool> {
        self.record.extend_from_slice(run);
        if !run.ends_with(b"\n") {
            self.record.push(b'\n');
        }
        Ok(true)
    }
    fn end(&mut self) -> io::Result<bool> {
        let Some(epoch) = self.epoch.take() else {
            return Ok(true);
        };
        let record = std::mem::take(&mut self.record);
        // Walk the record's lines once, graph by graph: config lines into `config`,
        // value lines as ranges of `record`.
        let mut graph: Option<Graph> = None;
        let mut pos = 0;
        while pos < record.len() {
            let end = memchr::memchr(b'\n', &record[pos..]).map_or(record.len(), |i| pos + i);
            let (a, b) = (pos, end);
            pos = end + 1;
            let line = &record[a..b];
            if line.is_empty() {
                continue;
            }
            let name = graph_name(line);
            if name.is_some() || graph.is_none() {
                if let Some(g) = graph.take() {
                    self.section(&g, &record, &epoch);
                }
                self.config.clear();
                self.values.clear();
                graph = Some(name.map(<[u8]>::to_vec));
                if name.is_some() {
                    continue;
                }
            }
            if is_value_line(line) {
                self.values.push((a, b));
            } else {
                self.config.extend_from_slice(line);
                self.config.push(b'\n');
            }
        }
        if let Some(g) = graph {
            self.section(&g, &record, &epoch);
        }
        self.record = record;
        if self.buf.len() >= OUT_CHUNK {
            self.out.write_all(self.buf)?;
            self.buf.clear();
        }
        Ok(true)
    }
}

/// Sends every record in `window` in blocks, plugin by plugin in name order, with the
/// newest config of each plugin in `listed` that has no record in the window; then the
/// closing `.`. Damaged parts and unreadable files are logged and skipped; only an error
/// writing to the master is returned.
pub(crate) fn spoolfetch_blocks<W: Write>(
    spool: &Spool,
    files: &[IntervalFile],
    window: Window,
    listed: &BTreeSet<String>,
    out: &mut W,
) -> io::Result<FetchReport> {
    blocks_holding(spool, files, window, listed, out, HELD_MAX)
}

/// [`spoolfetch_blocks`], holding at most `held_max` bytes of later graphs.
fn blocks_holding<W: Write>(
    spool: &Spool,
    files: &[IntervalFile],
    window: Window,
    listed: &BTreeSet<String>,
    out: &mut W,
    held_max: usize,
) -> io::Result<FetchReport> {
    let mut by_service: BTreeMap<&str, Vec<&IntervalFile>> = BTreeMap::new();
    for f in files.iter().filter(|f| window.may_hold(f)) {
        by_service.entry(f.service.as_str()).or_default().push(f);
    }
    for name in listed {
        by_service.entry(name.as_str()).or_default();
    }
    let mut report = FetchReport::default();
    let mut buf = Vec::with_capacity(OUT_CHUNK + 64 * 1024);
    for (service, mut in_window) in by_service {
        in_window.sort_by_key(|f| (f.start, f.size));
        let before = report.records;
        // The first pass streams the first graph and holds the others; a graph that did
        // not fit in memory gets a pass of its own.
        let mut target: Option<Graph> = None;
        let mut left: Vec<Graph> = Vec::new();
        let mut first = true;
        loop {
            let mut pass = Pass {
                out,
                buf: &mut buf,
                window,
                target: target.take().map(GraphOut::new),
                others: first.then(Vec::new),
                held: 0,
                held_max,
                epoch: None,
                record: Vec::new(),
                config: Vec::new(),
                values: Vec::new(),
                report: &mut report,
            };
            for f in &in_window {
                // Damage is logged and counted on the first pass only.
                let read = scan_for_reply(spool, f, &mut pass, first)?;
                if first {
                    read.add_to(pass.report);
                }
            }
            if let Some(others) = pass.others.take() {
                for g in others {
                    if g.overflow {
                        left.push(g.graph);
                    } else if !g.held.is_empty() {
                        out.write_all(&buf)?;
                        buf.clear();
                        for chunk in g.held.chunks(OUT_CHUNK) {
                            out.write_all(chunk)?;
                        }
                    }
                }
            }
            first = false;
            if left.is_empty() {
                break;
            }
            target = Some(left.remove(0));
        }
        if report.records == before && listed.contains(service) {
            // Nothing new: the newest config, so the master keeps the graphs.
            if let Some((_, body)) = newest_record(spool, files, service) {
                config_only(&body, &mut buf);
            }
        }
        if buf.len() >= OUT_CHUNK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b".\n");
    out.write_all(&buf)?;
    out.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::writer::{record_body, Durability, SpoolWriter};

    const T0: u64 = 1_795_500_000;

    /// A spool with these (plugin, time, output lines) samples, through our writer.
    fn spool_of(samples: &[(&str, u64, &[&str])]) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(dir.path(), 3600, Durability::Kernel).unwrap();
        for (plugin, t, lines) in samples {
            let mut body = Vec::new();
            record_body(plugin, lines.iter().map(|l| l.as_bytes()), &mut body);
            w.append(plugin, *t, &body).unwrap();
        }
        let spool = Spool::open(dir.path()).unwrap();
        (dir, spool)
    }

    fn reply(spool: &Spool, after: u64, listed: &[&str]) -> (String, FetchReport) {
        let files = spool.interval_files().unwrap();
        let window = Window {
            after,
            until: u64::MAX,
        };
        let listed = listed.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let report = spoolfetch_blocks(spool, &files, window, &listed, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    fn records_reply(spool: &Spool, after: u64) -> String {
        let files = spool.interval_files().unwrap();
        let window = Window {
            after,
            until: u64::MAX,
        };
        let mut out = Vec::new();
        crate::serve::spoolfetch::spoolfetch(spool, &files, window, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_block_per_run_of_records_with_the_same_config() {
        let a: &[&str] = &["graph_title A", "v.label v", "v.value 1"];
        let a2: &[&str] = &["graph_title A", "v.label v", "v.value 2"];
        let b: &[&str] = &["graph_title B", "v.label v", "v.value 3"];
        // Across an interval boundary (3600 s), with the config changing and back.
        let (_d, spool) = spool_of(&[
            ("load", T0, a),
            ("load", T0 + 3000, a2),
            ("load", T0 + 6000, b),
            ("load", T0 + 9000, a),
        ]);
        let (text, report) = reply(&spool, 0, &[]);
        assert_eq!(
            text,
            format!(
                "multigraph load\ngraph_title A\nv.label v\nv.value {}:1\nv.value {}:2\n\
                 multigraph load\ngraph_title B\nv.label v\nv.value {}:3\n\
                 multigraph load\ngraph_title A\nv.label v\nv.value {}:1\n.\n",
                T0,
                T0 + 3000,
                T0 + 6000,
                T0 + 9000
            )
        );
        assert_eq!((report.records, report.newest), (4, Some(T0 + 9000)));
    }

    #[test]
    fn a_multigraph_plugin_gives_one_block_per_graph_and_values_keep_their_own_time() {
        let rec = |i: u64| -> Vec<String> {
            vec![
                "multigraph mg".into(),
                "graph_title Root".into(),
                "r.label r".into(),
                format!("r.value {i}"),
                "multigraph mg.child".into(),
                "graph_title Child".into(),
                "c.label c".into(),
                format!("c.value {}:{i}", T0 - 7),
            ]
        };
        let (r0, r1) = (rec(0), rec(1));
        let l0: Vec<&str> = r0.iter().map(String::as_str).collect();
        let l1: Vec<&str> = r1.iter().map(String::as_str).collect();
        let (_d, spool) = spool_of(&[("mg", T0, &l0), ("mg", T0 + 5, &l1)]);
        let (text, _) = reply(&spool, 0, &[]);
        assert_eq!(
            text,
            format!(
                "multigraph mg\ngraph_title Root\nr.label r\nr.value {T0}:0\nr.value {}:1\n\
                 multigraph mg.child\ngraph_title Child\nc.label c\nc.value {}:0\nc.value {}:1\n.\n",
                T0 + 5,
                T0 - 7,
                T0 - 7
            )
        );
    }

    #[test]
    fn the_same_values_as_the_records_form_in_fewer_bytes() {
        let mut samples = Vec::new();
        let lines: Vec<Vec<String>> = (0..50u64)
            .map(|i| {
                vec![
                    "graph_title Dirty".into(),
                    "update_rate 5".into(),
                    "d.label d".into(),
                    format!("d.value {i}"),
                    "e.label e".into(),
                    if i % 7 == 0 {
                        "e.value U".into()
                    } else {
                        format!("e.value N:{i}")
                    },
                ]
            })
            .collect();
        let refs: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.iter().map(String::as_str).collect())
            .collect();
        for (i, l) in refs.iter().enumerate() {
            samples.push(("dirty", T0 + 5 * i as u64, l.as_slice()));
        }
        let (_d, spool) = spool_of(&samples);
        let values = |t: &str| -> Vec<String> {
            let mut v: Vec<String> = t
                .lines()
                .filter(|l| l.contains(".value "))
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        for after in [0, T0 + 100] {
            let (blocks, _) = reply(&spool, after, &[]);
            let records = records_reply(&spool, after);
            assert_eq!(values(&blocks), values(&records));
            assert!(blocks.len() * 2 < records.len(), "{blocks}");
        }
    }

    #[test]
    fn a_listed_plugin_without_new_samples_keeps_its_config_an_unlisted_one_does_not() {
        let (_d, spool) = spool_of(&[
            (
                "hourly",
                T0,
                &["graph_title Hourly", "h.label h", "h.value 1"],
            ),
            ("gone", T0, &["graph_title Gone", "g.label g", "g.value 1"]),
            (
                "load",
                T0 + 300,
                &["graph_title Load", "l.label l", "l.value 2"],
            ),
        ]);
        let (text, report) = reply(&spool, T0, &["hourly", "load", "never_sampled"]);
        assert_eq!(
            text,
            format!(
                "multigraph hourly\ngraph_title Hourly\nh.label h\n\
                 multigraph load\ngraph_title Load\nl.label l\nl.value {}:2\n.\n",
                T0 + 300
            )
        );
        assert_eq!((report.records, report.newest), (1, Some(T0 + 300)));
        // Nothing newer at all: the listed plugins' configs, and the cursor stays.
        let (text, report) = reply(&spool, T0 + 300, &["hourly", "load"]);
        assert!(
            !text.contains(".value") && text.contains("multigraph load\n"),
            "{text}"
        );
        assert_eq!(report.newest, None);
    }

    #[test]
    fn graphs_that_do_not_fit_in_memory_get_a_pass_of_their_own_with_the_same_reply() {
        let rec = |i: u64| -> Vec<String> {
            let mut l = Vec::new();
            for g in ["mg", "mg.a", "mg.b"] {
                l.push(format!("multigraph {g}"));
                l.push(format!("graph_title {g}"));
                l.push("v.label v".into());
                l.push(format!("v.value {i}"));
            }
            l
        };
        let recs: Vec<Vec<String>> = (0..20).map(rec).collect();
        let refs: Vec<Vec<&str>> = recs
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let samples: Vec<(&str, u64, &[&str])> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| ("mg", T0 + 60 * i as u64, r.as_slice()))
            .collect();
        let (_d, spool) = spool_of(&samples);
        let files = spool.interval_files().unwrap();
        let window = Window {
            after: 0,
            until: u64::MAX,
        };
        let (held, _) = reply(&spool, 0, &[]);
        let mut out = Vec::new();
        let report = blocks_holding(&spool, &files, window, &BTreeSet::new(), &mut out, 0).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), held);
        assert_eq!(report.records, 20);
        assert_eq!(held.matches("multigraph ").count(), 3, "{held}");
    }

    #[test]
    fn graph_names_as_the_master_reads_them() {
        assert_eq!(graph_name(b"multigraph a.b"), Some(&b"a.b"[..]));
        assert_eq!(graph_name(b"multigraph\ta "), Some(&b"a"[..]));
        assert_eq!(graph_name(b"multigraph"), None);
        assert_eq!(graph_name(b"multigraph "), None);
        assert_eq!(graph_name(b"multigraphs x"), None);
        assert_eq!(graph_name(b"graph_title multigraph x"), None);
    }
}
