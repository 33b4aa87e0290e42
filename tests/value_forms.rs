//! Value forms users have hit (munin-monitoring/munin #933, #940, #1225): a negative value,
//! `1e-5`, `N:`, `U`, and a value carrying its own time, each from a plugin of a real
//! munin-node through our munin-asyncd and our munin-async into Debian's munin-update,
//! reach the RRD unchanged: the value rrdtool stores, at the time it was taken.

use std::fs;
use std::time::Duration;

use crate::harness::*;

/// One plugin printing `value` (a shell word, so `$(...)` works) for its field `v`
/// goes through the whole chain; returns the RRD's last update (time, value as rrdtool
/// prints it), the time munin-async served with the value, and the sample's time in the
/// spool (when munin-asyncd asked).
fn through_the_chain(value: &str) -> ((u64, String), u64, u64) {
    require(MUNIN_UPDATE, "munin");
    require("/usr/bin/rrdtool", "rrdtool");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = config ]; then printf 'graph_title Form\\nv.label v\\n'; exit 0; fi\necho \"v.value {value}\"\n"
    );
    let node = PrivateNode::start(&[("form", &script)]);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let daemon = start_daemon(&node.addr(), &spool, &log, &[]);
    wait_spooled(&[(&spool, "form")], &log, Duration::from_secs(20));
    stop(daemon);
    let meta = fs::read_to_string(spool.join("SPOOL-META")).unwrap();
    let sampled: u64 = meta
        .lines()
        .find_map(|l| l.strip_prefix("last-timestamp.form:"))
        .unwrap()
        .parse()
        .unwrap();
    let reply = ours(&spool, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let served = reply
        .lines()
        .find_map(|l| l.strip_prefix("v.value "))
        .unwrap_or_else(|| panic!("no value served:\n{reply}"))
        .to_string();
    let (t, _) = served
        .split_once(':')
        .expect("a value served with its time");
    let spooled_at: u64 = t.parse().unwrap();
    let master = work.path().join("master");
    fs::create_dir(&master).unwrap();
    ingest_spool(&master, &spool);
    let rrd = master.join("db/e2e/node1-form-v-g.rrd");
    assert!(
        rrd.exists(),
        "no RRD; munin-update's log:\n{}",
        fs::read_to_string(master.join("log/munin-update.log")).unwrap_or_default()
    );
    let text = rrdtool(&["lastupdate", rrd.to_str().unwrap()]);
    let (time, value) = text.lines().last().unwrap().split_once(':').unwrap();
    (
        (time.trim().parse().unwrap(), value.trim().to_string()),
        spooled_at,
        sampled,
    )
}

fn number(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| panic!("rrdtool stored {s:?}, not a number"))
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_negative_value_reaches_the_rrd() {
    let ((time, value), at, sampled) = through_the_chain("-42.5");
    assert_eq!(at, sampled);
    assert_eq!((time, number(&value)), (at, -42.5));
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn an_exponent_value_reaches_the_rrd() {
    let ((time, value), at, sampled) = through_the_chain("1e-5");
    assert_eq!((time, at), (sampled, sampled));
    assert!((number(&value) - 1e-5).abs() < 1e-12, "{value}");
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn an_n_colon_value_reaches_the_rrd_at_the_time_it_was_taken() {
    let ((time, value), at, sampled) = through_the_chain("N:7");
    assert_eq!(at, sampled);
    assert_eq!((time, number(&value)), (at, 7.0));
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn an_unknown_value_reaches_the_rrd_as_unknown() {
    let ((time, value), at, sampled) = through_the_chain("U");
    assert_eq!(at, sampled);
    assert_eq!((time, value.as_str()), (at, "U"));
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_value_with_its_own_time_keeps_that_time() {
    // A time of the plugin's own, 7 seconds before it is asked (as plugins that read a
    // log or a remote device do).
    let ((time, value), at, sampled) = through_the_chain("$(( $(date +%s) - 7 )):12.25");
    assert_eq!(time, at, "served with the plugin's time");
    assert!(
        (sampled - 8..=sampled - 7).contains(&time),
        "the RRD was updated at {time}, not at the plugin's own time (the sample was taken at {sampled})"
    );
    assert_eq!(number(&value), 12.25);
}
