//! The catch-up window: a master that moves its cursor to the largest timestamp it
//! received, as Debian's munin-update does, gets every sample exactly once from us.
//! Perl's per-file limit loses samples on the same spool.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

/// The (oldest, newest) time of the values in a spoolfetch reply.
fn span_of(reply: &str) -> (u64, u64) {
    let times = reply
        .lines()
        .filter_map(|l| l.split_once(".value "))
        .filter_map(|(_, v)| v.split(':').next()?.parse::<u64>().ok());
    times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

#[test]
fn a_master_asking_again_from_the_same_cursor_gets_half_the_span() {
    let spool = tempdir();
    backlog(spool.path());
    // As munin-update asks: `cap` first.
    let master = |cursor: u64| {
        ours(
            spool.path(),
            &["--spoolfetch"],
            format!("cap multigraph dirtyconfig\nspoolfetch {cursor}\nquit\n"),
        )
    };
    let first = master(0);
    let (lo, hi) = span_of(&first.stdout());
    assert!(hi - lo <= 6 * DAY && hi - lo > 5 * DAY, "{lo} {hi}");
    // Not taken (asked again from 0): half the window, said in a notice.
    let again = master(0);
    let (lo2, hi2) = span_of(&again.stdout());
    assert_eq!(lo2, lo);
    assert!(hi2 - lo2 <= 3 * DAY && hi2 - lo2 > 2 * DAY, "{lo2} {hi2}");
    assert!(
        again.stderr().contains("so it did not take it"),
        "{}",
        again.stderr()
    );
    // A session that announces nothing (a look by hand) gets the configured window and
    // changes nothing of the master's record.
    let look = ours(spool.path(), &["--spoolfetch"], "spoolfetch 0\nquit\n");
    assert_eq!(span_of(&look.stdout()), (lo, hi));
    // Taken (asked from where it ended): grows, but not past the first reply's end.
    let taken = master(hi2);
    let (lo3, hi3) = span_of(&taken.stdout());
    assert!(lo3 > hi2 && hi3 <= hi, "{lo3} {hi3} after {hi2}, {hi}");
    assert!(spool.path().join("munin-async.pace").exists());
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

/// `../shared/tools/gen-spool.py`, beside the checkout.
const GEN_SPOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tools/gen-spool.py");

/// A backlog of `days` of 60 plugins (6 fields each, every 5 minutes, every fifth a
/// multigraph plugin) in the classic spool format, ending at `end`, owned by munin.
fn big_backlog(dir: &Path, days: u64, end: u64) {
    let out = run(
        Command::new("python3").args([
            GEN_SPOOL,
            dir.to_str().unwrap(),
            "--plugins",
            "60",
            "--days",
            &days.to_string(),
            "--end",
            &end.to_string(),
        ]),
        b"",
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "gen-spool.py: {}", out.stderr());
    chown_all("munin", dir);
}

fn chown_all(user: &str, dir: &Path) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A master (its directories in `dir`) whose one node, `e2e;node1`, is `spool` served by
/// `program` over `cmd://`, with `timeout_fetch_one_node` `timeout`: one munin-update run
/// in its forking mode, and how long it took.
fn forking_run(dir: &Path, program: &str, args: &str, timeout: u64) -> Duration {
    if !dir.join("db").exists() {
        master_dirs(dir);
    }
    let start = std::time::Instant::now();
    let out = munin_update_forking_in(
        dir,
        &format!("timeout_fetch_one_node {timeout}"),
        &format!("[e2e;node1]\n    address cmd://{program} {args}\n"),
    );
    // A worker that timed out is logged, not an exit status.
    assert!(out.status.success(), "munin-update: {}", out.stderr());
    start.elapsed()
}

/// RRD file name → its `rrdtool dump`, for a master's node.
fn dumps(dir: &Path) -> BTreeMap<String, String> {
    let db = dir.join("db/e2e");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&db).into_iter().flatten() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".rrd") {
            out.insert(name, rrdtool(&["dump", path.to_str().unwrap()]));
        }
    }
    out
}

/// What the master's log says rrdtool refused.
fn refused(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log/munin-update.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("illegal attempt") || l.contains("Error updating"))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_backlog_the_master_cannot_take_in_one_run_is_taken_in_several_and_nothing_is_lost() {
    require(MUNIN_UPDATE, "munin");
    require("/usr/bin/rrdtool", "rrdtool");
    require("/usr/bin/python3", "python3");
    let work = tempdir();
    let end = now() - now() % 300;
    let days = 10;
    let bin = work.path().join("munin-async");
    std::fs::copy(our_async(), &bin).unwrap();
    let ours = bin.to_str().unwrap();

    // The reference: every sample in one run, no timeout that matters.
    let (spool, reference) = (work.path().join("spool-ref"), work.path().join("reference"));
    big_backlog(&spool, days, end);
    std::fs::create_dir(&reference).unwrap();
    let args = format!("--spooldir {} --spoolfetch", spool.display());
    let whole = forking_run(
        &reference,
        ours,
        &format!("{args} --catchup-window 0"),
        3600,
    );
    let truth = dumps(&reference);
    assert!(truth.len() > 300, "{} RRDs", truth.len());
    assert!(refused(&reference).is_empty());

    // munin-update's nested timeouts leave a node's reads `timeout - 5` s; the worker is
    // killed at `timeout`. Well under the whole catch-up, so that the configured window
    // (6 of the 10 days) cannot be taken in one run either.
    let timeout = (whole.as_secs() * 2 / 5).max(8);
    let (spool, timed) = (work.path().join("spool"), work.path().join("timed"));
    big_backlog(&spool, days, end);
    std::fs::create_dir(&timed).unwrap();
    let args = format!("--spooldir {} --spoolfetch", spool.display());
    let mut spans = Vec::new();
    let mut runs = 0;
    let cursor = |spool: &Path| {
        std::fs::read_to_string(spool.join("munin-async.cursor"))
            .ok()
            .and_then(|c| c.trim().parse::<u64>().ok())
    };
    // Until a reply reaches the end, and once more: the last reply taken or not, the run
    // after it shows (the master asks again from where it stands).
    let mut at_end = 0;
    while at_end < 2 {
        assert!(runs < 25, "not caught up in {runs} runs: spans {spans:?}");
        forking_run(&timed, ours, &args, timeout);
        runs += 1;
        let pace = std::fs::read_to_string(spool.join("munin-async.pace")).unwrap_or_default();
        spans.push(pace.lines().last().unwrap_or("").to_string());
        if cursor(&spool) == Some(end) {
            at_end += 1;
        }
    }
    let got = dumps(&timed);
    let differ: Vec<&String> = truth
        .keys()
        .filter(|name| got.get(*name) != truth.get(*name))
        .collect();
    let log = std::fs::read_to_string(timed.join("log/munin-update.log")).unwrap_or_default();
    let killed = log.matches("timed out").count();
    eprintln!(
        "backlog: {days} days of 60 plugins, whole in one run {} ms; timeout_fetch_one_node \
         {timeout} s: {runs} runs, {killed} timeout lines in munin-update's log; replies \
         (after until span ceiling stops state): {spans:?}",
        whole.as_millis()
    );
    assert!(
        differ.is_empty(),
        "{} of {} RRDs differ from the master without timeout, e.g. {:?}",
        differ.len(),
        truth.len(),
        differ.first()
    );
    assert_eq!(got.len(), truth.len());
    assert!(
        refused(&timed).is_empty(),
        "rrdtool refused: {:?}",
        refused(&timed)
    );
    assert!(
        killed > 0,
        "no run timed out: the test proves nothing\n{log}"
    );

    // Perl's munin-async on the same backlog, same timeout: the same reply every run,
    // never taken.
    let (spool, perl) = (work.path().join("spool-perl"), work.path().join("perl"));
    big_backlog(&spool, days, end);
    std::fs::create_dir(&perl).unwrap();
    let args = format!("--spooldir {} --spoolfetch", spool.display());
    for _ in 0..3 {
        forking_run(&perl, PERL_ASYNC, &args, timeout);
    }
    let stuck = dumps(&perl);
    let moved = stuck
        .iter()
        .filter(|(_, dump)| dump.matches("<v>").count() > dump.matches("<v>NaN</v>").count())
        .count();
    eprintln!(
        "backlog: Perl's munin-async, 3 runs: {} RRDs, {moved} with a value",
        stuck.len()
    );
    assert_eq!(moved, 0, "Perl's munin-async got a sample through");
}
