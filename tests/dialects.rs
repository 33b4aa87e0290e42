//! The munin-nodes a site runs besides Debian's Perl one: Debian's munin-node-c (its
//! package's binary, run once per connection as its socket unit runs it), and the
//! harness's fake node in each other dialect a site meets (docs/daemon.md, "Other
//! munin-nodes"). For each, what Debian's munin-update stores through our munin-asyncd
//! and munin-async is what it stores polling the node directly: the same graphs, fields
//! and attributes in its datafile, the same RRDs of the same structure, a value in each,
//! and the same values for the plugins whose values do not move. What each dialect cost
//! the daemon is printed (`dialect:` lines).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The longest the daemon gets to spool every plugin once.
const ROUND: Duration = Duration::from_secs(60);

/// What the daemon logs the first time a node's reply ends without its `.`.
const UNENDED_NOTICE: &str = "without a \".\" line";

/// A plugin whose values never move, with blank lines in its config (munin-node passes a
/// plugin's output on as it is).
const STEADY: &str = "#!/bin/sh\nif [ \"$1\" = config ]; then\n  printf 'graph_title Steady\\ngraph_category test\\ngraph_info Two fields that do not move.\\n\\nwhole.label whole\\nwhole.info an integer\\n\\nhalf.label half\\nhalf.draw LINE2\\n'\n  exit 0\nfi\nprintf 'whole.value 42\\nhalf.value 7.5\\n'\n";

/// A counter that does not move either.
const COUNTED: &str = "#!/bin/sh\nif [ \"$1\" = config ]; then\n  printf 'graph_title Counted\\ngraph_category test\\ngraph_vlabel per ${graph_period}\\ntotal.label total\\ntotal.type DERIVE\\ntotal.min 0\\n'\n  exit 0\nfi\necho total.value 123456\n";

/// The plugins of munin-plugins-c (Debian's C plugins) the munin-node-c test runs.
const C_PLUGINS: [&str; 5] = ["load", "uptime", "cpu", "memory", "entropy"];
const C_PLUGINS_BIN: &str = "/usr/lib/munin-c/plugins/munin-plugins-c";
/// Debian's munin-node-c conflicts with munin-node, so the README's test command unpacks
/// its package here (scripts/setup.sh) rather than installing it.
const MUNIN_NODE_C_BIN: &str = "/var/cache/munin-async-tests/munin-node-c/usr/sbin/munin-node-c";

/// What one dialect cost our daemon.
struct Cost {
    /// From its start until every plugin was spooled.
    first_round: Duration,
    /// It logged a reply without its `.`.
    unended: bool,
}

/// Our daemon polls the node at `addr` until every one of `plugins` is spooled; one master
/// ingests that spool through our munin-async, another polls the node directly. Asserts
/// both stored the same (the plugins in `steady` with the same values); says what the node
/// cost the daemon.
fn through_the_spool_as_directly(addr: &str, plugins: &[&str], steady: &[&str]) -> Cost {
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let start = Instant::now();
    let daemon = start_daemon(addr, &spool, &log, &[]);
    let pairs: Vec<(&Path, &str)> = plugins.iter().map(|p| (spool.as_path(), *p)).collect();
    wait_spooled(&pairs, &log, ROUND);
    let first_round = start.elapsed();
    stop(daemon);
    let logged = fs::read_to_string(&log).unwrap_or_default();

    let (via, direct) = via_spool_and_direct(work.path(), &spool, addr);

    let mut differs = Vec::new();
    let (a, b) = (datafile(&direct.join("db")), datafile(&via.join("db")));
    for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        if a.get(key) != b.get(key) {
            differs.push(format!(
                "datafile {key}: directly {:?}, through the spool {:?}",
                a.get(key),
                b.get(key)
            ));
        }
    }
    for p in plugins {
        if !a.keys().any(|k| k.starts_with(&format!("{p}."))) {
            differs.push(format!("{p}: not in the direct master's datafile"));
        }
    }
    let (da, db) = (direct.join("db/e2e"), via.join("db/e2e"));
    let (la, lb) = (last_values(&da), last_values(&db));
    for name in la.keys().chain(lb.keys()).collect::<BTreeSet<_>>() {
        let why = match (la.get(name), lb.get(name)) {
            (Some(_), None) => Some("no RRD through the spool".to_string()),
            (None, Some(_)) => Some("an RRD only through the spool".to_string()),
            (Some(va), Some(vb)) => {
                let (sa, sb) = (rrd_structure(&da.join(name)), rrd_structure(&db.join(name)));
                let is_steady = steady
                    .iter()
                    .any(|p| name.starts_with(&format!("node1-{p}-")));
                if sa != sb {
                    Some(format!("structure differs:\n{sa:?}\n{sb:?}"))
                } else if va == "U" || vb == "U" {
                    Some(format!("directly {va}, through the spool {vb}"))
                } else if is_steady && !same_number(va, vb) {
                    Some(format!("steady, yet directly {va}, through the spool {vb}"))
                } else {
                    None
                }
            }
            (None, None) => None,
        };
        if let Some(why) = why {
            differs.push(format!("{name}: {why}"));
        }
    }
    assert!(
        differs.is_empty(),
        "through the spool, not as directly:\n{}\nmunin-asyncd's log:\n{logged}",
        differs.join("\n")
    );
    assert!(la.len() >= plugins.len(), "too few RRDs: {la:?}");
    Cost {
        first_round,
        unended: logged.contains(UNENDED_NOTICE),
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn munin_node_c_reaches_the_master_through_the_spool_as_directly() {
    require(MUNIN_UPDATE, "munin");
    require("/usr/bin/rrdtool", "rrdtool");
    require(
        MUNIN_NODE_C_BIN,
        "munin-node-c (unpacked by scripts/setup.sh)",
    );
    require(C_PLUGINS_BIN, "munin-plugins-c");
    let dir = tempdir();
    let (plugins, conf) = (dir.path().join("plugins"), dir.path().join("plugin-conf.d"));
    fs::create_dir(&plugins).unwrap();
    fs::create_dir(&conf).unwrap();
    for p in C_PLUGINS {
        symlink(C_PLUGINS_BIN, plugins.join(p)).unwrap();
    }
    for (name, text) in [("steady", STEADY), ("counted", COUNTED)] {
        fs::write(plugins.join(name), text).unwrap();
        fs::set_permissions(plugins.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let node = Inetd::start(&[
        MUNIN_NODE_C_BIN,
        "-d",
        plugins.to_str().unwrap(),
        "-D",
        conf.to_str().unwrap(),
        "-H",
        "node1.example",
    ]);
    let mut all: Vec<&str> = C_PLUGINS.to_vec();
    all.extend(["steady", "counted"]);
    let cost = through_the_spool_as_directly(&node.addr(), &all, &["steady", "counted"]);
    eprintln!(
        "dialect: munin-node-c 0.0.13 (cap with no capability, list ending with a space, \
         a blank line ending each plugin's output), {} plugins: first round {} ms, reply \
         without its . seen: {}",
        all.len(),
        cost.first_round.as_millis(),
        cost.unended
    );
    assert!(
        !cost.unended,
        "munin-node-c ends what the daemon asks with a ."
    );

    // A plugin removed while the daemon runs: munin-node-c answers it with one `#` line
    // and no `.`. Its poll costs the short wait, the others keep their slots.
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // 2-second plugins, so a removal is met within seconds.
    for name in ["quick", "doomed"] {
        let text = one_second_plugin(name, "0").replace("update_rate 1", "update_rate 2");
        fs::write(plugins.join(name), text).unwrap();
        fs::set_permissions(plugins.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let daemon = start_daemon(&node.addr(), &spool, &log, &[]);
    wait_records(&spool, "doomed", 2, &log, ROUND);
    fs::remove_file(plugins.join("doomed")).unwrap();
    eventually(
        ROUND,
        || fs::read_to_string(&log).unwrap_or_default(),
        || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(UNENDED_NOTICE)
        },
    );
    let quick = records(&spool, "quick");
    wait_records(&spool, "quick", quick + 3, &log, Duration::from_secs(20));
    stop(daemon);
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains(UNENDED_NOTICE) && l.contains("doomed")),
        "{logged}"
    );
    let times = value_times(
        &ours(
            &spool,
            &["--spoolfetch", "--catchup-window", "0"],
            "spoolfetch 0\nquit\n",
        )
        .stdout(),
    );
    let quick: Vec<u64> = times
        .iter()
        .filter(|((g, _), _)| g == "quick")
        .flat_map(|(_, t)| t.clone())
        .collect();
    // Once at the start, then on every 2-second slot.
    let gaps: Vec<u64> = quick.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.len() >= 4 && gaps.iter().all(|g| *g == 2),
        "quick lost a slot beside the removed plugin: {quick:?}\n{logged}"
    );
}

/// A fake node's plugins: `p1`… steady (the texts of [`STEADY`] and [`COUNTED`]), each
/// fetch after `fetch_delay`.
fn fake_plugins(name: &[u8], fetch: bool, out: &mut Vec<u8>) -> bool {
    let counted = name.starts_with(b"counted");
    if !(name.starts_with(b"steady") || counted) {
        return false;
    }
    let title = String::from_utf8_lossy(name);
    let text = match (counted, fetch) {
        (false, false) => format!(
            "graph_title {title}\ngraph_category test\ngraph_info Two fields that do not \
             move.\nwhole.label whole\nwhole.info an integer\nhalf.label half\nhalf.draw LINE2\n"
        ),
        (false, true) => "whole.value 42\nhalf.value 7.5\n".to_string(),
        (true, false) => format!(
            "graph_title {title}\ngraph_category test\ntotal.label total\ntotal.type \
             DERIVE\ntotal.min 0\n"
        ),
        (true, true) => "total.value 123456\n".to_string(),
    };
    out.extend_from_slice(text.as_bytes());
    true
}

/// A fake node in `dialect`, each fetch answered after `fetch_delay`; the requests it
/// was sent, in order.
fn dialect_node(dialect: Dialect, fetch_delay: Duration) -> (FakeNode, Arc<Mutex<Vec<String>>>) {
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = heard.clone();
    let list = "steady1 steady2 counted1 counted2";
    let node = FakeNode::start(move |_: &mut (), line: &str| {
        if line.is_empty() {
            return vec![Act::Send(greeting("node1.example"))];
        }
        record.lock().unwrap().push(line.to_string());
        let mut out = Vec::new();
        let mut plugins = fake_plugins;
        if !speak(
            &dialect,
            line.as_bytes(),
            "node1.example",
            list,
            &mut plugins,
            &mut out,
        ) {
            return vec![Act::Close];
        }
        let mut acts = Vec::new();
        if line.starts_with("fetch") {
            acts.push(Act::Sleep(fetch_delay));
        }
        acts.push(Act::Send(out));
        acts
    });
    (node, heard)
}

/// The fake node in `dialect` through the spool as directly; the requests the daemon
/// sent are those a 2.0 master sends (`cap`, `list`, `config`, `fetch`, `quit`, and
/// `nodes`), each plugin both configured and fetched.
fn fake_dialect(dialect: Dialect, fetch_delay: Duration) -> Cost {
    let (node, heard) = dialect_node(dialect, fetch_delay);
    let plugins = ["steady1", "steady2", "counted1", "counted2"];
    let cost = through_the_spool_as_directly(&node.addr(), &plugins, &plugins);
    let heard = heard.lock().unwrap().clone();
    let words: BTreeSet<&str> = heard
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let known: BTreeSet<&str> = ["cap", "nodes", "list", "config", "fetch", "quit"].into();
    assert!(words.is_subset(&known), "asked {words:?}");
    for p in plugins {
        for ask in ["config", "fetch"] {
            let line = format!("{ask} {p}");
            assert!(heard.contains(&line), "never asked {line:?}: {heard:?}");
        }
    }
    eprintln!(
        "dialect: {} (fetches after {} ms), 4 plugins: first round {} ms, reply without \
         its . seen: {}",
        dialect.name,
        fetch_delay.as_millis(),
        cost.first_round.as_millis(),
        cost.unended
    );
    cost
}

/// A dialect with replies that have no `.`: each costs a short wait, not the 60 s
/// request timeout.
fn unended_dialect(dialect: Dialect) {
    require(MUNIN_UPDATE, "munin");
    let cost = fake_dialect(dialect, Duration::ZERO);
    assert!(cost.unended);
    assert!(
        cost.first_round < Duration::from_secs(20),
        "{:?}",
        cost.first_round
    );
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_shell_node_without_cap_or_nodes_reaches_the_master_as_directly() {
    // `cap` and `nodes` answered as unknown commands, with no `.`.
    unended_dialect(SHELL_NODE);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_node_with_nodes_without_a_dot_and_blank_lines_in_configs_reaches_the_master_as_directly() {
    unended_dialect(LOOSE_NODE);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_fake_munin_node_c_and_a_node_taking_seconds_per_fetch_reach_the_master_as_directly() {
    require(MUNIN_UPDATE, "munin");
    let c = fake_dialect(MUNIN_NODE_C, Duration::ZERO);
    assert!(!c.unended);
    // Four fetches of 3 s each: asked side by side, not one after another.
    let slow = fake_dialect(DEBIAN, Duration::from_secs(3));
    assert!(!slow.unended);
    assert!(
        slow.first_round < Duration::from_secs(3 * 4),
        "{:?}",
        slow.first_round
    );
}
