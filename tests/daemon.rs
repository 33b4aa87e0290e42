//! munin-asyncd against Debian's munin-node (a private instance with test plugins): the
//! spool it writes is served by ours and by Debian's Perl munin-async alike, and ingested
//! by Debian's munin-update.

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// 5-second DERIVE growing by 10 a second of the plugin's own clock: the rate comes out as
/// 10 only when each sample carries the time it was taken. (`graph_data_size custom` makes
/// munin-update give the RRD a 5-second step.)
const FAST: &str = "#!/bin/sh
if [ \"$1\" = config ]; then
  printf 'graph_title Fast\\nupdate_rate 5\\ngraph_data_size custom 1d\\nx.label x\\nx.type DERIVE\\nx.min 0\\n'
  exit 0
fi
echo \"x.value $(( $(date +%s) * 10 ))\"
";

const MULTIGRAPH: &str = "#!/bin/sh
if [ \"$1\" = config ]; then
  printf 'multigraph mg_a\\ngraph_title A\\na.label a\\nmultigraph mg_b\\ngraph_title B\\nb.label b\\n'
  exit 0
fi
printf 'multigraph mg_a\\na.value 1\\nmultigraph mg_b\\nb.value 2\\n'
";

const DIRTY: &str = "#!/bin/sh
if [ \"$1\" = config ]; then
  printf 'graph_title Dirty\\nd.label d\\n'
  [ \"$MUNIN_CAP_DIRTYCONFIG\" = 1 ] && echo 'd.value 42'
  exit 0
fi
echo 'd.value 42'
";

/// Slower than its own rate.
const SLOW: &str = "#!/bin/sh
if [ \"$1\" = config ]; then
  printf 'graph_title Slow\\nupdate_rate 5\\ns.label s\\n'
  exit 0
fi
sleep 7
echo 's.value 1'
";

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn spools_a_real_munin_node_on_each_plugins_schedule() {
    let node = PrivateNode::start(&[
        ("fast", FAST),
        ("mg", MULTIGRAPH),
        ("dirty", DIRTY),
        ("slow", SLOW),
    ]);
    let work = tempdir();
    let spool = work.path().join("spool");
    let daemon = Command::new(our_asyncd())
        .args(["--host", &node.addr(), "--spooldir"])
        .arg(&spool)
        .args(["--screen", "-v", "--connections", "3"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(work.path().join("asyncd.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Running(daemon);
    // The first fast sample and three 5-second slots after it (two DERIVE rates for the
    // RRD check below), while the slow plugin's polls (7 s of work each) held a connection.
    let log = work.path().join("asyncd.log");
    wait_records(&spool, "fast", 4, &log, Duration::from_secs(40));
    wait_records(&spool, "slow", 1, &log, Duration::from_secs(30));

    // SIGTERM: gone within a second, every record whole.
    let status = stop_within(
        &mut daemon,
        Duration::from_secs(1),
        "munin-asyncd took over a second to stop",
    );
    let log = fs::read_to_string(work.path().join("asyncd.log")).unwrap();
    assert!(status.success(), "exit {status:?}: {log}");

    // Everything written, read without the watermark: the slow plugin, in flight at the
    // stop, rightly holds complete_until back (the exactly-once test covers that).
    let copy = copy_without_watermark(&spool, &work.path().join("copy"));
    let reply = ours(&copy, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let times = value_times(&reply);

    // The fast plugin: first sample at start, then every 5-second slot, none skipped, even
    // while the slow one holds a connection for 7 seconds.
    let fast = &times[&("fast".to_string(), "x".to_string())];
    assert!(fast.len() >= 3, "{fast:?}\n{log}");
    for pair in fast[1..].windows(2) {
        assert_eq!(pair[1] - pair[0], 5, "fast samples {fast:?}");
    }
    assert!(
        fast[1..].iter().all(|t| t % 5 == 0),
        "not on 5-second slots: {fast:?}"
    );
    // The slow plugin was polled, but never twice at once: its samples are apart by more
    // than its 7 seconds of work.
    let slow = &times[&("slow".to_string(), "s".to_string())];
    assert!(!slow.is_empty());
    assert!(
        slow.windows(2).all(|p| p[1] - p[0] >= 7),
        "slow samples {slow:?}"
    );
    // Multigraph plugins are seen (cap multigraph was announced) and spooled whole.
    assert!(
        times.contains_key(&("mg_a".to_string(), "a".to_string())),
        "{reply}"
    );
    assert!(
        times.contains_key(&("mg_b".to_string(), "b".to_string())),
        "{reply}"
    );
    // dirtyconfig: the values came with the config, so no fetch was made (one value per sample).
    let raw = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("munin-daemon.dirty.")
        })
        .unwrap();
    let raw = fs::read_to_string(raw).unwrap();
    assert_eq!(
        raw.matches("d.value").count(),
        raw.matches("timestamp ").count(),
        "{raw}"
    );
    // A config without update_rate goes as munin-node sent it: the default rate is the
    // master's own (with another --update-rate it is added; see the health test).
    assert!(!raw.contains("update_rate"), "{raw}");
    let meta = fs::read_to_string(spool.join("SPOOL-META")).unwrap();
    assert!(
        meta.contains("hostname:")
            && meta.contains("complete_until:")
            && meta.contains("plugin_rates/fast:5"),
        "{meta}"
    );

    // Debian's Perl munin-async serves the same lines (it ignores complete_until) as ours
    // with --compat-output.
    let perl = perls(&copy, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let compat = ours(
        &copy,
        &["--spoolfetch", "--compat-output"],
        "spoolfetch 0\n",
    )
    .stdout();
    let mut a: Vec<&str> = compat.lines().collect();
    let mut b: Vec<&str> = perl.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "Perl munin-async serves our spool differently");

    // Debian's munin-update ingests it; each sample's own time gives the true DERIVE rate.
    require(MUNIN_UPDATE, "munin");
    // It reads the copy: through the live spool's watermark, held back by the slow plugin
    // in flight at the stop, too few fast samples would be served to compute rates.
    ingest_spool(work.path(), &copy);
    let rrd = work.path().join("db/e2e/node1-fast-x-d.rrd");
    assert!(rrd.exists(), "no RRD for the fast plugin");
    let last = *fast.last().unwrap();
    let text = rrdtool(&[
        "fetch",
        rrd.to_str().unwrap(),
        "AVERAGE",
        "-r",
        "5",
        "-s",
        &(fast[1] - 1).to_string(),
        "-e",
        &last.to_string(),
    ]);
    let rates = fetched_values(&text);
    assert!(rates.len() >= 2, "too few rows:\n{text}");
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    assert!(
        (mean - 10.0).abs() < 1.0,
        "mean DERIVE rate {mean}, expected 10:\n{text}"
    );
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_reader_moving_its_cursor_like_the_master_gets_every_sample_exactly_once() {
    // Fetches of different lengths finish out of order: the race Perl's spool loses to.
    let delays = ["0", "0.3", "0.7", "1.5", "0.1", "0"];
    let scripts: Vec<(String, String)> = delays
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("p{i}"), one_second_plugin(&format!("p{i}"), d)))
        .collect();
    let refs = plugin_refs(&scripts);
    let node = PrivateNode::start(&refs);
    let work = tempdir();
    let spool = work.path().join("spool");
    let daemon = start_daemon(
        &node.addr(),
        &spool,
        &work.path().join("asyncd.log"),
        &["--connections", "6"],
    );
    eventually(
        Duration::from_secs(20),
        || "no SPOOL-META".to_string(),
        || spool.join("SPOOL-META").exists(),
    );
    let mut cursor = 0u64;
    let mut got: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let fetch = |cursor: u64, got: &mut BTreeMap<(String, u64), u32>| -> Option<u64> {
        let out = ours(&spool, &["--spoolfetch"], format!("spoolfetch {cursor}\n"));
        // A graph's sample once per reply, however many fields it has (the health
        // plugin's have several).
        let p: std::collections::BTreeSet<(String, u64)> =
            pairs(&out.stdout()).into_iter().collect();
        let newest = p.iter().map(|(_, t)| *t).max();
        for k in p {
            *got.entry(k).or_default() += 1;
        }
        newest
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        if let Some(t) = fetch(cursor, &mut got) {
            cursor = t;
        }
        thread::sleep(Duration::from_millis(200));
    }
    stop(daemon);
    while let Some(t) = fetch(cursor, &mut got) {
        cursor = t;
    }

    // Everything spooled up to the final complete_until, read without the watermark.
    let meta = fs::read_to_string(spool.join("SPOOL-META")).unwrap();
    let complete: u64 = meta
        .lines()
        .find_map(|l| l.strip_prefix("complete_until:"))
        .expect("complete_until")
        .parse()
        .unwrap();
    let copy = copy_without_watermark(&spool, &work.path().join("copy"));
    let all = ours(
        &copy,
        &["--spoolfetch", "--catchup-window", "0"],
        "spoolfetch 0\n",
    )
    .stdout();
    let truth: std::collections::BTreeSet<(String, u64)> = pairs(&all)
        .into_iter()
        .filter(|(_, t)| *t <= complete)
        .collect();

    assert!(
        truth.len() >= 40,
        "too few samples to mean anything: {}",
        truth.len()
    );
    let twice: Vec<_> = got.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let missed: Vec<_> = truth.iter().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missed.is_empty(),
        "{} of {} samples never reached the reader, first {:?}",
        missed.len(),
        truth.len(),
        missed.first()
    );
    assert!(
        got.keys().all(|(_, t)| *t <= complete),
        "a sample after complete_until was sent"
    );
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn munin_node_down_at_start_is_waited_for_and_logged_once() {
    let port = free_port();
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // systemd's notification socket, as a Type=notify unit gives it.
    let notify_path = work.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let daemon = start_daemon_env(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &[],
        &[
            ("NOTIFY_SOCKET", &notify_path),
            // WatchdogSec=2
            ("WATCHDOG_USEC", std::path::Path::new("2000000")),
        ],
    );
    // Ready although munin-node is down (Debian's init script waits only 15 s), and it says why.
    let mut said = String::new();
    let mut buf = [0u8; 512];
    while !said.contains("does not answer") {
        let n = notify
            .recv(&mut buf)
            .expect("no word from munin-asyncd on NOTIFY_SOCKET");
        said.push_str(&String::from_utf8_lossy(&buf[..n]));
        said.push('\n');
    }
    assert!(said.starts_with("READY=1\n"), "{said}");
    // The watchdog is pinged (every second for WatchdogSec=2) while munin-node is down.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let n = notify.recv(&mut buf).expect("no watchdog ping");
        pings += usize::from(&buf[..n] == b"WATCHDOG=1");
    }
    assert!(pings >= 2, "{pings} watchdog pings in 2.5 s");
    // Down for 4 seconds in all: the daemon stays up and says so once.
    thread::sleep(Duration::from_millis(1500));
    let mut daemon = daemon;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "munin-asyncd exited without munin-node"
    );
    let node = PrivateNode::start_on(port, &[("fast", FAST)]);
    eventually(
        Duration::from_secs(30),
        || "nothing spooled after munin-node came up".to_string(),
        || {
            fs::read_to_string(spool.join("SPOOL-META"))
                .unwrap_or_default()
                .contains("last-timestamp.fast")
        },
    );
    // A reload (SIGHUP) is told to systemd, and its end once the list is read; so is a
    // stop.
    let mut wait_for = |what: &str| {
        let mut said = String::new();
        loop {
            let n = notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {what} on NOTIFY_SOCKET ({e}); said: {said}"));
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == what) {
                return;
            }
            said.push_str(&msg);
            said.push('\n');
        }
    };
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) };
    wait_for("RELOADING=1");
    wait_for("READY=1");
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    wait_for("STOPPING=1");
    stop(daemon);
    drop(node);
    let log = fs::read_to_string(&log).unwrap();
    assert_eq!(
        log.matches("cannot connect to munin-node").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("is up").count(), 1, "{log}");
    // Notices: the start with the version, munin-node back, the reload; no os error codes.
    assert!(log.contains("notice: munin-asyncd 0."), "{log}");
    assert!(log.contains("is up (back after"), "{log}");
    assert!(
        log.contains("notice: reload: 1 plugins on 1 node(s)"),
        "{log}"
    );
    assert!(!log.contains("(os error"), "{log}");
}

/// A fake munin-node for faults a real one cannot produce on demand: `hang` stops in
/// mid-reply, `endless` sends 10 MB without a newline, `closer` hangs up, `trickle` sends a
/// byte a second, `bad` fails (`# Bad exit`), `empty` gives no values. `good` answers at
/// once, at a 1-second rate.
fn faulty_node() -> u16 {
    fake_node(|line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"good hang endless closer trickle bad empty\n"),
            "config good" => send(b"graph_title Good\nupdate_rate 1\nv.label v\n.\n"),
            "fetch good" => send(b"v.value 1\n.\n"),
            // Half a reply, then nothing.
            "config hang" => vec![
                Act::Send(b"graph_title Hang\nv.label v\n".to_vec()),
                Act::Sleep(Duration::from_secs(30)),
                Act::Close,
            ],
            // 10 MB in one line, never ended.
            "config endless" => vec![Act::Send(vec![b'x'; 10_000_000]), Act::Close],
            "config closer" => vec![Act::Close],
            // What munin-node says when a plugin fails, or a process of it left over from
            // before a restart cannot find the plugin any more.
            "config bad" => send(b"# Bad exit\n.\n"),
            "config empty" => send(b"graph_title Empty\nupdate_rate 1\nv.label v\n.\n"),
            "fetch empty" => send(b"# Timeout\n.\n"),
            "config trickle" => vec![Act::Trickle(
                b"graph_title Trickle\n.\n".to_vec(),
                Duration::from_secs(1),
            )],
            other => fake_basics(other),
        }
    })
}

#[test]
fn faulty_plugins_never_move_a_good_one_off_its_slots() {
    let port = faulty_node();
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let daemon = start_daemon(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &[
            "--connections",
            "6",
            "--request-timeout",
            "2",
            "--update-rate",
            "2",
        ],
    );
    thread::sleep(Duration::from_secs(10));
    let mut daemon = daemon;
    assert!(daemon.0.try_wait().unwrap().is_none(), "munin-asyncd died");
    stop(daemon);
    let log = fs::read_to_string(&log).unwrap();
    let reply = ours(&spool, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let times = value_times(&reply);
    let good = &times[&("good".to_string(), "v".to_string())];
    assert!(good.len() >= 7, "{good:?}\n{log}");
    assert!(
        good.windows(2).all(|w| w[1] - w[0] == 1),
        "good plugin missed slots: {good:?}\n{log}"
    );
    for (plugin, why) in [
        ("hang", "in time"),
        ("endless", "over the limit"),
        ("closer", "closed the connection"),
        ("trickle", "in time"),
        ("bad", "config gave nothing to spool (\"# Bad exit\")"),
        ("empty", "fetch gave nothing to spool (\"# Timeout\")"),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("plugin {plugin}:")))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{plugin}: logged once until it recovers\n{log}"
        );
        assert!(lines[0].contains(why), "{plugin}: {}", lines[0]);
    }
    assert!(
        !reply.contains("Trickle") && !reply.contains("xxxx") && !reply.contains("Empty"),
        "a failed request was spooled"
    );
}

/// Debian's diskstats prints no value on its first fetch (it only records its state); on a
/// new machine that is what the daemon meets first. Such a fetch is spooled with its config,
/// as Perl does, so the master learns the graph at once; it is no fault: nothing is logged
/// and the connection is kept.
#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_fetch_without_values_is_spooled_with_its_config_and_keeps_the_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let connects = Arc::new(AtomicUsize::new(0));
    let counted = connects.clone();
    let port = fake_node(move |line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            "" => {
                counted.fetch_add(1, Ordering::SeqCst);
                fake_basics(line)
            }
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"novalue\n"),
            "config novalue" => send(b"graph_title No value yet\nupdate_rate 1\nv.label v\n.\n"),
            "fetch novalue" => send(b".\n"),
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let daemon = start_daemon(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &["--connections", "1"],
    );
    thread::sleep(Duration::from_secs(4));
    stop(daemon);
    let log = fs::read_to_string(&log).unwrap();
    // Each record as spooled (the default reply puts equal configs in one block).
    let reply = ours(
        &spool,
        &["--spoolfetch", "--compat-output"],
        "spoolfetch 0\n",
    )
    .stdout();
    let blocks = reply
        .matches("multigraph novalue\ngraph_title No value yet\n")
        .count();
    assert!(
        blocks >= 3,
        "one config-only record a second:\n{reply}\n{log}"
    );
    assert!(!reply.contains(".value"), "{reply}");
    assert!(!log.contains("plugin novalue"), "logged as a fault:\n{log}");
    // One connection for the plugin list, one for the polls: none dropped and made again.
    assert_eq!(connects.load(Ordering::SeqCst), 2, "{log}");
    // Debian's Perl munin-async serves the same config.
    let perl = perls(&spool, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    assert!(
        perl.contains("multigraph novalue\ngraph_title No value yet\n"),
        "Perl: {perl}"
    );
}

#[test]
fn after_a_restart_the_plugins_that_took_longest_still_go_first() {
    let port = fake_node(|line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"a1 a2 slow\n"),
            l if l.starts_with("config ") => send(b"graph_title T\nv.label v\n.\n"),
            "fetch slow" => vec![
                Act::Sleep(Duration::from_secs(2)),
                Act::Send(b"v.value 1\n.\n".to_vec()),
            ],
            l if l.starts_with("fetch ") => send(b"v.value 1\n.\n"),
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // One connection: the polls of a round run one after the other, in dispatch order.
    let round = |copy: &str, after: u64| {
        let d = start_daemon(
            &format!("127.0.0.1:{port}"),
            &spool,
            &log,
            &["--connections", "1"],
        );
        let meta = || fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default();
        eventually(Duration::from_secs(20), String::new, || {
            !(["a1", "a2", "slow"].iter().any(|p| {
                let key = format!("last-timestamp.{p}:");
                meta()
                    .lines()
                    .find_map(|l| l.strip_prefix(key.as_str()))
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_none_or(|t| t <= after)
            }))
        });
        stop(d);
        let reply = ours(
            &copy_without_watermark(&spool, &work.path().join(copy)),
            &["--spoolfetch"],
            "spoolfetch 0\n",
        )
        .stdout();
        value_times(&reply)
    };
    let newest = |t: &BTreeMap<(String, String), Vec<u64>>, p: &str| {
        *t[&(p.to_string(), "v".to_string())].last().unwrap()
    };
    // The first start knows nothing: name order, slow last.
    let first = round("copy1", 0);
    assert!(newest(&first, "a2") <= newest(&first, "slow"), "{first:?}");
    let meta = fs::read_to_string(spool.join("SPOOL-META")).unwrap();
    let ms: u64 = meta
        .lines()
        .find_map(|l| l.strip_prefix("poll_ms/slow:"))
        .unwrap_or_else(|| panic!("{meta}"))
        .parse()
        .unwrap();
    assert!((2000..5000).contains(&ms), "{meta}");
    // The restart in a second after the last sample's.
    let last = newest(&first, "slow");
    eventually(Duration::from_secs(3), String::new, || now() > last);
    // After the restart, slow goes first and the others wait for it.
    let second = round("copy2", newest(&first, "slow"));
    assert!(
        newest(&second, "a1") > newest(&second, "slow"),
        "{second:?}\n{}",
        fs::read_to_string(&log).unwrap()
    );
}

#[test]
fn more_hung_plugins_than_connections_hold_up_the_others_for_seconds_only() {
    // Five plugins that stop in mid-reply for 30 s, two connections, and a good plugin
    // that comes last in the first round.
    let port = fake_node(|line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            "nodes" => send(b"fake.example\n.\n"),
            l if l.starts_with("list") => send(b"hang1 hang2 hang3 hang4 hang5 zgood\n"),
            "config zgood" => send(b"graph_title Good\nupdate_rate 1\nv.label v\n.\n"),
            "fetch zgood" => send(b"v.value 1\n.\n"),
            l if l.starts_with("config hang") => vec![
                Act::Send(b"graph_title Hang\n".to_vec()),
                Act::Sleep(Duration::from_secs(30)),
                Act::Close,
            ],
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let daemon = start_daemon(
        &format!("127.0.0.1:{port}"),
        &spool,
        &log,
        &["--connections", "2", "--request-timeout", "25"],
    );
    thread::sleep(Duration::from_secs(12));
    stop(daemon);
    let log = fs::read_to_string(&log).unwrap();
    // Read past complete_until, which the hung requests hold back until they time out.
    let copy = copy_without_watermark(&spool, &work.path().join("copy"));
    let reply = ours(&copy, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let times = value_times(&reply);
    let good = times
        .get(&("zgood".to_string(), "v".to_string()))
        .unwrap_or_else(|| panic!("zgood never spooled\n{log}"));
    // Held up for the 3 s after which a connection counts as hung, then on every slot.
    assert!(
        good[0] <= start + 5,
        "first sample at +{} s\n{log}",
        good[0] - start
    );
    assert!(
        good.windows(2).all(|w| w[1] - w[0] == 1),
        "zgood missed slots: {good:?}\n{log}"
    );
    assert!(good.len() >= 6, "{good:?}\n{log}");
    assert!(log.contains("4 more opened, 6 in all"), "{log}");
}

#[test]
fn a_munin_node_that_accepts_but_never_answers_does_not_stall_sigterm() {
    // Accepts connections and says nothing, ever (a hung munin-node).
    let node = FakeNode::start(|_: &mut (), _| vec![Act::Sleep(Duration::from_secs(3600))]);
    let work = tempdir();
    let mut daemon = start_daemon(
        &node.addr(),
        &work.path().join("spool"),
        &work.path().join("asyncd.log"),
        &[],
    );
    // The daemon is connected, waiting for the greeting that never comes.
    eventually(
        Duration::from_secs(10),
        || format!("{} connection(s)", node.open()),
        || node.open() > 0,
    );
    assert!(daemon.0.try_wait().unwrap().is_none());
    stop_within(
        &mut daemon,
        Duration::from_secs(1),
        "SIGTERM took over a second with a hung munin-node",
    );
}

/// A munin-node with a virtual node (an SNMP-style plugin with `host_name`) beside its own
/// plugins. The host's own plugins stay in the spool directory itself, where Perl's 2.0
/// munin-asyncd puts them, so the forced command every Debian site has
/// (`munin-async --spoolfetch` on the spool directory) serves them unchanged; the virtual
/// node gets a directory of its own.
#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn virtual_nodes_spool_into_a_directory_each_and_the_host_stays_at_the_top() {
    let (own, virt) = (simple_plugin("Own"), simple_plugin("Virtual"));
    let node = PrivateNode::start_with(
        free_port(),
        &[("own", &own), ("vplug", &virt)],
        &[("virtual", "[vplug]\nhost_name virt.example\n")],
    );
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let daemon = start_daemon(&node.addr(), &spool, &log, &[]);
    let virt_dir = spool.join("virt.example");
    wait_spooled(
        &[(&virt_dir, "vplug"), (&spool, "own")],
        &log,
        Duration::from_secs(20),
    );
    thread::sleep(Duration::from_millis(1200));
    stop(daemon);

    // Debian's Perl munin-asyncd on the same munin-node, for the reference.
    require(PERL_ASYNCD, "munin-async");
    let perl_spool = work.path().join("perl-spool");
    fs::create_dir(&perl_spool).unwrap();
    let mut perl_daemon = Running(
        Command::new("perl")
            .arg(PERL_ASYNCD)
            .args(["--host", &node.addr(), "--spooldir"])
            .arg(&perl_spool)
            .arg("--nocleanup")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(
        Duration::from_secs(30),
        || "Perl's munin-asyncd wrote no round".to_string(),
        || {
            fs::read_to_string(perl_spool.join("SPOOL-META"))
                .unwrap_or_default()
                .contains("lastruntime:")
        },
    );
    let _ = perl_daemon.0.kill();
    let _ = perl_daemon.0.wait();

    // The seed's forced command on the spool directory: the host's own plugins, as from
    // Perl's spool, and the greeting names the host.
    let session = "list\nspoolfetch 0\nquit\n";
    let seed = ours(&spool, &["--spoolfetch"], session).stdout();
    let from_perl = ours(&perl_spool, &["--spoolfetch"], session).stdout();
    let head = |s: &str| s.lines().take(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        head(&seed),
        head(&from_perl),
        "ours:\n{seed}\nPerl's:\n{from_perl}"
    );
    assert_eq!(seed.lines().nth(1), Some("own"), "{seed}");
    assert!(
        seed.contains("multigraph own\n") && !seed.contains("vplug"),
        "{seed}"
    );
    let perl_reads = perls(&spool, &["--spoolfetch"], session).stdout();
    assert_eq!(
        head(&perl_reads),
        head(&seed),
        "Perl's munin-async on our spool"
    );

    // The virtual node's own spool serves its own plugin under its own name.
    let virt = ours(&virt_dir, &["--spoolfetch"], session).stdout();
    assert!(
        virt.starts_with("# munin node at virt.example\nvplug\n")
            && virt.contains("multigraph vplug\n"),
        "{virt}"
    );
    let perl_virt = perls(&virt_dir, &["--spoolfetch"], session).stdout();
    assert!(
        perl_virt.starts_with("# munin node at virt.example\nvplug\n"),
        "Perl: {perl_virt}"
    );
    // Nothing else beside the virtual node's directory.
    let dirs: Vec<String> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, ["virt.example"]);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn one_daemon_spools_several_munin_nodes_from_a_config_file() {
    let (a_script, b_script) = (simple_plugin("A"), simple_plugin("B"));
    let a = PrivateNode::start(&[("alpha", &a_script)]);
    let b = PrivateNode::start(&[("beta", &b_script)]);
    let work = tempdir();
    let conf = work.path().join("munin-asyncd.conf");
    let (spool_a, spool_b) = (work.path().join("a"), work.path().join("b"));
    fs::write(
        &conf,
        format!(
            "# two sites\n[a]\nhost {}\nspooldir {}\n\n[b]\nhost {}\nspooldir {}\n",
            a.addr(),
            spool_a.display(),
            b.addr(),
            spool_b.display()
        ),
    )
    .unwrap();
    let daemon = Running(
        Command::new(our_asyncd())
            .arg("--config")
            .arg(&conf)
            .args(["--screen", "-v"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(work.path().join("asyncd.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let spooled = |dir: &std::path::Path, p: &str| {
        fs::read_to_string(dir.join("SPOOL-META"))
            .unwrap_or_default()
            .contains(&format!("last-timestamp.{p}"))
    };
    eventually(
        Duration::from_secs(20),
        || fs::read_to_string(work.path().join("asyncd.log")).unwrap_or_default(),
        || spooled(&spool_a, "alpha") && spooled(&spool_b, "beta"),
    );
    thread::sleep(Duration::from_millis(1200));
    stop(daemon);
    let list =
        |dir: &std::path::Path| after_greeting(&ours(dir, &[], "list\n").stdout()).to_string();
    assert_eq!(list(&spool_a), "alpha\n");
    assert_eq!(list(&spool_b), "beta\n");
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn max_spool_size_drops_the_oldest_finished_files_and_says_so() {
    let script = simple_plugin("A");
    let node = PrivateNode::start(&[("alpha", &script)]);
    let work = tempdir();
    let spool = work.path().join("spool");
    fs::create_dir(&spool).unwrap();
    // Ten finished hours of an old plugin, about 300 KiB each: 3 MiB against a 1 MiB cap.
    let hour = 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let current = now - now % hour;
    let mut old = Vec::new();
    for h in (1..=10u64).rev() {
        let start = current - h * hour;
        let mut body = String::new();
        let mut t = start;
        while body.len() < 300 << 10 {
            body += &format!("timestamp {t}\nmultigraph old\nx.value {t}:1\n");
            t += 1;
        }
        let name = format!("munin-daemon.old.{start}.{hour}");
        fs::write(spool.join(&name), body).unwrap();
        old.push(name);
    }
    let log = work.path().join("asyncd.log");
    let daemon = start_daemon(
        &node.addr(),
        &spool,
        &log,
        &[
            "--interval",
            "3600",
            "--retain",
            "100",
            "--max-spool-size",
            "1M",
        ],
    );
    let logged = || fs::read_to_string(&log).unwrap_or_default();
    eventually(Duration::from_secs(20), logged, || {
        logged().contains("over --max-spool-size")
            && fs::read_to_string(spool.join("SPOOL-META"))
                .unwrap_or_default()
                .contains("last-timestamp.alpha")
    });
    stop(daemon);
    // The oldest seven went (7 × 300 KiB leaves 900 KiB), the newest three stayed.
    let (gone, kept) = old.split_at(7);
    for name in gone {
        assert!(!spool.join(name).exists(), "{name} should have gone");
    }
    for name in kept {
        assert!(spool.join(name).exists(), "{name} should have stayed");
    }
    let log = logged();
    assert!(log.contains("dropped its 7 oldest files"), "{log}");
    // Spooling went on, and the kept files are still served.
    let list = after_greeting(&ours(&spool, &[], "list\n").stdout()).to_string();
    assert_eq!(list, "alpha old\n");
}

#[test]
fn a_wrong_config_file_is_refused_naming_file_line_and_setting() {
    let work = tempdir();
    let conf = work.path().join("munin-asyncd.conf");
    fs::write(&conf, "[a]\nhost localhost:4949\nspooldir /tmp/x\nport 5\n").unwrap();
    let out = run(
        Command::new(our_asyncd()).arg("--config").arg(&conf),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr());
    assert_eq!(
        out.stderr(),
        format!(
            "munin-asyncd: {}:4: unknown setting \"port\" (expected host or spooldir)\n",
            conf.display()
        )
    );
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_full_disk_leaves_no_partial_record_and_spooling_resumes_when_space_returns() {
    require("/usr/bin/nsenter", "util-linux");
    let node = PrivateNode::start(&[("big", BIG)]);
    let work = tempdir();
    let spool = work.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let log = work.path().join("asyncd.log");
    // The spool on a 1 MiB tmpfs in a mount namespace of the daemon's own.
    let script = format!(
        "mount -t tmpfs -o size=1m,mode=0755 tmpfs {s} && exec {bin} --host {addr} --spooldir {s} --screen -v --durability kernel",
        s = spool.display(),
        bin = our_asyncd().display(),
        addr = node.addr()
    );
    let daemon = Running(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id().to_string();
    let inside = |args: &[&str], input: &[u8]| -> Output {
        run(
            Command::new("nsenter")
                .args(["-t", &pid, "-m", "--"])
                .args(args),
            input,
            Duration::from_secs(30),
        )
    };
    let spool_s = spool.to_str().unwrap().to_string();
    let serve = |inside: &dyn Fn(&[&str], &[u8]) -> Output| {
        inside(
            &[
                our_async().to_str().unwrap(),
                "--spooldir",
                &spool_s,
                "--spoolfetch",
                "--catchup-window",
                "0",
                // A block per record, to count the records.
                "--compat-output",
                "--screen",
            ],
            b"spoolfetch 0\n",
        )
    };
    // Full after about ten records; then a few more 1-second samples fail, to show the
    // full disk is logged once.
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    eventually(Duration::from_secs(40), log_text, || {
        log_text().contains("No space left on device")
    });
    thread::sleep(Duration::from_secs(3));
    let mut daemon = daemon;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "munin-asyncd died on a full disk"
    );
    let text = fs::read_to_string(&log).unwrap();
    let full = text
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .count();
    assert_eq!(
        full, 1,
        "a full disk is logged once per plugin, not per sample:\n{text}"
    );
    let before = serve(&inside);
    let count = |out: &Output| out.stdout().matches("multigraph big\n").count();
    let n_full = count(&before);
    assert!(n_full >= 3, "{}", before.stderr());

    // Space returns: spooling resumes by itself.
    let grown = inside(&["mount", "-o", "remount,size=64m", &spool_s], b"");
    assert!(grown.status.success(), "{}", grown.stderr());
    eventually(
        Duration::from_secs(20),
        || {
            format!(
                "spooling did not resume after {n_full} records: {}",
                log_text()
            )
        },
        || count(&serve(&inside)) >= n_full + 2,
    );
    let after = serve(&inside);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("plugin big answers again"), "{text}");
    // Nothing partial was left behind: every record served is whole, nothing damaged.
    assert!(!after.stderr().contains("damaged"), "{}", after.stderr());
    // (The health plugin's graphs follow in the same reply: each record of `big` alone.)
    for record in after
        .stdout()
        .split("multigraph ")
        .filter_map(|r| r.strip_prefix("big\n"))
    {
        assert_eq!(
            record.matches(".value ").count(),
            2000,
            "a partial record was served"
        );
    }
    stop(daemon);
}
