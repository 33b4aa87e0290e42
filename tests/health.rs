//! munin-asyncd's own health plugin, `munin_asyncd`: spooled beside the node's plugins,
//! served by munin-async, and ingested by Debian's munin-update into RRDs.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use crate::harness::*;

/// A plugin munin-node runs and that fails: munin-node answers `# Bad exit`.
const BROKEN: &str = "#!/bin/sh\nexit 1\n";

/// A plugin whose fetch prints nothing, as Debian's diskstats on its first run: munin-node
/// answers `.` alone.
pub const SILENT: &str = "#!/bin/sh\nif [ \"$1\" = config ]; then printf 'graph_title Silent\\nv.label v\\n'; fi\nexit 0\n";

/// The newest record of each health graph: graph → field → value.
fn newest_health(reply: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut graph = String::new();
    for line in reply.lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            graph = g.to_string();
        } else if graph.starts_with("munin_asyncd_") {
            if let Some((field, v)) = line.split_once(".value ") {
                let value = v.rsplit(':').next().unwrap().to_string();
                out.entry(graph.clone())
                    .or_default()
                    .insert(field.to_string(), value);
            }
        }
    }
    out
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn the_daemons_own_health_is_spooled_and_graphed_by_munin_update() {
    require(MUNIN_UPDATE, "munin");
    require("/usr/bin/rrdtool", "rrdtool");
    let good = simple_plugin("Alpha");
    let node = PrivateNode::start(&[("alpha", &good), ("broken", BROKEN), ("silent", SILENT)]);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // Every 2 s, so a few health samples come in a few seconds.
    let d = start_daemon(&node.addr(), &spool, &log, &["--update-rate", "2"]);
    wait_records(&spool, "munin_asyncd", 2, &log, Duration::from_secs(20));
    // A master fetches once: the lag graph has a cursor from then on.
    let first = ours(&spool, &["--spoolfetch"], "spoolfetch 0\n");
    assert!(first.status.success(), "{}", first.stderr());
    assert!(spool.join("munin-async.cursor").exists());
    // Two more health samples, the lag computed from the cursor.
    let n = records(&spool, "munin_asyncd");
    wait_records(&spool, "munin_asyncd", n + 2, &log, Duration::from_secs(20));
    stop(d);

    let reply = ours(
        &spool,
        &["--spoolfetch", "--catchup-window", "0"],
        "spoolfetch 0\n",
    )
    .stdout();
    let h = newest_health(&reply);
    let log = fs::read_to_string(&log).unwrap();
    let value = |g: &str, f: &str| -> f64 {
        h.get(g)
            .and_then(|m| m.get(f))
            .unwrap_or_else(|| panic!("no {g} {f} in:\n{reply}\n{log}"))
            .parse()
            .unwrap_or_else(|_| panic!("{g} {f} is not a number: {h:?}"))
    };
    assert!(value("munin_asyncd_polls", "ok") >= 3.0, "{h:?}");
    assert!(value("munin_asyncd_polls", "failed") >= 1.0, "{h:?}");
    // The fetch that answered nothing is counted apart, and is no failure: with two
    // samples of `broken` (which fails) and two of `silent`, failures stay below ok + empty.
    let empty = value("munin_asyncd_polls", "empty");
    assert!(empty >= 2.0, "{h:?}");
    assert!(
        !log.contains("plugin silent"),
        "an empty fetch was logged as a fault:\n{log}"
    );
    // silent's config reached the spool, so the master learns its graph.
    assert!(
        reply.contains("multigraph silent\n") && reply.contains("graph_title Silent"),
        "{reply}"
    );
    // The default rate is not Munin's 300 here, so the master is told it.
    assert!(
        reply.contains("multigraph alpha\nupdate_rate 2\n"),
        "{reply}"
    );
    assert!(value("munin_asyncd_samples", "plugin") >= 1.0, "{h:?}");
    assert_eq!(value("munin_asyncd_samples", "disk"), 0.0);
    assert!(value("munin_asyncd_latency", "max") < 5.0, "{h:?}");
    let bytes = value("munin_asyncd_spool", "bytes");
    assert!(bytes > 0.0);
    let lag = value("munin_asyncd_lag", "lag");
    assert!((0.0..30.0).contains(&lag), "{h:?}");

    // With nothing newer than the master's cursor, the reply still names every graph of
    // the host, the daemon's own included (config only), so none vanishes from the pages.
    let later = ours(&spool, &["--spoolfetch"], "spoolfetch 99999999999\n").stdout();
    for graph in ["alpha", "silent", "munin_asyncd_polls", "munin_asyncd_lag"] {
        assert!(
            later.contains(&format!("multigraph {graph}\n")),
            "{graph}:\n{later}"
        );
    }
    assert!(!later.contains(".value"), "{later}");

    // Debian's munin-update takes it in like any plugin.
    ingest_spool(work.path(), &spool);
    let db = work.path().join("db/e2e");
    for rrd in [
        "node1-munin_asyncd_polls-ok-d.rrd",
        "node1-munin_asyncd_polls-empty-d.rrd",
        "node1-silent-v-g.rrd",
        "node1-munin_asyncd_polls-failed-d.rrd",
        "node1-munin_asyncd_latency-avg-g.rrd",
        "node1-munin_asyncd_samples-written-d.rrd",
        "node1-munin_asyncd_samples-plugin-d.rrd",
        "node1-munin_asyncd_lag-lag-g.rrd",
    ] {
        assert!(
            db.join(rrd).exists(),
            "no {rrd} in {:?}",
            fs::read_dir(&db)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
    }
    let (_, last_bytes) = last_update(&db.join("node1-munin_asyncd_spool-bytes-g.rrd"));
    assert_eq!(last_bytes, bytes);
}
