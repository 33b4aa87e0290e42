//! Corruption: flipped bytes, truncated and garbage-filled spool files, a damaged or empty
//! SPOOL-META. munin-async serves every intact record, skips and counts the damaged ones
//! and logs them; munin-asyncd starts on such a spool and goes on spooling.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

/// The byte ranges of the records in a spool file: each starts at a `timestamp` line.
fn records(data: &[u8]) -> Vec<(usize, usize)> {
    let mut starts: Vec<usize> = Vec::new();
    let mut pos = 0;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"timestamp ") {
            starts.push(pos);
        }
        pos += line.len();
    }
    let mut out = Vec::new();
    for (i, &s) in starts.iter().enumerate() {
        out.push((s, starts.get(i + 1).copied().unwrap_or(data.len())));
    }
    out
}

/// The time on a record's `timestamp` line.
fn time_of(record: &[u8]) -> u64 {
    let line = record.split(|&b| b == b'\n').next().unwrap();
    std::str::from_utf8(&line[10..])
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn file_of(spool: &Path, service: &str) -> PathBuf {
    fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("munin-daemon.{service}."))
        })
        .unwrap()
}

fn all_served(spool: &Path) -> (BTreeSet<(String, u64)>, String) {
    let out = ours(
        spool,
        &["--spoolfetch", "--catchup-window", "0", "-v"],
        "spoolfetch 0\n",
    );
    assert!(out.status.success(), "{}", out.stderr());
    (pairs(&out.stdout()).into_iter().collect(), out.stderr())
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn damaged_records_are_skipped_counted_and_logged_and_the_daemon_goes_on() {
    let plugins: Vec<(String, String)> = ["flip", "cut", "garbage", "meta"]
        .iter()
        .map(|n| (n.to_string(), one_second_plugin(n, "0")))
        .collect();
    let refs = plugin_refs(&plugins);
    let node = PrivateNode::start(&refs);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = start_daemon(&node.addr(), &spool, &log, &["--connections", "4"]);
    // Twelve records a file, so the 300 bytes of garbage below stay clear of the last one.
    for p in ["flip", "cut", "garbage", "meta"] {
        wait_records(&spool, p, 12, &log, Duration::from_secs(40));
    }
    stop(d);
    // Without its complete_until, SPOOL-META lets every record be served, the newest too.
    fs::write(spool.join("SPOOL-META"), "").unwrap();
    let (before, _) = all_served(&spool);
    assert!(before.len() >= 24, "too few samples: {}", before.len());
    let clean = ours(&spool, &["--inspect"], "");
    assert_eq!(clean.status.code(), Some(0), "{}", clean.stdout());
    assert!(
        clean.stdout().ends_with("no damage found\n"),
        "{}",
        clean.stdout()
    );

    let mut damaged: BTreeSet<(String, u64)> = BTreeSet::new();
    // Three flipped bytes, each in the value of one record (a digit for another digit:
    // only the record's checksum can tell).
    let path = file_of(&spool, "flip");
    let mut data = fs::read(&path).unwrap();
    let recs = records(&data);
    for &i in &[1, 3, 5] {
        let (s, e) = recs[i];
        let at = s
            + data[s..e]
                .windows(9)
                .position(|w| w == b"v.value 1")
                .unwrap()
            + 8;
        data[at] = b'7';
        damaged.insert(("flip".into(), time_of(&data[s..e])));
    }
    fs::write(&path, &data).unwrap();
    // A file cut in the middle of its last record.
    let path = file_of(&spool, "cut");
    let mut data = fs::read(&path).unwrap();
    let &(s, e) = records(&data).last().unwrap();
    damaged.insert(("cut".into(), time_of(&data[s..e])));
    data.truncate(s + (e - s) / 2);
    fs::write(&path, &data).unwrap();
    // 300 bytes of garbage, newlines included, over the middle of a file.
    let path = file_of(&spool, "garbage");
    let mut data = fs::read(&path).unwrap();
    let (g0, g1) = (data.len() / 2, data.len() / 2 + 300);
    for (s, e) in records(&data) {
        if s < g1 && e > g0 {
            damaged.insert(("garbage".into(), time_of(&data[s..e])));
        }
    }
    let mut x: u32 = 12345;
    for b in &mut data[g0..g1] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    fs::write(&path, &data).unwrap();
    // A spool file of nothing but garbage.
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let start = time_of(&fs::read(file_of(&spool, "meta")).unwrap());
    fs::write(
        spool.join(format!(
            "munin-daemon.junk.{}.86400",
            start - start % 86_400
        )),
        junk,
    )
    .unwrap();

    // --inspect finds each damaged part, per plugin, and changes nothing.
    let files = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let untouched = files(&spool);
    let seen = ours(&spool, &["--inspect"], "");
    assert_eq!(seen.status.code(), Some(1), "{}", seen.stderr());
    let text = seen.stdout();
    for (service, parts) in [("flip", 3), ("cut", 1), ("garbage", 1), ("junk", 1)] {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{service} ")))
            .unwrap_or_else(|| panic!("no row for {service}:\n{text}"));
        assert!(row.ends_with(&format!(" {parts}")), "{row}");
        assert!(
            text.contains(&format!("problem: {service}: {parts} damaged part(s)")),
            "{text}"
        );
    }
    assert_eq!(files(&spool), untouched, "--inspect changed the spool");

    // A damaged SPOOL-META, then an empty one: every intact record is served either way.
    let expected: BTreeSet<_> = before.difference(&damaged).cloned().collect();
    for meta in [
        &b"complete_until:\xff\xfe\nhostname:\x00\ninterval_size:-5\n"[..],
        b"",
    ] {
        fs::write(spool.join("SPOOL-META"), meta).unwrap();
        let (now, log) = all_served(&spool);
        assert_eq!(now, expected, "{log}");
        // Each damaged file is named in the log with what was skipped.
        for service in ["flip", "cut", "garbage", "junk"] {
            assert!(
                log.lines()
                    .any(|l| l.contains(&format!("munin-daemon.{service}."))
                        && l.contains("damaged part")),
                "{service}:\n{log}"
            );
        }
        assert!(
            log.lines()
                .any(|l| l.contains("munin-daemon.flip.") && l.contains("skipped 3 damaged")),
            "{log}"
        );
    }

    // munin-asyncd starts on it, repairs the cut tail and goes on spooling all four.
    let d = start_daemon(&node.addr(), &spool, &log, &["--connections", "4"]);
    let newest = before.iter().map(|(_, t)| *t).max().unwrap();
    let fresh = |now: &BTreeSet<(String, u64)>| -> BTreeSet<String> {
        now.iter()
            .filter(|(_, t)| *t > newest + 1)
            .map(|(g, _)| g.clone())
            .collect()
    };
    eventually(
        Duration::from_secs(20),
        || {
            let (now, stderr) = all_served(&spool);
            format!(
                "spooling did not resume: {:?}\n{}\n{:?}\n{}\n{stderr}",
                fresh(&now),
                fs::read_to_string(&log).unwrap_or_default(),
                now.iter().rev().take(12).collect::<Vec<_>>(),
                fs::read_to_string(spool.join("SPOOL-META")).unwrap_or_default(),
            )
        },
        || fresh(&all_served(&spool).0).len() == 4,
    );
    let (now, _) = all_served(&spool);
    assert!(
        expected.is_subset(&now),
        "intact records lost after the restart"
    );
    stop(d);
    let log = fs::read_to_string(&log).unwrap();
    // The cut record and the junk file (5000 bytes) were cut off; nothing else.
    let cut = log
        .lines()
        .find(|l| l.contains("of torn records off"))
        .unwrap_or_else(|| panic!("no repair logged:\n{log}"));
    assert!(cut.contains("off 2 files"), "{cut}");
}
