//! Masters at scale: fifty munin-async sessions at once on one spool while munin-asyncd
//! writes big records into it.

use std::collections::BTreeSet;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn fifty_sessions_at_once_while_the_daemon_writes_each_get_whole_records() {
    let node = PrivateNode::start(&[("big", BIG), ("tick", &one_second_plugin("tick", "0"))]);
    let work = tempdir();
    let spool = work.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let log = work.path().join("asyncd.log");
    let d = start_daemon(&node.addr(), &spool, &log, &["--connections", "2"]);
    let t0 = Instant::now();
    while served(&spool, "warming up").len() < 6 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(200));
    }
    // Three waves of fifty sessions, each with a different cursor.
    let mut replies: Vec<(u64, BTreeSet<(String, u64)>)> = Vec::new();
    for wave in 0..3 {
        let threads: Vec<_> = (0..50u64)
            .map(|i| {
                let spool = spool.clone();
                thread::spawn(move || {
                    let cursor = if i % 2 == 0 { 0 } else { i };
                    let out = ours(
                        &spool,
                        &["--spoolfetch", "--catchup-window", "0"],
                        format!("spoolfetch {cursor}\n"),
                    );
                    assert!(out.status.success(), "session {i}: {}", out.stderr());
                    let text = out.stdout();
                    (
                        cursor,
                        whole_records(&text, &format!("wave {wave} session {i}")),
                    )
                })
            })
            .collect();
        for t in threads {
            replies.push(t.join().expect("a session failed"));
        }
        thread::sleep(Duration::from_millis(700));
    }
    stop(d);
    let all = served(&spool, "at the end");
    for (cursor, got) in &replies {
        assert!(
            !got.is_empty() || *cursor > 0,
            "an empty reply from cursor 0"
        );
        let extra: Vec<_> = got.difference(&all).collect();
        assert!(
            extra.is_empty(),
            "served then, not in the spool now: {extra:?}"
        );
    }
    assert_eq!(replies.len(), 150);
    assert!(
        replies
            .iter()
            .filter(|(_, r)| r.iter().any(|(g, _)| g == "big"))
            .count()
            >= 100,
        "too few replies held big records"
    );
}
