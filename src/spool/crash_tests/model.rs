//! The persistence model (see the folder's documentation): a trace cut at a crash
//! ([`prefix`]), the choices each unsynced operation leaves, and the directory each
//! choice of them makes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::spool::trace::Op;
use crate::spool::LOCK_FILE;

use super::workloads::Recorded;

/// Every file in `dir` but the lock, with its content.
pub(crate) fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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
pub(crate) enum DataOp<'a> {
    Write(u64, &'a [u8]),
    SetLen(u64),
}

/// A directory operation.
#[derive(Debug, Clone)]
pub(crate) enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Unlink(String),
}

/// The trace up to a crash, as the model sees it.
pub(crate) struct Prefix<'a> {
    /// Each file's content before the workload, by inode.
    pub(crate) base: Vec<&'a [u8]>,
    /// Each inode's data operations, and how many of them a sync covered.
    pub(crate) data: Vec<(Vec<DataOp<'a>>, usize)>,
    /// The names before the workload.
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) dir: Vec<DirOp>,
    /// How many directory operations the directory's last fsync covered.
    pub(crate) dir_synced: usize,
}

pub(crate) fn prefix<'a>(r: &'a Recorded, ops: &'a [Op]) -> Prefix<'a> {
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
pub(crate) fn choices(op: &DataOp<'_>) -> Vec<Choice> {
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
pub(crate) enum Choice {
    Absent,
    Present,
    /// The first this many bytes persisted.
    Cut(u64),
}

pub(crate) fn apply(content: &mut Vec<u8>, op: &DataOp<'_>, choice: Choice) {
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
pub(crate) struct Shape {
    pub(crate) dir: usize,
    /// (inode, index of its op, the choices for it)
    pub(crate) open: Vec<(usize, usize, Vec<Choice>)>,
}

impl Prefix<'_> {
    /// The inodes named once `d` directory operations persisted, by name.
    pub(crate) fn names_after(&self, d: usize) -> BTreeMap<String, usize> {
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
    pub(crate) fn shapes(&self) -> Vec<(Shape, u128)> {
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
    pub(crate) fn unlinked(&self, d: usize) -> BTreeSet<String> {
        self.dir[..d]
            .iter()
            .filter_map(|op| match op {
                DirOp::Unlink(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The directory when everything persisted: what the program itself saw.
    pub(crate) fn everything(&self) -> BTreeMap<String, Vec<u8>> {
        self.state(
            &Shape {
                dir: self.dir.len(),
                open: Vec::new(),
            },
            0,
        )
    }

    /// The directory of state number `index` of `shape`.
    pub(crate) fn state(&self, shape: &Shape, mut index: u128) -> BTreeMap<String, Vec<u8>> {
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
