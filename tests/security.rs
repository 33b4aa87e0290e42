//! Security: what a node, a master or a second daemon can and cannot make our programs do.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::harness::*;

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p.clone());
            }
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

fn daemon(host: &str, spool: &Path, log: &Path, extra: &[&str]) -> Running {
    Running(
        Command::new(our_asyncd())
            .args(["--host", host, "--spooldir"])
            .arg(spool)
            .args(["--screen", "-v", "--durability", "kernel"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, log: &Path, limit: Duration, done: impl FnMut() -> bool) {
    eventually(
        limit,
        || format!("{what}\n{}", fs::read_to_string(log).unwrap_or_default()),
        done,
    );
}

fn sigterm(mut d: Running) {
    unsafe { libc::kill(d.0.id() as i32, libc::SIGTERM) };
    wait_exit(&mut d.0, Duration::from_secs(3), "no exit on SIGTERM");
}

#[test]
fn names_from_a_node_never_leave_the_spool_nor_mix_two_plugins() {
    let long = "L".repeat(10_000);
    let list = format!("../evil a/b x\u{1}y if_eth0.1 if_eth0_1 .. {long} mg munin_asyncd\n");
    let port = fake_node(move |line| {
        let send = |b: &[u8]| vec![Act::Send(b.to_vec())];
        match line {
            // Virtual nodes: only "good-node" can name a directory. (A name starting with
            // a dot would end the reply, as in Perl.)
            "nodes" => send(b"good-node\na/b\nx\x01\nup/../../tmp\nnul\0byte\n.\n"),
            // The greeting's node (fake.example) is not among them: it has no plugins.
            "list" => send(b"\n"),
            l if l.starts_with("list") => send(list.as_bytes()),
            // Both sanitise to if_eth0_1: the first listed wins, its values are 1.
            "fetch if_eth0.1" => send(b"v.value 1\n.\n"),
            "fetch if_eth0_1" => send(b"v.value 2\n.\n"),
            "config mg" => {
                send(b"multigraph ../../../etc/evil\ngraph_title T\nupdate_rate 1\nv.label v\n.\n")
            }
            l if l.starts_with("config ") => send(b"graph_title T\nupdate_rate 1\nv.label v\n.\n"),
            l if l.starts_with("fetch ") => send(b"v.value 3\n.\n"),
            other => fake_basics(other),
        }
    });
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    let d = daemon(&format!("127.0.0.1:{port}"), &spool, &log, &[]);
    let meta = spool.join("good-node").join("SPOOL-META");
    wait_for("no samples spooled", &log, Duration::from_secs(20), || {
        let m = fs::read_to_string(&meta).unwrap_or_default();
        ["___evil", "a_b", "x_y", "if_eth0_1", "mg"]
            .iter()
            .all(|s| m.contains(&format!("last-timestamp.{s}:")))
    });
    // Two more rounds (every plugin at 1 s): a refusal is still logged once.
    let mg = || -> u64 {
        fs::read_to_string(&meta)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("last-timestamp.mg:"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    let first = mg();
    wait_for("no later rounds", &log, Duration::from_secs(20), || {
        mg() >= first + 2
    });
    sigterm(d);
    let log = fs::read_to_string(&log).unwrap();

    // Nothing outside the spool directory, one subdirectory, only spool files in it.
    let top = tree(work.path());
    assert!(
        top.iter()
            .all(|p| p.starts_with("spool") || p == Path::new("asyncd.log")),
        "{top:?}"
    );
    let inside = tree(&spool);
    for p in &inside {
        let mut parts = p.components();
        let first = parts.next().unwrap().as_os_str().to_str().unwrap();
        // The spool directory itself holds the daemon's files and one subdirectory.
        let top = [
            "good-node",
            "SPOOL-META",
            "munin-asyncd.lock",
            "munin-daemon.list",
        ];
        assert!(top.contains(&first), "{p:?}");
        if let Some(name) = parts.next() {
            let name = name.as_os_str().to_str().unwrap();
            assert!(parts.next().is_none(), "{p:?}");
            assert!(
                name.starts_with("munin-daemon.")
                    || name == "SPOOL-META"
                    || name == "munin-asyncd.lock",
                "{name}"
            );
            assert!(name.len() < 255 && !name.contains("LLLL"), "{name}");
        }
    }
    for refused in [
        "\"a/b\"",
        "\"x\\x01\"",
        "\"up/../../tmp\"",
        "\"nul\\x00byte\"",
    ] {
        assert_eq!(
            log.matches(&format!("virtual node {refused} cannot name"))
                .count(),
            1,
            "{refused}\n{log}"
        );
    }
    assert_eq!(
        log.matches("10000 bytes is not spooled").count(),
        1,
        "{log}"
    );
    // The daemon's own health plugin keeps its file.
    assert_eq!(
        log.matches("plugin \"munin_asyncd\" is not spooled")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches(
            "plugin \"if_eth0_1\" is not spooled: its spool file would be plugin \"if_eth0.1\"'s"
        )
        .count(),
        1,
        "{log}"
    );

    // The served spool: if_eth0_1 holds only the first plugin's values.
    let node_spool = spool.join("good-node");
    let reply = ours(&node_spool, &["--spoolfetch"], "spoolfetch 0\n").stdout();
    let mut graph = "";
    let mut values = BTreeSet::new();
    for line in reply.lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            graph = g;
        } else if graph == "if_eth0_1" {
            if let Some(v) = line.strip_prefix("v.value ") {
                values.insert(v.rsplit(':').next().unwrap().to_string());
            }
        }
    }
    assert_eq!(values, BTreeSet::from(["1".to_string()]), "{reply}");
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn spool_files_and_directories_allow_no_world_access() {
    let script = "#!/bin/sh\n[ \"$1\" = config ] && { echo 'graph_title T'; echo 'update_rate 1'; echo 'v.label v'; exit 0; }\necho v.value 1\n";
    let node = PrivateNode::start(&[("alpha", script)]);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("asyncd.log");
    // A permissive umask must not widen the modes.
    let d = Running(
        Command::new("sh")
            .arg("-c")
            .arg("umask 0; exec \"$@\"")
            .arg("sh")
            .arg(our_asyncd())
            .args(["--host", &node.addr(), "--screen", "--spooldir"])
            .arg(&spool)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("nothing spooled", &log, Duration::from_secs(20), || {
        fs::read_to_string(spool.join("SPOOL-META"))
            .unwrap_or_default()
            .contains("last-timestamp.alpha:")
    });
    sigterm(d);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode(&spool) & 0o007,
        0,
        "spool directory {:o}",
        mode(&spool)
    );
    for p in tree(&spool) {
        let m = mode(&spool.join(&p));
        assert_eq!(m & 0o007, 0, "{p:?} is {m:o}");
        assert_eq!(m & 0o022, 0, "{p:?} is {m:o}: group or world writable");
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_second_daemon_on_one_spool_is_refused() {
    let node = PrivateNode::start(&[]);
    let work = tempdir();
    let spool = work.path().join("spool");
    let log = work.path().join("first.log");
    let first = daemon(&node.addr(), &spool, &log, &[]);
    wait_for("no lock file", &log, Duration::from_secs(10), || {
        spool.join("munin-asyncd.lock").exists()
    });
    let out = run(
        Command::new(our_asyncd())
            .args(["--host", &node.addr(), "--screen", "--spooldir"])
            .arg(&spool),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr());
    assert!(
        out.stderr()
            .contains("another munin-asyncd is already spooling into this directory"),
        "{}",
        out.stderr()
    );
    sigterm(first);
    // Once the first is gone, a new one starts.
    let log2 = work.path().join("second.log");
    let second = daemon(&node.addr(), &spool, &log2, &[]);
    thread::sleep(Duration::from_millis(500));
    let mut second = second;
    assert!(
        second.0.try_wait().unwrap().is_none(),
        "{}",
        fs::read_to_string(&log2).unwrap()
    );
    sigterm(second);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_master_cannot_make_munin_async_read_or_delete_outside_its_spool() {
    let strace = require("/usr/bin/strace", "strace");
    let work = tempdir();
    let spool = work.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let secret = work.path().join("secret");
    fs::write(&secret, "timestamp 1\nmultigraph secret\nSECRET.value 42\n").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = 86_400;
    let today = now - now % day;
    fs::write(
        spool.join(format!("munin-daemon.load.{today}.{day}")),
        format!("timestamp {now}\nmultigraph load\nload.value {now}:1\n"),
    )
    .unwrap();
    // An old file that --cleanup removes, and two symlinks out of the spool named like
    // spool files: one to read through, one old enough to be cleaned up.
    let old = today - 30 * day;
    fs::write(spool.join(format!("munin-daemon.gone.{old}.{day}")), "").unwrap();
    std::os::unix::fs::symlink(
        &secret,
        spool.join(format!("munin-daemon.evil.{today}.{day}")),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        &secret,
        spool.join(format!("munin-daemon.evil2.{old}.{day}")),
    )
    .unwrap();
    let session = format!(
        "cap multigraph spool\nlist ../..\nlist /etc\nnodes\nconfig ../../etc/passwd\n\
         fetch /etc/shadow\nconfig ../secret\nfetch evil\nconfig evil\nspoolfetch ../../secret\n\
         spoolfetch -1\nspoolfetch 0 ../secret\nspoolfetch 0\n{}\n\x00\x01\x02\nquit\n",
        "A".repeat(100_000)
    );
    let trace = work.path().join("trace");
    let out = run(
        Command::new(strace)
            .args(["-f", "-qq", "-e", "trace=%file", "-o"])
            .arg(&trace)
            .arg(our_async())
            .arg("--spooldir")
            .arg(&spool)
            .args(["--spoolfetch", "--cleanup", "--screen"]),
        session.as_bytes(),
        Duration::from_secs(30),
    );
    // The symlink named like an old spool file is refused by the cleanup, which says so
    // and exits 1 after the session.
    let err = out.stderr();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("1 files removed, 1 could not be removed"),
        "{err}"
    );
    let reply = out.stdout();
    assert!(reply.contains("load.value"), "{reply}");
    assert!(
        !reply.contains("SECRET") && !reply.contains("root:"),
        "{reply}"
    );

    let trace = fs::read_to_string(&trace).unwrap();
    // The trace is real: it shows the spool file read and the old file deleted.
    assert!(
        trace
            .lines()
            .any(|l| l.contains("open") && l.contains("/munin-daemon.load.")),
        "{trace}"
    );
    assert!(
        trace
            .lines()
            .any(|l| l.contains("unlink") && l.contains("/munin-daemon.gone.")),
        "{trace}"
    );
    let spool_s = spool.to_str().unwrap();
    let work_s = work.path().to_str().unwrap();
    let mut touched = Vec::new();
    for line in trace.lines() {
        // Every path in a system call: the first quoted argument of the file calls.
        let Some(start) = line.find('"') else {
            continue;
        };
        let Some(len) = line[start + 1..].find('"') else {
            continue;
        };
        let path = &line[start + 1..start + 1 + len];
        let call = line.split_whitespace().nth(1).unwrap_or("");
        if path.starts_with(work_s) && !path.starts_with(spool_s) {
            touched.push(line.to_string());
        }
        for bad in ["/etc/passwd", "/etc/shadow", "secret"] {
            if path.contains(bad) {
                touched.push(line.to_string());
            }
        }
        // The only files replaced are munin-async's own: the cursor for munin-asyncd's lag
        // graph and the record of the master's last replies, each from a temporary file of
        // its own beside it.
        let own = ["munin-async.cursor", "munin-async.pace"]
            .iter()
            .any(|name| {
                line.contains(&format!("rename(\"{spool_s}/.{name}."))
                    && line.contains(&format!("\"{spool_s}/{name}\")"))
            });
        if call.starts_with("rename") && own {
            continue;
        }
        if call.starts_with("unlink") || call.starts_with("rename") || call.starts_with("rmdir") {
            assert!(
                path.starts_with(spool_s) && path.contains("/munin-daemon.gone."),
                "deleted what it should not: {line}"
            );
        }
        // Files outside the spool are opened only for reading: the loader, locale data,
        // /proc and /dev/log.
        if (call.starts_with("open") || call.starts_with("creat"))
            && !path.starts_with(spool_s)
            && (line.contains("O_WRONLY") || line.contains("O_RDWR") || line.contains("O_CREAT"))
        {
            touched.push(line.to_string());
        }
    }
    assert!(touched.is_empty(), "{}", touched.join("\n"));
    // The old file went; both symlinks and the secret are still there.
    let names: BTreeSet<String> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".gone.")), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.contains(".evil")).count(),
        2,
        "{names:?}"
    );
    assert!(secret.exists());
}
