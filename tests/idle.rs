//! munin-asyncd between samples: nothing written, nothing woken; and what a reload and a
//! stop do to the `complete_until` an idle daemon promises.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::*;

/// A fake munin-node with plugins `a` and `b` at `rate`, and `c` once `more` is set.
fn node(rate: u64, more: Arc<AtomicBool>) -> u16 {
    fake_node(move |line| {
        let send = |x: String| vec![Act::Send(x.into_bytes())];
        match line {
            "nodes" => send("fake.example\n.\n".into()),
            l if l.starts_with("list") => send(if more.load(Ordering::SeqCst) {
                "a b c\n".into()
            } else {
                "a b\n".into()
            }),
            l if l.starts_with("config ") => send(format!(
                "graph_title {}\nupdate_rate {rate}\nv.label v\n.\n",
                &l[7..]
            )),
            l if l.starts_with("fetch ") => send("v.value 1\n.\n".into()),
            other => fake_basics(other),
        }
    })
}

/// Write syscalls (`syscw` of /proc/PID/io) and voluntary context switches of every
/// thread of `pid`.
fn activity(pid: u32) -> (u64, u64) {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let syscw = io
        .lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut switches = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap());
    }
    (syscw, switches)
}

/// munin-asyncd on a node of two daily plugins, `--update-rate 86400` (a daily health
/// sample too), once both are spooled: nothing is due for hours. Its spool and log are
/// `spool` and `asyncd.log` in the directory returned.
fn daily_daemon() -> (TempDir, Running) {
    let port = node(86_400, Arc::new(AtomicBool::new(false)));
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &["--update-rate", "86400"],
    );
    wait_spooled(
        &[(&spool, "a"), (&spool, "b")],
        &log,
        Duration::from_secs(20),
    );
    (work, d)
}

fn complete_until(spool: &Path) -> u64 {
    let meta = fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default();
    meta.lines()
        .find_map(|l| l.strip_prefix("complete_until:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The second tier: 30 s of the real system's counters (writes, context switches) are its
/// measure, so plain `cargo test` does not spend them.
#[test]
#[ignore = "watches a real daemon for 30 s: the README's test command runs it"]
fn an_idle_daemon_writes_nothing_and_sleeps_for_30_seconds() {
    // Daily plugins and a daily health sample: once the first round is in, nothing is due
    // for hours (unless the test runs across midnight UTC, which it checks).
    let (work, d) = daily_daemon();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // The last SPOOL-META of the round (at most a second after the one before).
    eventually(
        Duration::from_secs(10),
        || fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default(),
        || complete_until(&spool) > now() + 60,
    );
    let promised = complete_until(&spool);
    let meta = fs::read(spool.join("SPOOL-META")).unwrap();
    let log_before = fs::read_to_string(&log).unwrap();
    let start = now();
    let (w0, s0) = activity(d.0.id());
    thread::sleep(Duration::from_secs(30));
    let (w1, s1) = activity(d.0.id());
    let end = now();
    if start / 86_400 != end / 86_400 {
        eprintln!("the 30 s crossed midnight UTC: daily plugins were due; not judged");
        stop(d);
        return;
    }
    eprintln!(
        "idle 30 s: {} writes, {} context switches; complete_until promised {} s ahead",
        w1 - w0,
        s1 - s0,
        promised - start
    );
    assert_eq!(w1 - w0, 0, "munin-asyncd wrote while idle");
    assert_eq!(fs::read(spool.join("SPOOL-META")).unwrap(), meta);
    assert_eq!(fs::read_to_string(&log).unwrap(), log_before);
    // A sleeping process: not woken by a timer (a few switches for the scheduler's
    // sake; ten a second was the old loop).
    assert!(s1 - s0 <= 10, "{} wakeups in 30 s", s1 - s0);
    // It promised up to the first thing due: the daily polls at midnight UTC, or the
    // hourly reading of the plugin list.
    let midnight = (start / 86_400 + 1) * 86_400;
    assert!(
        promised + 1 >= midnight.min(start + 3500),
        "complete_until {promised} at {start}"
    );

    // A stop takes the promise back: nothing is newer than the stop.
    stop(d);
    let after = complete_until(&spool);
    assert!(
        after <= now() && after >= end,
        "complete_until {after} after the stop"
    );
}

#[test]
fn a_plugin_added_and_a_reload_while_idle_is_spooled_after_the_promise() {
    let more = Arc::new(AtomicBool::new(false));
    let port = node(3, more.clone());
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(&format!("127.0.0.1:{port}"), &spool, &log, &[]);
    wait_spooled(
        &[(&spool, "a"), (&spool, "b")],
        &log,
        Duration::from_secs(20),
    );
    more.store(true, Ordering::SeqCst);
    let promised = complete_until(&spool);
    unsafe { libc::kill(d.0.id() as i32, libc::SIGHUP) };
    wait_spooled(&[(&spool, "c")], &log, Duration::from_secs(20));
    stop(d);
    let log = fs::read_to_string(&log).unwrap();
    assert!(log.contains("SIGHUP"), "{log}");
    // Its first sample is newer than anything promised before it went out.
    let reply = ours(
        &spool,
        &["--spoolfetch", "--catchup-window", "0"],
        "spoolfetch 0\n",
    )
    .stdout();
    let first_c = pairs(&reply)
        .into_iter()
        .filter(|(g, _)| g == "c")
        .map(|(_, t)| t)
        .min()
        .unwrap_or_else(|| panic!("no sample of c:\n{reply}"));
    assert!(first_c > promised, "c at {first_c}, promised {promised}");
}

#[test]
fn a_stop_signal_ends_an_idle_daemon_at_once() {
    let (work, mut d) = daily_daemon();
    // Idle: its first round is in, and it promised past the next minute.
    let spool = work.path().join("spool");
    eventually(
        Duration::from_secs(10),
        || fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default(),
        || complete_until(&spool) > now() + 60,
    );
    stop_within(
        &mut d,
        Duration::from_millis(500),
        "an idle munin-asyncd took over half a second to stop",
    );
}
