//! The workloads: what munin-asyncd's writer is made to do (samples appended, SPOOL-META
//! and the plugin list rewritten, cleanup, the size cap), recorded with every file
//! operation it performed ([`record`]), and the bounded and random sets of them.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use crate::spool::meta::key;
use crate::spool::trace::{Op, Trace};
use crate::spool::writer::{record_body, Durability, SpoolWriter};

use super::checks::accepted;
use super::exploration::Rng;
use super::model::listing;

/// The host name the workloads give SPOOL-META.
pub(crate) const HOST: &str = "crash.example";

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
pub(crate) struct Appended {
    /// The number of operations recorded when `append` returned.
    pub(crate) done: usize,
    /// The number of operations recorded when it began.
    pub(crate) began: usize,
    pub(crate) service: String,
    pub(crate) time: u64,
    pub(crate) body: Vec<u8>,
}

impl Appended {
    /// The interval file it went to.
    pub(crate) fn file(&self, interval: u64) -> String {
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
pub(crate) struct MetaWritten {
    pub(crate) began: usize,
    pub(crate) complete_until: u64,
}

/// A workload run once, with its trace: what the generator and the checker work from.
pub(crate) struct Recorded {
    pub(crate) name: &'static str,
    pub(crate) interval: u64,
    pub(crate) durability: Durability,
    pub(crate) before: Vec<(String, Vec<u8>)>,
    pub(crate) ops: Vec<Op>,
    pub(crate) appended: Vec<Appended>,
    pub(crate) metas: Vec<MetaWritten>,
    /// The latest time of the workload: the daemon's clock after it.
    pub(crate) end: u64,
    /// The directory the writer left, for the replay check.
    pub(crate) after: BTreeMap<String, Vec<u8>>,
}

/// A body of `fields` value lines for `service` at `time`, as munin-asyncd spools it.
pub(crate) fn body(service: &str, time: u64, fields: usize) -> Vec<u8> {
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
pub(crate) fn meta_pairs(host: &str, interval: u64, complete_until: u64) -> Vec<(String, String)> {
    vec![
        (key::HOSTNAME.to_string(), host.to_string()),
        (key::INTERVAL_SIZE.to_string(), interval.to_string()),
        (key::INTERVAL_KEEP.to_string(), "7".to_string()),
        (key::COMPLETE_UNTIL.to_string(), complete_until.to_string()),
    ]
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
