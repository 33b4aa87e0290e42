//! The crash-state exploration, bounded (the test command) or long
//! (`scripts/crash-states.sh` sets the environment below).
//!
//! - `CRASH_STATES_BUDGET`: states per workload when they cannot all be checked
//!   (default 3000);
//! - `CRASH_STATES_STEPS`: samples in the random workload (default 25);
//! - `CRASH_STATES_SEEDS`: how many random workloads, seeds 1, 2, … (default 1).

use super::*;
use crate::spool::trace::Op;
use crate::spool::writer::Durability;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn show(r: &Recorded, d: Durability, rep: &Report) {
    eprintln!(
        "crash states: {:<20} {:?}: {} ops, {} crash points, {} states checked of {} possible, \
         {} with complete_until past lost records, {} violations",
        r.name,
        d,
        r.ops.len(),
        rep.prefixes,
        rep.states,
        rep.possible,
        rep.past_durable,
        rep.violations.len()
    );
}

fn assert_clean(rep: &Report) {
    assert!(
        rep.violations.is_empty(),
        "{} violations, the first:\n{}",
        rep.violations.len(),
        rep.violations
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_crash_state_of_the_writers_workloads_keeps_the_invariants() {
    let budget = env("CRASH_STATES_BUDGET", 3000);
    let mut all = 0;
    for d in [Durability::Record, Durability::Kernel] {
        let mut workloads = workloads(d);
        for seed in 1..=env("CRASH_STATES_SEEDS", 1) {
            workloads.push(random_workload(
                seed,
                env("CRASH_STATES_STEPS", 25) as usize,
                d,
            ));
        }
        for w in &workloads {
            let r = record(w);
            // With --durability record the short workloads are explored whole.
            let exhaustive = d == Durability::Record && w.name != "random";
            let rep = explore(&r, if exhaustive { u64::MAX } else { budget }, 7);
            show(&r, d, &rep);
            assert_clean(&rep);
            if exhaustive {
                assert_eq!(
                    rep.states as u128, rep.possible,
                    "{}: not every state",
                    w.name
                );
            }
            assert!(rep.states > 0);
            all += rep.states;
        }
    }
    eprintln!("crash states: {all} in all");
}

#[test]
fn the_traces_cover_what_the_workloads_are_about() {
    let recorded: Vec<Recorded> = workloads(Durability::Record).iter().map(record).collect();
    let has = |name: &str, f: &dyn Fn(&Op) -> bool| {
        let r = recorded.iter().find(|r| r.name == name).unwrap();
        let kinds: Vec<String> = r
            .ops
            .iter()
            .map(|o| format!("{o:?}").chars().take(60).collect())
            .collect();
        assert!(r.ops.iter().any(f), "{name}: {kinds:?}");
    };
    // A new interval file, its directory entry synced.
    has(
        "interval boundary",
        &|o| matches!(o, Op::Create { name } if name == "munin-daemon.a.1010.10"),
    );
    has("interval boundary", &|o| matches!(o, Op::SyncDir));
    // SPOOL-META through a temporary file and a rename.
    has(
        "interval boundary",
        &|o| matches!(o, Op::Rename { to, .. } if to == "SPOOL-META"),
    );
    // The torn tail cut back at start.
    has("torn spool at start", &|o| matches!(o, Op::SetLen { .. }));
    has(
        "cleanup",
        &|o| matches!(o, Op::Unlink { name } if name == "munin-daemon.a.1000.10"),
    );
    has(
        "max-spool-size",
        &|o| matches!(o, Op::Unlink { name } if name == "munin-daemon.big.1000.10"),
    );
    // Records large enough to be cut at a 512-byte boundary.
    has(
        "max-spool-size",
        &|o| matches!(o, Op::Write { data, .. } if data.len() > 512),
    );
}

/// The trace with every interval file's sync taken out, as if the writer had lost its
/// per-record `fdatasync` but still returned from `append`.
fn without_record_syncs(mut r: Recorded) -> Recorded {
    let mut keep = Vec::new();
    // old index (number of ops before) → new index
    let mut map = vec![0usize; r.ops.len() + 1];
    for (i, op) in r.ops.iter().enumerate() {
        map[i] = keep.len();
        let record_sync = matches!(op, Op::Sync { name } if is_interval(name));
        if !record_sync {
            keep.push(op.clone());
        }
    }
    map[r.ops.len()] = keep.len();
    r.ops = keep;
    for a in &mut r.appended {
        a.done = map[a.done];
        a.began = map[a.began];
    }
    for m in &mut r.metas {
        m.began = map[m.began];
    }
    r
}

/// The workload of that name, with `--durability record`.
fn named(name: &str) -> Workload {
    workloads(Durability::Record)
        .into_iter()
        .find(|w| w.name == name)
        .unwrap()
}

#[test]
fn a_writer_without_its_per_record_sync_is_caught() {
    let w = &named("interval boundary");
    let r = without_record_syncs(record(w));
    let rep = explore(&r, u64::MAX, 7);
    show(&r, Durability::Record, &rep);
    assert!(
        rep.violations.iter().any(|v| v.contains("is lost")),
        "{:?}",
        rep.violations.first()
    );
    assert!(rep.violations.iter().any(|v| v.contains("points past")));
}

#[test]
fn a_group_commit_without_its_sync_is_caught() {
    let mut r = record(&named("group commit"));
    assert!(r.ops.iter().any(|o| matches!(o, Op::SyncFs)));
    // Each syncfs made a directory fsync only: the records' data is not synced, yet
    // the samples count (and the indices in the trace stay as they were).
    for op in &mut r.ops {
        if matches!(op, Op::SyncFs) {
            *op = Op::SyncDir;
        }
    }
    let rep = explore(&r, u64::MAX, 7);
    assert!(
        rep.violations.iter().any(|v| v.contains("is lost")),
        "{:?}",
        rep.violations.first()
    );
}

#[test]
fn an_altered_record_is_caught() {
    let w = &named("interval boundary");
    let mut r = record(w);
    // One value digit of the first record changed on its way to the disk.
    let op = r
        .ops
        .iter_mut()
        .find(|o| matches!(o, Op::Write { name, .. } if is_interval(name)))
        .unwrap();
    let Op::Write { data, .. } = op else {
        unreachable!()
    };
    let at = data.windows(8).position(|w| w == b".value 7").unwrap() + 7;
    data[at] = b'8';
    // The replay no longer matches what the writer left: set it to the altered replay,
    // so the exploration goes on to the states.
    r.after = prefix(&r, &r.ops).everything();
    let rep = explore(&r, u64::MAX, 7);
    assert!(
        rep.violations.iter().any(|v| v.contains("is lost")),
        "{:?}",
        rep.violations.first()
    );
}

#[test]
fn an_operation_the_writer_did_not_log_is_found_by_the_replay() {
    let w = &named("interval boundary");
    let mut r = record(w);
    // Drop one logged write, as if the writer had made it without logging it.
    let i = r
        .ops
        .iter()
        .position(|o| matches!(o, Op::Write { name, .. } if is_interval(name)))
        .unwrap();
    r.ops.remove(i);
    let rep = explore(&r, u64::MAX, 7);
    assert!(
        rep.violations
            .first()
            .is_some_and(|v| v.contains("replaying the whole trace")),
        "{:?}",
        rep.violations.first()
    );
}
