//! Soak: munin-asyncd on plugins at 1 to 5 second rates while a reader spoolfetches every
//! few seconds and moves its cursor as Debian's master does (the largest timestamp seen).
//! Each plugin counts its own runs, so every sample taken is known: the reader must get
//! each exactly once. 40 seconds in the test command; `scripts/soak.sh SECONDS` for long
//! runs, which also take munin-node away in the middle (a quarter of the run, at most 150 s).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A plugin at `rate` seconds whose value is the number of times it was fetched.
fn counting_plugin(name: &str, rate: u64, state: &Path) -> String {
    format!(
        "#!/bin/sh\nS={}/{name}\nif [ \"$1\" = config ]; then\n  printf 'graph_title {name}\\nupdate_rate {rate}\\nv.label v\\n'\n  exit 0\nfi\n\
         n=$(( $(cat $S 2>/dev/null || echo 0) + 1 ))\necho $n > $S.new && mv $S.new $S\necho \"v.value $n\"\n",
        state.display()
    )
}

/// (graph, time, value) of every value line in a spoolfetch reply.
fn samples(reply: &str) -> Vec<(String, u64, u64)> {
    let mut graph = String::new();
    let mut out = Vec::new();
    for line in reply.lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            graph = g.to_string();
        } else if let Some(v) = line.strip_prefix("v.value ") {
            let (t, n) = v.split_once(':').expect("a value without its time");
            out.push((graph.clone(), t.parse().unwrap(), n.parse().unwrap()));
        }
    }
    out
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn soak_every_sample_taken_reaches_a_master_like_reader_exactly_once() {
    let seconds: u64 = std::env::var("MUNIN_ASYNC_SOAK_SECONDS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("MUNIN_ASYNC_SOAK_SECONDS: a number of seconds")
        })
        .unwrap_or(40);
    let work = tempdir();
    let state = work.path().join("state");
    fs::create_dir(&state).unwrap();
    let plugins: Vec<(String, String)> = [("r1", 1), ("r1b", 1), ("r2", 2), ("r3", 3), ("r5", 5)]
        .iter()
        .map(|(n, r)| (n.to_string(), counting_plugin(n, *r, &state)))
        .collect();
    let refs = plugin_refs(&plugins);
    let conf = [("root", "[*]\nuser root\n")];
    let port = free_port();
    let mut node = Some(PrivateNode::start_with(port, &refs, &conf));
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &["--connections", "3", "--durability", "record"],
    );

    let mut cursor = 0u64;
    let mut got: BTreeMap<(String, u64), Vec<u64>> = BTreeMap::new();
    let mut fetches = 0;
    let mut fetch = |cursor: &mut u64| {
        let out = ours(&spool, &["--spoolfetch"], format!("spoolfetch {cursor}\n"));
        assert!(out.status.success(), "{}", out.stderr());
        for (g, t, n) in samples(&out.stdout()) {
            *cursor = (*cursor).max(t);
            got.entry((g, t)).or_default().push(n);
        }
        fetches += 1;
    };
    let start = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    // Long runs take munin-node away for a quarter of the run, at most 150 s.
    let outage = (seconds >= 120).then(|| (seconds / 2, seconds / 2 + (seconds / 4).min(150)));
    while start.elapsed() < Duration::from_secs(seconds) {
        let t = start.elapsed().as_secs();
        if let Some((down, up)) = outage {
            if t >= down && t < up && node.is_some() {
                node = None;
            } else if t >= up && node.is_none() {
                node = Some(PrivateNode::start_with(port, &refs, &conf));
            }
        }
        if spool.join("SPOOL-META").exists() {
            fetch(&mut cursor);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        thread::sleep(Duration::from_millis(2000 + x % 2000));
    }
    stop(d);
    drop(node);
    // The master's next visits get the rest.
    for _ in 0..3 {
        fetch(&mut cursor);
    }

    let log = fs::read_to_string(&log).unwrap();
    let twice: Vec<_> = got.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let mut report = Vec::new();
    for (name, _) in &plugins {
        let timed: Vec<(u64, u64)> = got
            .iter()
            .filter(|((g, _), _)| g == name)
            .map(|((_, t), v)| (*t, v[0]))
            .collect();
        let values: Vec<u64> = timed.iter().map(|(_, v)| *v).collect();
        let taken: u64 = fs::read_to_string(state.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // In time order, the values count 1, 2, 3 …: no sample missing, none out of order.
        // Only when munin-node is killed can a plugin have run for a reply that never
        // came: one skipped count, at the outage.
        assert_eq!(values.first(), Some(&1), "{name}\n{log}");
        let mut skipped = 0;
        for w in timed.windows(2) {
            let ((_, a), (t, b)) = (w[0], w[1]);
            assert!(b > a, "{name}: out of order at {t}\n{log}");
            if b != a + 1 {
                let at_outage = outage.is_some() && b == a + 2;
                assert!(
                    at_outage,
                    "{name}: {} sample(s) missing before {t}\n{log}",
                    b - a - 1
                );
                skipped += 1;
            }
        }
        assert!(skipped <= 1, "{name}: {skipped} gaps");
        // Every fetch that ran was delivered: a stop lets polls under way finish, and its
        // last complete_until covers them.
        assert_eq!(
            values.len() as u64 + skipped,
            taken,
            "{name}: {taken} taken, {} delivered\n{log}",
            values.len()
        );
        report.push(format!("{name} {}/{taken}", values.len()));
    }
    let total: usize = got.len();
    assert!(total as u64 >= seconds, "too few samples: {total}");
    eprintln!(
        "soak: {seconds} s{}, {fetches} spoolfetches, {total} samples delivered once each \
         (delivered/taken: {})",
        outage.map_or(String::new(), |(a, b)| format!(
            " with munin-node down {} s",
            b - a
        )),
        report.join(", ")
    );
}
