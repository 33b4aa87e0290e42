//! Differential tests: spools written by Debian's Perl SpoolWriter, read by Debian's Perl
//! munin-async and by ours, compared byte for byte.
//!
//! Perl sends plugins in directory order, we send them sorted; so every plugin is also
//! compared alone (in a spool of its own), and the whole spool's reply must be exactly
//! the per-plugin replies in name order.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::harness::*;

const START: u64 = 1_795_500_123;
const STEP: u64 = 600;
const COUNT: u64 = 30;
const INTERVAL: u64 = 3600;

/// A plugin name and the output lines of its sample `i`.
type Shape = (&'static str, fn(u64) -> Vec<String>);

fn shapes() -> Vec<Shape> {
    vec![
        ("load", |i| {
            let title = if i < 15 {
                "Load average"
            } else {
                "Load average (changed)"
            };
            vec![
                format!("graph_title {title}"),
                "graph_vlabel load".into(),
                "load.label load".into(),
                format!("load.value {}.{:02}", i / 10, i % 100),
            ]
        }),
        ("if_eth0.100", |i| {
            vec![
                "multigraph if_eth0_100".into(),
                "graph_title eth0.100 traffic".into(),
                "down.label received".into(),
                "down.type DERIVE".into(),
                "down.min 0".into(),
                format!("down.value {}", i * 123_456),
                "multigraph if_eth0_100.errors".into(),
                "graph_title eth0.100 errors".into(),
                "err.label errors".into(),
                format!("err.value N:{i}"),
            ]
        }),
        ("dirty", |i| {
            vec![
                "graph_title dirtyconfig".into(),
                "update_rate 60".into(),
                "a.label a".into(),
                format!("a.value {i}"),
                "b.label b".into(),
                "b.value U".into(),
            ]
        }),
        ("stamped", |i| {
            vec![
                "graph_title own times".into(),
                "s.label s".into(),
                format!("s.value {}:{i}", START + i * STEP - 7),
                format!("t.value N:{}", i * 2),
            ]
        }),
        ("shapes", |i| {
            vec![
                "graph_title value shapes".into(),
                String::new(),
                ".".into(),
                format!("e.value 1.5e+{i}"),
                format!("n.value -{i}.25"),
                "u.value U".into(),
                "bare.value N".into(),
                format!("sp.value  {i}"),
                format!("tab.value\t{i}"),
                "empty.value ".into(),
                "weird.name.value 3".into(),
                "a.label has: colons and spaces".into(),
            ]
        }),
        ("a-b", |i| {
            vec!["graph_title dash".into(), format!("x.value {i}")]
        }),
        ("mg.dot", |i| {
            vec![
                "multigraph mg_dot_root".into(),
                "graph_title root".into(),
                format!("r.value {i}"),
                "multigraph mg_dot_root.child".into(),
                format!("c.value {}", i * 3),
            ]
        }),
    ]
}

/// The spoolfetch timestamps to try: 0, every sample time and its neighbours, every
/// interval boundary, and past the end.
fn cursors() -> Vec<u64> {
    let mut c = vec![0, START - 1, START + COUNT * STEP + 1000];
    for i in 0..COUNT {
        let t = START + i * STEP;
        c.extend([t - 1, t, t + 1]);
    }
    let first = START - START % INTERVAL;
    for k in 0..7 {
        c.push(first + k * INTERVAL);
    }
    c
}

fn write_spool(dir: &Path, names: &[Shape]) {
    let mut samples = Vec::new();
    for i in 0..COUNT {
        for (name, lines) in names {
            samples.push(Sample {
                time: START + i * STEP,
                plugin: name,
                lines: lines(i),
            });
        }
    }
    perl_spool(dir, INTERVAL, "diff.example.org", &samples);
}

/// Splits a session's output after the greeting into replies ending with a `.` line.
fn replies(out: &str) -> Vec<String> {
    let mut replies = Vec::new();
    let mut cur = String::new();
    for line in after_greeting(out).split_inclusive('\n') {
        if line == ".\n" {
            replies.push(std::mem::take(&mut cur));
        } else {
            cur.push_str(line);
        }
    }
    assert!(cur.is_empty(), "unterminated reply: {cur:?}");
    replies
}

fn session_input(cursors: &[u64]) -> String {
    let mut s: String = cursors
        .iter()
        .map(|c| format!("spoolfetch {c}\n"))
        .collect();
    s.push_str("quit\n");
    s
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn every_plugin_alone_is_served_byte_for_byte_like_perl() {
    let all = tempdir();
    let names = shapes();
    write_spool(all.path(), &names);
    let cursors = cursors();
    let input = session_input(&cursors);
    let mut per_plugin: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in fs::read_dir(all.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(rest) = name.strip_prefix("munin-daemon.") else {
            continue;
        };
        let service = rest.split('.').next().unwrap().to_string();
        let dir = all.path().join(format!("only-{service}"));
        if !dir.exists() {
            fs::create_dir(&dir).unwrap();
            fs::copy(all.path().join("SPOOL-META"), dir.join("SPOOL-META")).unwrap();
        }
        fs::copy(all.path().join(&name), dir.join(&name)).unwrap();
    }
    let services: Vec<String> = [
        "a_b",
        "dirty",
        "if_eth0_100",
        "load",
        "mg_dot",
        "shapes",
        "stamped",
    ]
    .map(String::from)
    .to_vec();
    for service in &services {
        let dir = all.path().join(format!("only-{service}"));
        let perl = perls(&dir, &["--spoolfetch"], &input);
        let rust = ours(&dir, &["--spoolfetch", "--compat-output"], &input);
        assert!(
            perl.status.success() && rust.status.success(),
            "{}",
            rust.stderr()
        );
        assert_eq!(rust.stderr(), "", "ours logged problems for {service}");
        let (p, r) = (perl.stdout(), rust.stdout());
        assert!(
            p.len() > 10_000,
            "{service}: Perl sent too little to compare: {}",
            p.len()
        );
        if p != r {
            let (pr, rr) = (replies(&p), replies(&r));
            for (i, c) in cursors.iter().enumerate() {
                assert_eq!(rr[i], pr[i], "{service}: spoolfetch {c} differs");
            }
            assert_eq!(r, p, "{service}: outputs differ");
        }
        per_plugin.insert(service.clone(), replies(&p));
    }

    // The whole spool: our reply is the per-plugin replies in name order.
    let perl = perls(all.path(), &["--spoolfetch"], &input);
    let rust = ours(all.path(), &["--spoolfetch", "--compat-output"], &input);
    let (pr, rr) = (replies(&perl.stdout()), replies(&rust.stdout()));
    assert_eq!(rr.len(), cursors.len());
    for (i, c) in cursors.iter().enumerate() {
        let expected: String = per_plugin.values().map(|r| r[i].as_str()).collect();
        assert_eq!(rr[i], expected, "whole spool, spoolfetch {c}");
        let mut p: Vec<&str> = pr[i].lines().collect();
        let mut r: Vec<&str> = rr[i].lines().collect();
        p.sort_unstable();
        r.sort_unstable();
        assert_eq!(
            r, p,
            "whole spool, spoolfetch {c}: not the same lines as Perl"
        );
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn sealed_records_are_read_alike_by_perl_and_by_us() {
    // What our writer will write: Perl's reader must serve it unchanged.
    let dir = tempdir();
    fs::write(
        dir.path().join("SPOOL-META"),
        "hostname:sealed.example\ninterval_size:3600\n",
    )
    .unwrap();
    let mut files: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for i in 0..COUNT {
        let t = START + i * STEP;
        let body = format!(
            "multigraph sealed\ngraph_title sealed\nv.label v\nv.value {i}\nw.value {}:{i}\nu.value U\n",
            t - 3
        );
        munin_async::spool::record::write_sealed(
            t,
            body.as_bytes(),
            files.entry(t - t % INTERVAL).or_default(),
        );
    }
    for (start, bytes) in &files {
        fs::write(
            dir.path()
                .join(format!("munin-daemon.sealed.{start}.{INTERVAL}")),
            bytes,
        )
        .unwrap();
    }
    let input = session_input(&cursors());
    let perl = perls(dir.path(), &["--spoolfetch"], &input);
    let rust = ours(dir.path(), &["--spoolfetch", "--compat-output"], &input);
    assert!(perl
        .stdout()
        .contains(&format!("v.value {}:29", START + 29 * STEP)));
    assert_eq!(rust.stdout(), perl.stdout());
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn spools_our_writer_writes_are_served_alike_by_perl_and_by_us() {
    use munin_async::spool::writer::{record_body, Durability, SpoolWriter};
    let input = session_input(&cursors());
    for (name, lines) in shapes() {
        let dir = tempdir();
        let w = SpoolWriter::open(dir.path(), INTERVAL, Durability::Kernel).unwrap();
        w.write_meta(&[
            ("hostname".into(), "ours.example".into()),
            ("interval_size".into(), INTERVAL.to_string()),
        ])
        .unwrap();
        let service = munin_async::spool::names::sanitise(name.as_bytes());
        for i in 0..COUNT {
            let output = lines(i);
            let mut body = Vec::new();
            record_body(&service, output.iter().map(|l| l.as_bytes()), &mut body);
            w.append(name, START + i * STEP, &body).unwrap();
        }
        let perl = perls(dir.path(), &["--spoolfetch"], &input);
        let rust = ours(dir.path(), &["--spoolfetch", "--compat-output"], &input);
        assert!(
            perl.stdout().len() > 10_000,
            "{name}: too little to compare"
        );
        assert_eq!(rust.stdout(), perl.stdout(), "{name}");
    }
}

/// The classic spools the tests without Debian's munin write (`classic_spool`) are what
/// Perl's SpoolWriter writes, byte for byte, for every record shape.
#[test]
#[ignore = "needs Debian's munin-async (Perl's SpoolWriter): scripts/test.sh runs it"]
fn the_tests_classic_writer_writes_what_perls_writes() {
    let (perl, ours) = (tempdir(), tempdir());
    write_spool(perl.path(), &shapes());
    let mut samples = Vec::new();
    let shapes = shapes();
    for i in 0..COUNT {
        for (name, lines) in &shapes {
            samples.push(Sample {
                time: START + i * STEP,
                plugin: name,
                lines: lines(i),
            });
        }
    }
    classic_spool(ours.path(), INTERVAL, "diff.example.org", &samples);
    let files = |d: &Path| -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let (mut p, mut o) = (files(perl.path()), files(ours.path()));
    let meta = |b: Vec<u8>| -> BTreeMap<String, String> {
        String::from_utf8(b)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        meta(p.remove("SPOOL-META").unwrap()),
        meta(o.remove("SPOOL-META").unwrap())
    );
    assert_eq!(p.keys().collect::<Vec<_>>(), o.keys().collect::<Vec<_>>());
    for (name, bytes) in &p {
        assert!(bytes == &o[name], "{name} differs");
    }
}
