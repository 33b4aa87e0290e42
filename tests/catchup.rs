//! The catch-up window: a master that moves its cursor to the largest timestamp it
//! received, as Debian's munin-update does, gets every sample exactly once from us.
//! Perl's per-file limit loses samples on the same spool.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::*;

const DAY: u64 = 86_400;
const START: u64 = 1_795_000_000 - 1_795_000_000 % DAY + 1234;

/// (graph, time) → how many times it was received.
type Received = BTreeMap<(String, u64), u32>;

/// Plays Debian's master: spoolfetch from the cursor, keep the largest time seen, until a
/// reply brings nothing. Returns what arrived and the (oldest, newest) time of each reply.
fn play_master(run: impl Fn(&str) -> Output) -> (Received, Vec<(u64, u64)>) {
    let mut cursor = 0u64;
    let mut got = Received::new();
    let mut spans = Vec::new();
    for _ in 0..100 {
        let out = run(&format!("spoolfetch {cursor}\nquit\n"));
        assert!(out.status.success(), "{}", out.stderr());
        let mut graph = String::new();
        let (mut lo, mut hi) = (u64::MAX, 0);
        for line in after_greeting(&out.stdout()).lines() {
            if let Some(g) = line.strip_prefix("multigraph ") {
                graph = g.to_string();
            } else if let Some((_, v)) = line.split_once(".value ") {
                let t: u64 = v.split(':').next().unwrap().parse().unwrap();
                *got.entry((graph.clone(), t)).or_default() += 1;
                lo = lo.min(t);
                hi = hi.max(t);
            }
        }
        if hi == 0 {
            return (got, spans);
        }
        spans.push((lo, hi));
        cursor = hi;
    }
    panic!("the master never caught up");
}

/// Writes the spool and returns every (graph, time) it holds.
fn backlog(dir: &Path) -> Vec<(String, u64)> {
    let mut samples = Vec::new();
    let mut expected = Vec::new();
    for i in 0..(10 * DAY / 900) {
        let t = START + i * 900;
        let day = (t - START) / DAY;
        // "a" runs throughout; "b" has a week-long hole; "c" only starts on day 5.
        for (name, present) in [("a", true), ("b", !(2..9).contains(&day)), ("c", day >= 5)] {
            if present {
                samples.push(Sample {
                    time: t,
                    plugin: name,
                    lines: vec![format!("{name}.label {name}"), format!("{name}.value {i}")],
                });
                expected.push((name.to_string(), t));
            }
        }
    }
    classic_spool(dir, DAY, "catchup.example", &samples);
    expected
}

#[test]
fn every_sample_arrives_exactly_once_through_the_window() {
    let spool = tempdir();
    let expected = backlog(spool.path());
    // The first reply is cut by the window, and says so (a notice, shown by default).
    let first = ours(spool.path(), &["--spoolfetch"], "spoolfetch 0\nquit\n");
    assert!(
        first
            .stderr()
            .contains("notice: spoolfetch 0: a backlog, sent up to"),
        "{}",
        first.stderr()
    );
    let (got, spans) = play_master(|input| ours(spool.path(), &["--spoolfetch"], input));
    let missing: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} samples never sent, first {:?}",
        missing.len(),
        missing.first()
    );
    assert!(got.values().all(|&n| n == 1), "a sample was sent twice");
    assert_eq!(got.len(), expected.len());
    assert!(
        spans.len() >= 2,
        "a 10-day backlog takes more than one reply with a 6-day window"
    );
    for (lo, hi) in spans {
        assert!(
            hi - lo <= 6 * DAY,
            "a reply spans {} s, more than the window",
            hi - lo
        );
    }
}

#[test]
fn a_gap_longer_than_the_window_does_not_stall_the_master() {
    let spool = tempdir();
    let mut samples = Vec::new();
    for t in [START, START + 300, START + 9 * DAY, START + 9 * DAY + 300] {
        samples.push(Sample {
            time: t,
            plugin: "lonely",
            lines: vec![format!("x.value {t}")],
        });
    }
    classic_spool(spool.path(), 3600, "gap.example", &samples);
    let (got, spans) = play_master(|input| {
        ours(
            spool.path(),
            &["--spoolfetch", "--catchup-window", "86400"],
            input,
        )
    });
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(spans.len(), 2);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn perl_loses_samples_on_the_same_backlog() {
    // The reference's defect, pinned so that the comparison above means something.
    let spool = tempdir();
    let expected = backlog(spool.path());
    let (got, _) = play_master(|input| perls(spool.path(), &["--spoolfetch"], input));
    let lost = expected.iter().filter(|k| !got.contains_key(*k)).count();
    assert!(
        lost > 0,
        "Perl munin-async delivered everything; the comparison is moot"
    );
    eprintln!("Perl munin-async lost {lost} of {} samples", expected.len());
}
