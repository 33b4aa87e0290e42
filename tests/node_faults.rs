//! munin-node going away and misbehaving as a whole: down for over a minute then back,
//! and a node that greets and hangs up. munin-asyncd keeps running and recovers by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::*;

/// The times each plugin has in the spool (all of it, whatever complete_until says).
fn times(spool: &std::path::Path) -> BTreeMap<String, Vec<u64>> {
    let out = ours(
        spool,
        &["--spoolfetch", "--catchup-window", "0"],
        "spoolfetch 0\n",
    );
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (g, t) in pairs(&out.stdout()) {
        m.entry(g).or_default().push(t);
    }
    m
}

/// Waits until every plugin has a sample at or after `t`.
fn wait_for_samples(spool: &std::path::Path, plugins: &[&str], t: u64, log: &std::path::Path) {
    eventually(
        Duration::from_secs(15),
        || {
            format!(
                "no samples after {t}: {:?}\n{}",
                times(spool),
                fs::read_to_string(log).unwrap_or_default()
            )
        },
        || {
            let m = times(spool);
            plugins
                .iter()
                .all(|p| m.get(*p).is_some_and(|ts| ts.iter().any(|&x| x >= t)))
        },
    );
}

/// A plugin polled every five seconds.
fn five(name: &str) -> String {
    format!(
        "#!/bin/sh\nif [ \"$1\" = config ]; then\n  printf 'graph_title {name}\\nupdate_rate 5\\nv.label v\\n'\n  exit 0\nfi\necho \"v.value 1\"\n"
    )
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn munin_node_down_longer_than_the_backoff_cap_then_back_is_recovered_without_help() {
    let scripts = [
        ("a".to_string(), one_second_plugin("a", "0")),
        ("b".to_string(), one_second_plugin("b", "0.2")),
    ];
    let refs = plugin_refs(&scripts);
    let port = free_port();
    let node = PrivateNode::start_on(port, &refs);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // The backoff cap (60 s by default) set to 2 s, so the outage outlasts it in 8 s.
    let mut d = start_daemon(
        &node.addr(),
        &spool,
        &log,
        &["--connections", "2", "--max-backoff", "2"],
    );
    wait_for_samples(&spool, &["a", "b"], now() + 2, &log);
    drop(node);
    let down = now();
    // Longer than the longest backoff, several times over.
    thread::sleep(Duration::from_secs(8));
    assert!(d.0.try_wait().unwrap().is_none(), "munin-asyncd exited");
    let node = PrivateNode::start_on(port, &refs);
    let back = now();
    wait_for_samples(&spool, &["a", "b"], back, &log);
    let recovered = now() - back;
    // Then it is on its 1-second slots again.
    let since_back = |p: &str| {
        times(&spool)
            .get(p)
            .map_or(0, |t| t.iter().filter(|&&t| t >= back).count())
    };
    eventually(
        Duration::from_secs(20),
        || fs::read_to_string(&log).unwrap_or_default(),
        || since_back("a") >= 5 && since_back("b") >= 5,
    );
    stop(d);
    drop(node);
    let log = fs::read_to_string(&log).unwrap();
    let m = times(&spool);
    for p in ["a", "b"] {
        let after: Vec<u64> = m[p].iter().copied().filter(|&t| t >= back).collect();
        assert!(
            after.windows(2).all(|w| w[1] - w[0] == 1),
            "{p}: missed slots after recovery: {after:?}"
        );
        assert!(after.len() >= 4, "{p}: {after:?}");
        // One line when it failed, one when it answered again: not one a second.
        let failed = log
            .lines()
            .filter(|l| l.contains(&format!("plugin {p}:")))
            .count();
        assert_eq!(failed, 1, "{p}: logged more than once while down\n{log}");
        assert_eq!(
            log.matches(&format!("plugin {p} answers again")).count(),
            1,
            "{log}"
        );
        assert!(
            m[p].iter().all(|&t| t <= down + 1 || t >= back),
            "{p}: a sample while munin-node was down"
        );
    }
    // One notice (shown by default) for munin-node as a whole, with how long it was gone.
    assert_eq!(
        log.matches("notice: munin-node at").count(),
        2,
        "a start and a recovery:\n{log}"
    );
    assert!(log.contains("answers again after"), "{log}");
    eprintln!("munin-node down 8 s (backoff cap 2 s); both plugins spooling again {recovered} s after it came back");
    assert!(recovered <= 5, "took {recovered} s to recover");
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_munin_node_restarted_between_two_slots_costs_no_sample() {
    // munin-asyncd keeps connections idle between polls; a restart of munin-node (an
    // upgrade, a new plugin) closes them under it, as its global_timeout does after 15
    // minutes. The next poll must still get its sample.
    let scripts = [("a".to_string(), five("a")), ("b".to_string(), five("b"))];
    let refs = plugin_refs(&scripts);
    let port = free_port();
    let node = PrivateNode::start_on(port, &refs);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(&node.addr(), &spool, &log, &["--connections", "2"]);
    // Just after a slot's samples: the restart falls between two slots. The slot after
    // now, strictly: the poll at the start is off the slots, and may fall on the second
    // `now` reads (then `div_ceil` would take it for a slot).
    let first = (now() / 5 + 1) * 5;
    wait_for_samples(&spool, &["a", "b"], first, &log);
    let t0 = std::time::Instant::now();
    drop(node);
    let node = PrivateNode::start_on(port, &refs);
    let restart = t0.elapsed();
    let slot = times(&spool)["a"].iter().copied().max().unwrap();
    assert!(
        restart < Duration::from_secs(4) && now() < slot + 5,
        "munin-node took {restart:?} to restart: past the next slot"
    );
    wait_for_samples(&spool, &["a", "b"], slot + 10, &log);
    stop(d);
    drop(node);
    let log = fs::read_to_string(&log).unwrap();
    let m = times(&spool);
    for p in ["a", "b"] {
        assert!(
            m[p].contains(&(slot + 5)) && m[p].contains(&(slot + 10)),
            "{p}: a slot missed after munin-node's restart: {:?}\n{log}",
            m[p]
        );
    }
    assert!(!log.contains("closed the connection"), "{log}");
    eprintln!(
        "munin-node restarted in {restart:?} between slots {slot} and {}: no sample lost",
        slot + 5
    );
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_munin_node_with_a_short_global_timeout_costs_no_sample() {
    // munin-node ends each session after its global_timeout, here 12 s, and runs no
    // plugin in a session's last 5 s. The connections the daemon keeps meet that at their
    // third poll (10 s old); the poll is asked again on a new connection, and from then
    // on connections are used for half that age at most: every later poll is on time.
    let scripts = [("a".to_string(), five("a")), ("b".to_string(), five("b"))];
    let refs = plugin_refs(&scripts);
    let node = PrivateNode::start_setup(
        free_port(),
        &NodeSetup {
            plugins: &refs,
            plugin_conf: Some(&[]),
            global_timeout: Some(12),
            ..NodeSetup::default()
        },
    );
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(&node.addr(), &spool, &log, &["--connections", "2"]);
    // The slot after now, strictly (the poll at the start is off the slots).
    let first = (now() / 5 + 1) * 5;
    let last = first + 40;
    wait_for_samples(&spool, &["a", "b"], first, &log);
    eventually(
        Duration::from_secs(60),
        || format!("{:?}", times(&spool)),
        || now() > last + 2,
    );
    wait_for_samples(&spool, &["a", "b"], last, &log);
    stop(d);
    let log = fs::read_to_string(&log).unwrap();
    let m = times(&spool);
    let learnt = log.matches("ended the session of a connection").count();
    assert!((1..=2).contains(&learnt), "{learnt} times learnt:\n{log}");
    // Every slot has its sample; a slot's samples are on time, but for the one round
    // whose polls met the end of a session and were asked again (stamped later).
    let mut late_slots = BTreeSet::new();
    for p in ["a", "b"] {
        for slot in (first..=last).step_by(5) {
            let got: Vec<u64> = m[p]
                .iter()
                .copied()
                .filter(|t| (slot..slot + 5).contains(t))
                .collect();
            assert_eq!(got.len(), 1, "{p}: slot {slot}: {:?}\n{log}", m[p]);
            if got[0] != slot {
                late_slots.insert(slot);
            }
        }
    }
    assert!(
        late_slots.len() <= 1,
        "late at {late_slots:?}: {m:?}\n{log}"
    );
    eprintln!("global_timeout 12 s: learnt {learnt} time(s), late slots {late_slots:?}\n{log}");
}

#[test]
fn a_node_that_greets_and_hangs_up_is_retried_until_it_behaves() {
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let port = fake_node(move |line| {
        let send = |x: &[u8]| vec![Act::Send(x.to_vec())];
        match line {
            "" if b.load(Ordering::SeqCst) => {
                vec![
                    Act::Send(b"# munin node at fake.example\n".to_vec()),
                    Act::Close,
                ]
            }
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"ok\n"),
            "config ok" => send(b"graph_title Ok\nupdate_rate 1\nv.label v\n.\n"),
            "fetch ok" => send(b"v.value 1\n.\n"),
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let mut d = start_daemon(&format!("127.0.0.1:{port}"), &spool, &log, &[]);
    thread::sleep(Duration::from_secs(5));
    assert!(d.0.try_wait().unwrap().is_none(), "munin-asyncd exited");
    broken.store(false, Ordering::SeqCst);
    let fixed = now();
    // The list is retried with backoff (1, 2, 4 s … by now at most 8 s apart).
    eventually(
        Duration::from_secs(20),
        || fs::read_to_string(&log).unwrap_or_default(),
        || times(&spool).get("ok").is_some_and(|t| t.len() >= 3),
    );
    stop(d);
    let log = fs::read_to_string(&log).unwrap();
    // One line for the failure (the backoff's retries are not logged), one when it is up.
    let errors = log.lines().filter(|l| l.contains("error")).count();
    assert_eq!(errors, 1, "{log}");
    assert_eq!(log.matches("is up").count(), 1, "{log}");
    assert!(times(&spool)["ok"].iter().all(|&t| t >= fixed));
}

/// A restart while munin-node is down keeps the host name the spool knows: munin-async
/// must not greet the master as `munin node at unknown` until munin-node answers.
#[test]
fn a_restart_with_munin_node_down_keeps_the_host_name() {
    let port = fake_node(|line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"p\n"),
            "config p" => send(b"graph_title P\nv.label v\n.\n"),
            "fetch p" => send(b"v.value 1\n.\n"),
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let meta = || fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default();
    let d = start_daemon(&format!("127.0.0.1:{port}"), &spool, &log, &[]);
    eventually(
        Duration::from_secs(10),
        || "no sample".to_string(),
        || meta().contains("last-timestamp.p:"),
    );
    stop(d);
    assert!(meta().contains("hostname:fake.example\n"), "{}", meta());
    // Each write replaces the file (a rename): a new inode.
    let written = || {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(spool.join("SPOOL-META")).map_or(0, |m| m.ino())
    };
    let stopped = written();

    // Again, with nothing listening where munin-node was.
    let d = start_daemon(&format!("127.0.0.1:{}", free_port()), &spool, &log, &[]);
    eventually(
        Duration::from_secs(10),
        || "no retry logged".to_string(),
        || {
            fs::read_to_string(&log)
                .unwrap()
                .contains("retrying until it answers")
        },
    );
    // The restarted daemon has written SPOOL-META (the host name is what it writes).
    eventually(Duration::from_secs(5), meta, || written() != stopped);
    stop(d);
    assert!(meta().contains("hostname:fake.example\n"), "{}", meta());
    let greeting = ours(&spool, &["--spoolfetch"], "quit\n").stdout();
    assert_eq!(greeting, "# munin node at fake.example\n");
}

/// The soft limit on open descriptors is raised to the hard one at start (systemd's
/// default soft limit, 1024, is short of a thousand-node site's connections), and a
/// limit short of what the nodes may need is logged.
#[test]
fn the_descriptor_limit_is_raised_and_a_short_one_is_logged() {
    let work = tempdir();
    let log = work.path().join("asyncd.log");
    let spool = work.path().join("spool");
    // munin-node is not there: the daemon waits for it, which is all this needs.
    let addr = format!("127.0.0.1:{}", free_port());
    let script = "ulimit -Sn 50 && ulimit -Hn 200 && exec \"$0\" \"$@\"";
    let mut d = Running(
        std::process::Command::new("sh")
            .args(["-c", script])
            .arg(our_asyncd())
            .args(["--host", &addr, "--spooldir"])
            .arg(&spool)
            .args(["--screen", "--connections", "60"])
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let limits = format!("/proc/{}/limits", d.0.id());
    let soft_hard = || {
        let text = fs::read_to_string(&limits).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_default()
            .to_string();
        let n: Vec<String> = line
            .split_whitespace()
            .skip(3)
            .take(2)
            .map(String::from)
            .collect();
        n
    };
    eventually(
        Duration::from_secs(5),
        || {
            format!(
                "limits {:?}; log: {}",
                soft_hard(),
                fs::read_to_string(&log).unwrap_or_default()
            )
        },
        || {
            soft_hard() == ["200", "200"]
                && fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("open descriptors")
        },
    );
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("may need 306 open descriptors, the limit is 200"),
        "{said}"
    );
    stop_within(&mut d, Duration::from_secs(2), "munin-asyncd did not stop");
}
