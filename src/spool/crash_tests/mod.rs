//! Crash-state exploration of the spool writer, after ALICE (Pillai et al., OSDI 2014).
//!
//! A workload drives a [`SpoolWriter`] on a real directory with a [`Trace`] attached, so
//! every file operation it performs is recorded. For every prefix of that trace (a crash
//! after each operation) the generator builds the directories a power loss could leave,
//! under the persistence model below, and the checker runs on each: munin-async's reader
//! and a whole session on the state as it is, then munin-asyncd's start on it
//! ([`open_spool`]: the lock, the torn-tail repair, SPOOL-META read back), then a session
//! again after the daemon's first SPOOL-META.
//!
//! # The persistence model
//!
//! Close to ext4 with `data=ordered` as ALICE models it, and no more generous:
//!
//! - What a file's `fdatasync`/`fsync` covered persists: every write and truncation of the
//!   file before it.
//! - Each later write to the file may be missing, present, or cut at a 512-byte boundary
//!   of the file; each later truncation applied or not. They are chosen independently, so
//!   a later write can persist while an earlier one is lost (the hole reads as zeros).
//! - Directory operations (a new file's entry, a rename, an unlink) are atomic and
//!   persist in the order they were made (the journal): some prefix of them. Those before
//!   the directory's last `fsync` always persist.
//! - Files that existed before the workload are durable as they were.
//!
//! # The invariants
//!
//! 1. Nothing torn or altered is served: every record munin-async's reader accepts, before
//!    the repair and after it, is byte for byte one the workload appended, each once; a
//!    session's `spoolfetch` serves no graph and time the workload did not write.
//! 2. The daemon starts on every state (no crash loop): the lock, the repair and reading
//!    SPOOL-META succeed, and SPOOL-META, lost or damaged, is written anew.
//! 3. With `--durability record`, every record whose `append` returned before the crash
//!    is there after the repair, and served once the daemon has published its
//!    `complete_until`.
//! 4. With `--durability record`, the `complete_until` a state's SPOOL-META holds never
//!    points past durable data: every record appended before that SPOOL-META was written,
//!    with a time at or before it, is there.
//!
//! With `--durability kernel` nothing is synced, so 3 and 4 are not promised: the states
//! are sampled and 1 and 2 checked, and the states that break 4 counted for the docs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::asyncd::node_spool::open_spool;
use crate::serve::session::{run, Catchup, SessionConfig};
use crate::serve::spoolfetch::Form;
use crate::spool::meta::{key, SpoolMeta};
use crate::spool::record::{Epoch, RecordSink};
use crate::spool::trace::{Op, Trace};
use crate::spool::writer::{record_body, Durability, SpoolWriter};
use crate::spool::{Spool, LOCK_FILE};

/// The host name the workloads give SPOOL-META.
const HOST: &str = "crash.example";

/// One step of a workload, as munin-asyncd takes it.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// A sample of a plugin at a time, with this many value fields (its size).
    Append(&'static str, u64, usize),
    /// Samples written unsynced, then one `syncfs` (munin-asyncd's group commit with
    /// `--durability record`): each counts as appended when the sync returns.
    Batch(&'static [(&'static str, u64, usize)]),
    /// SPOOL-META with this `complete_until`.
    Meta(u64),
    /// SPOOL-META through the group commit: its temporary file written, one `syncfs`,
    /// then the rename (not synced until a later `syncfs`).
    GroupMeta(u64),
    /// `munin-daemon.list`.
    List(&'static [&'static str]),
    /// `--cleanup` at this time, files older than this many seconds.
    Cleanup(u64, u64),
    /// `--max-spool-size` at this time, this many bytes.
    Cap(u64, u64),
}

/// A workload: its steps, and what the spool held before it began.
pub(crate) struct Workload {
    /// For the report.
    pub(crate) name: &'static str,
    /// `--interval`.
    pub(crate) interval: u64,
    /// The durability the writer runs with.
    pub(crate) durability: Durability,
    /// Files in the directory before the writer opens it (a torn tail, say).
    pub(crate) before: Vec<(String, Vec<u8>)>,
    /// What the daemon does.
    pub(crate) steps: Vec<Step>,
}

/// A record the workload appended.
#[derive(Debug, Clone)]
struct Appended {
    /// The number of operations recorded when `append` returned.
    done: usize,
    /// The number of operations recorded when it began.
    began: usize,
    service: String,
    time: u64,
    body: Vec<u8>,
}

impl Appended {
    /// The interval file it went to.
    fn file(&self, interval: u64) -> String {
        crate::spool::names::IntervalFile {
            service: self.service.clone(),
            start: self.time - self.time % interval,
            size: interval,
        }
        .file_name()
    }
}

/// A SPOOL-META the workload wrote.
#[derive(Debug, Clone)]
struct MetaWritten {
    began: usize,
    complete_until: u64,
}

/// A workload run once, with its trace: what the generator and the checker work from.
pub(crate) struct Recorded {
    name: &'static str,
    interval: u64,
    durability: Durability,
    before: Vec<(String, Vec<u8>)>,
    ops: Vec<Op>,
    appended: Vec<Appended>,
    metas: Vec<MetaWritten>,
    /// The latest time of the workload: the daemon's clock after it.
    end: u64,
    /// The directory the writer left, for the replay check.
    after: BTreeMap<String, Vec<u8>>,
}

/// A body of `fields` value lines for `service` at `time`, as munin-asyncd spools it.
fn body(service: &str, time: u64, fields: usize) -> Vec<u8> {
    let mut lines = vec![
        format!("graph_title {service}"),
        "graph_category crash".to_string(),
    ];
    for i in 0..fields {
        lines.push(format!("f{i}.label field {i}"));
        lines.push(format!("f{i}.value {}", time * 7 + i as u64));
    }
    let mut out = Vec::new();
    record_body(service, lines.iter().map(|l| l.as_bytes()), &mut out);
    out
}

/// Runs `w` on a fresh directory and records every file operation.
pub(crate) fn record(w: &Workload) -> Recorded {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, data) in &w.before {
        fs::write(dir.path().join(name), data).expect("write before");
    }
    let trace = Arc::new(Trace::default());
    // munin-asyncd's start: the lock, then the repair (traced: it cuts torn tails).
    let writer = SpoolWriter::open(dir.path(), w.interval, w.durability)
        .expect("open")
        .traced(trace.clone());
    writer.repair().expect("repair");
    // The intact records already there are as durable as anything written.
    let mut appended: Vec<Appended> = accepted(dir.path())
        .expect("read before")
        .into_iter()
        .map(|(service, time, body)| Appended {
            done: 0,
            began: 0,
            service,
            time,
            body,
        })
        .collect();
    let mut metas = Vec::new();
    let mut end = 0;
    let count = || trace.ops().len();
    for step in &w.steps {
        match *step {
            Step::Append(service, time, fields) => {
                let b = body(service, time, fields);
                let began = count();
                writer.append(service, time, &b).expect("append");
                appended.push(Appended {
                    done: count(),
                    began,
                    service: service.to_string(),
                    time,
                    body: b,
                });
                end = end.max(time);
            }
            Step::Batch(samples) => {
                let mut batch = Vec::new();
                for &(service, time, fields) in samples {
                    let b = body(service, time, fields);
                    let began = count();
                    writer.append_unsynced(service, time, &b).expect("append");
                    batch.push(Appended {
                        done: 0,
                        began,
                        service: service.to_string(),
                        time,
                        body: b,
                    });
                    end = end.max(time);
                }
                writer.sync_fs().expect("syncfs");
                for mut a in batch {
                    a.done = count();
                    appended.push(a);
                }
            }
            Step::Meta(c) => {
                let began = count();
                writer
                    .write_meta(&meta_pairs(HOST, w.interval, c))
                    .expect("meta");
                metas.push(MetaWritten {
                    began,
                    complete_until: c,
                });
            }
            Step::GroupMeta(c) => {
                let began = count();
                writer
                    .prepare_meta(&meta_pairs(HOST, w.interval, c))
                    .expect("prepare meta");
                writer.sync_fs().expect("syncfs");
                writer.install_meta().expect("install meta");
                metas.push(MetaWritten {
                    began,
                    complete_until: c,
                });
            }
            Step::List(names) => {
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                writer.write_list(&names).expect("list");
            }
            Step::Cleanup(now, age) => {
                writer.cleanup(now, age).expect("cleanup");
                end = end.max(now);
            }
            Step::Cap(now, max) => {
                writer.cap_size(now, max).expect("cap");
                end = end.max(now);
            }
        }
    }
    let after = listing(dir.path());
    Recorded {
        name: w.name,
        interval: w.interval,
        durability: w.durability,
        before: w.before.clone(),
        ops: trace.ops(),
        appended,
        metas,
        end,
        after,
    }
}

/// SPOOL-META as the coordinator writes it (the keys munin-async reads).
fn meta_pairs(host: &str, interval: u64, complete_until: u64) -> Vec<(String, String)> {
    vec![
        (key::HOSTNAME.to_string(), host.to_string()),
        (key::INTERVAL_SIZE.to_string(), interval.to_string()),
        (key::INTERVAL_KEEP.to_string(), "7".to_string()),
        (key::COMPLETE_UNTIL.to_string(), complete_until.to_string()),
    ]
}

/// Every file in `dir` but the lock, with its content.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != LOCK_FILE {
            out.insert(name, fs::read(e.path()).expect("read"));
        }
    }
    out
}

/// Whether `name` is an interval file (not SPOOL-META, the list or a temporary file).
pub(crate) fn is_interval(name: &str) -> bool {
    crate::spool::names::IntervalFile::parse(name.as_bytes()).is_some()
}

/// A data operation on one file.
#[derive(Debug, Clone)]
enum DataOp<'a> {
    Write(u64, &'a [u8]),
    SetLen(u64),
}

/// A directory operation.
#[derive(Debug, Clone)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Unlink(String),
}

/// The trace up to a crash, as the model sees it.
struct Prefix<'a> {
    /// Each file's content before the workload, by inode.
    base: Vec<&'a [u8]>,
    /// Each inode's data operations, and how many of them a sync covered.
    data: Vec<(Vec<DataOp<'a>>, usize)>,
    /// The names before the workload.
    names: BTreeMap<String, usize>,
    dir: Vec<DirOp>,
    /// How many directory operations the directory's last fsync covered.
    dir_synced: usize,
}

fn prefix<'a>(r: &'a Recorded, ops: &'a [Op]) -> Prefix<'a> {
    let mut names = BTreeMap::new();
    let mut base = Vec::new();
    for (name, data) in &r.before {
        names.insert(name.clone(), base.len());
        base.push(data.as_slice());
    }
    let mut p = Prefix {
        data: vec![(Vec::new(), 0); base.len()],
        base,
        names: names.clone(),
        dir: Vec::new(),
        dir_synced: 0,
    };
    // The names as the running program sees them.
    let mut live = names;
    for op in ops {
        match op {
            Op::Create { name } => {
                let ino = p.base.len();
                p.base.push(&[]);
                p.data.push((Vec::new(), 0));
                live.insert(name.clone(), ino);
                p.dir.push(DirOp::Link(name.clone(), ino));
            }
            Op::Write { name, offset, data } => {
                let ino = live[name];
                p.data[ino].0.push(DataOp::Write(*offset, data));
            }
            Op::SetLen { name, len } => {
                let ino = live[name];
                p.data[ino].0.push(DataOp::SetLen(*len));
            }
            Op::Sync { name } => {
                let ino = live[name];
                p.data[ino].1 = p.data[ino].0.len();
            }
            Op::SyncDir => p.dir_synced = p.dir.len(),
            Op::SyncFs => {
                for (ops, synced) in &mut p.data {
                    *synced = ops.len();
                }
                p.dir_synced = p.dir.len();
            }
            Op::Rename { from, to } => {
                if let Some(ino) = live.remove(from) {
                    live.insert(to.clone(), ino);
                }
                p.dir.push(DirOp::Rename(from.clone(), to.clone()));
            }
            Op::Unlink { name } => {
                live.remove(name);
                p.dir.push(DirOp::Unlink(name.clone()));
            }
        }
    }
    p
}

/// The choices for one unsynced data operation.
fn choices(op: &DataOp<'_>) -> Vec<Choice> {
    match op {
        DataOp::SetLen(_) => vec![Choice::Absent, Choice::Present],
        DataOp::Write(offset, data) => {
            let mut c = vec![Choice::Absent, Choice::Present];
            let end = offset + data.len() as u64;
            let mut b = (offset / 512 + 1) * 512;
            while b < end {
                c.push(Choice::Cut(b - offset));
                b += 512;
            }
            c
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Absent,
    Present,
    /// The first this many bytes persisted.
    Cut(u64),
}

fn apply(content: &mut Vec<u8>, op: &DataOp<'_>, choice: Choice) {
    match (op, choice) {
        (_, Choice::Absent) => {}
        (DataOp::SetLen(len), _) => content.resize(*len as usize, 0),
        (DataOp::Write(offset, data), c) => {
            let keep = match c {
                Choice::Cut(n) => n as usize,
                _ => data.len(),
            };
            let start = *offset as usize;
            if content.len() < start + keep {
                content.resize(start + keep, 0);
            }
            content[start..start + keep].copy_from_slice(&data[..keep]);
        }
    }
}

/// One crash state: the directory ops that persisted and a choice per unsynced data op.
struct Shape {
    dir: usize,
    /// (inode, index of its op, the choices for it)
    open: Vec<(usize, usize, Vec<Choice>)>,
}

impl Prefix<'_> {
    /// The inodes named once `d` directory operations persisted, by name.
    fn names_after(&self, d: usize) -> BTreeMap<String, usize> {
        let mut names = self.names.clone();
        for op in &self.dir[..d] {
            match op {
                DirOp::Link(name, ino) => {
                    names.insert(name.clone(), *ino);
                }
                DirOp::Rename(from, to) => {
                    if let Some(ino) = names.remove(from) {
                        names.insert(to.clone(), ino);
                    }
                }
                DirOp::Unlink(name) => {
                    names.remove(name);
                }
            }
        }
        names
    }

    /// Every shape of state this prefix can crash into, with how many states each has.
    fn shapes(&self) -> Vec<(Shape, u128)> {
        let mut out = Vec::new();
        for d in self.dir_synced..=self.dir.len() {
            let named: BTreeSet<usize> = self.names_after(d).into_values().collect();
            let mut open = Vec::new();
            let mut n: u128 = 1;
            for &ino in &named {
                let (ops, synced) = &self.data[ino];
                for (i, op) in ops.iter().enumerate().skip(*synced) {
                    let c = choices(op);
                    n = n.saturating_mul(c.len() as u128);
                    open.push((ino, i, c));
                }
            }
            out.push((Shape { dir: d, open }, n));
        }
        out
    }

    /// The files whose unlink persisted once `d` directory operations did.
    fn unlinked(&self, d: usize) -> BTreeSet<String> {
        self.dir[..d]
            .iter()
            .filter_map(|op| match op {
                DirOp::Unlink(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The directory when everything persisted: what the program itself saw.
    fn everything(&self) -> BTreeMap<String, Vec<u8>> {
        self.state(
            &Shape {
                dir: self.dir.len(),
                open: Vec::new(),
            },
            0,
        )
    }

    /// The directory of state number `index` of `shape`.
    fn state(&self, shape: &Shape, mut index: u128) -> BTreeMap<String, Vec<u8>> {
        let mut picked: BTreeMap<(usize, usize), Choice> = BTreeMap::new();
        for (ino, i, c) in &shape.open {
            let k = c.len() as u128;
            picked.insert((*ino, *i), c[(index % k) as usize]);
            index /= k;
        }
        let mut out = BTreeMap::new();
        for (name, ino) in self.names_after(shape.dir) {
            let mut content = self.base[ino].to_vec();
            let (ops, synced) = &self.data[ino];
            for (i, op) in ops.iter().enumerate() {
                let c = if i < *synced {
                    Choice::Present
                } else {
                    picked.get(&(ino, i)).copied().unwrap_or(Choice::Present)
                };
                apply(&mut content, op, c);
            }
            out.insert(name, content);
        }
        out
    }
}

/// What one exploration found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Crash points (trace prefixes).
    pub(crate) prefixes: usize,
    /// States checked.
    pub(crate) states: u64,
    /// States the model allows in all (may exceed `states` when sampled).
    pub(crate) possible: u128,
    /// States where SPOOL-META's complete_until pointed past lost records (counted, for
    /// `--durability kernel`, where it is not promised).
    pub(crate) past_durable: u64,
    /// Invariant violations, each saying where.
    pub(crate) violations: Vec<String>,
}

/// A tiny deterministic generator (xorshift), so a sampled run replays from its seed.
struct Rng(u64);

impl Rng {
    /// A generator for `seed`; distinct seeds give distinct sequences.
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Explores the crash states of `r`: all of them when there are at most `budget`,
/// else `budget` drawn with `seed`, every state as likely as any other.
pub(crate) fn explore(r: &Recorded, budget: u64, seed: u64) -> Report {
    let mut report = Report::default();
    // The replay of the whole trace must give back what the writer left.
    let replayed = prefix(r, &r.ops).everything();
    if replayed != r.after {
        report.violations.push(format!(
            "{}: replaying the whole trace does not give the directory the writer left \
             (an operation not logged?): {:?} vs {:?}",
            r.name,
            replayed.keys().collect::<Vec<_>>(),
            r.after.keys().collect::<Vec<_>>()
        ));
        return report;
    }
    // Every (crash point, shape) with its number of states. A prefix is rebuilt when its
    // states are checked rather than kept, so long traces fit in memory.
    let mut flat: Vec<(usize, Shape, u128)> = Vec::new();
    for k in 0..=r.ops.len() {
        for (shape, n) in prefix(r, &r.ops[..k]).shapes() {
            flat.push((k, shape, n));
        }
    }
    let total: u128 = flat.iter().fold(0u128, |a, (_, _, n)| a.saturating_add(*n));
    report.prefixes = r.ops.len() + 1;
    report.possible = total;
    // (index into flat, state number), in crash-point order.
    let mut picks: Vec<(usize, u128)> = Vec::new();
    if total <= u128::from(budget) {
        for (at, (_, _, n)) in flat.iter().enumerate() {
            picks.extend((0..*n).map(|i| (at, i)));
        }
    } else {
        // `budget` states, every state as likely as any other.
        let mut rng = Rng::new(seed);
        let mut cumulative = Vec::with_capacity(flat.len());
        let mut sum: u128 = 0;
        for (_, _, n) in &flat {
            sum = sum.saturating_add(*n);
            cumulative.push(sum);
        }
        let mut wide = || u128::from(rng.next()) << 64 | u128::from(rng.next());
        for _ in 0..budget {
            let draw = wide() % sum;
            let at = cumulative.partition_point(|&c| c <= draw);
            picks.push((at, wide() % flat[at].2));
        }
        picks.sort_unstable();
    }
    let mut built: Option<(usize, Prefix<'_>)> = None;
    for (at, i) in picks {
        let (k, shape, _) = &flat[at];
        if built.as_ref().is_none_or(|(b, _)| b != k) {
            built = Some((*k, prefix(r, &r.ops[..*k])));
        }
        if let Some((_, p)) = &built {
            check(r, *k, p, shape, i, &mut report);
        }
    }
    report
}

/// A record a reader accepted: its service (from the file name), time and body.
type Seen = (String, u64, Vec<u8>);

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
fn check(r: &Recorded, k: usize, p: &Prefix<'_>, shape: &Shape, i: u128, report: &mut Report) {
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
    let node = match open_spool(dir.path(), "", r.interval, r.durability) {
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

/// The workloads of the bounded run: an interval boundary (new files), SPOOL-META and
/// the plugin list rewritten, an idle daemon's promise, a torn spool repaired at start,
/// cleanup and the size cap.
pub(crate) fn workloads(durability: Durability) -> Vec<Workload> {
    use Step::*;
    // A torn tail left by an earlier crash: a whole record, then half of one.
    let mut torn = Vec::new();
    crate::spool::record::write_sealed(990, &body("a", 990, 3), &mut torn);
    let whole = torn.len();
    crate::spool::record::write_sealed(995, &body("a", 995, 3), &mut torn);
    torn.truncate(whole + (torn.len() - whole) / 2);
    let mut all = vec![];
    if durability == Durability::Record {
        all.push(Workload {
            name: "group commit",
            interval: 10,
            durability,
            before: Vec::new(),
            // A round's samples synced together, one of them into a new interval file,
            // then the complete_until that covers them, through the group commit too; a
            // second and a third round likewise (the third's SPOOL-META renamed but never
            // synced: a power loss may keep the one before).
            steps: vec![
                List(&["a", "b"]),
                Batch(&[("a", 1001, 2), ("b", 1001, 2)]),
                GroupMeta(1005),
                Batch(&[("a", 1006, 2), ("b", 1011, 2)]),
                GroupMeta(1011),
                Batch(&[("a", 1016, 1)]),
                GroupMeta(1016),
            ],
        });
    }
    all.extend([
        Workload {
            name: "interval boundary",
            interval: 10,
            durability,
            before: Vec::new(),
            steps: vec![
                List(&["a", "b"]),
                Append("a", 1001, 2),
                Append("b", 1003, 2),
                Meta(1003),
                Append("a", 1006, 2),
                Append("a", 1011, 2),
                Meta(1011),
            ],
        },
        Workload {
            name: "idle promise",
            interval: 100,
            durability,
            before: Vec::new(),
            // Idle, the daemon promises complete_until up to its next due poll (1100).
            steps: vec![
                Append("a", 1001, 2),
                Meta(1001),
                Meta(1099),
                Append("a", 1100, 2),
                Meta(1100),
            ],
        },
        Workload {
            name: "torn spool at start",
            interval: 100,
            durability,
            before: vec![("munin-daemon.a.900.100".to_string(), torn)],
            steps: vec![Append("a", 1000, 3), Meta(1000), Append("a", 1005, 3)],
        },
        Workload {
            name: "cleanup",
            interval: 10,
            durability,
            before: Vec::new(),
            steps: vec![
                Append("a", 1001, 1),
                Append("a", 1011, 1),
                Meta(1011),
                Cleanup(1030, 10),
                Append("a", 1031, 1),
                Meta(1031),
            ],
        },
        Workload {
            name: "max-spool-size",
            interval: 10,
            durability,
            before: Vec::new(),
            // Records of about 700 bytes: writes that cross 512-byte boundaries.
            steps: vec![
                Append("big", 1001, 20),
                Append("big", 1011, 20),
                Meta(1011),
                Cap(1021, 1000),
                Append("big", 1021, 20),
                Meta(1021),
            ],
        },
    ]);
    all
}

/// A longer workload from `seed`: `steps` samples of three plugins, SPOOL-META after
/// each, cleanup and the size cap now and then (the long run, `scripts/crash-states.sh`).
pub(crate) fn random_workload(seed: u64, steps: usize, durability: Durability) -> Workload {
    let mut rng = Rng::new(seed);
    let mut t = 1000;
    let mut out = Vec::new();
    const PLUGINS: [&str; 3] = ["a", "b", "big"];
    for _ in 0..steps {
        t += 1 + rng.next() % 4;
        let p = PLUGINS[(rng.next() % 3) as usize];
        let fields = if p == "big" {
            20
        } else {
            1 + (rng.next() % 3) as usize
        };
        out.push(Step::Append(p, t, fields));
        match rng.next() % 8 {
            0 => out.push(Step::Cleanup(t, 20)),
            1 => out.push(Step::Cap(t, 2000)),
            2 => out.push(Step::List(&["a", "b", "big"])),
            _ => {}
        }
        out.push(Step::Meta(t));
    }
    Workload {
        name: "random",
        interval: 10,
        durability,
        before: Vec::new(),
        steps: out,
    }
}

#[cfg(test)]
mod tests;
