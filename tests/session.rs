//! The munin-async session: protocol answers and bad input, on spools written by Debian's
//! Perl SpoolWriter.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

const T0: u64 = 1_795_500_000;

/// A spool with a plain plugin, a multigraph plugin and a name that needs sanitising.
fn fixture() -> TempDir {
    let dir = tempdir();
    let mut samples = Vec::new();
    for i in 0..4u64 {
        let t = T0 + i * 300;
        samples.push(Sample {
            time: t,
            plugin: "load",
            lines: vec![
                "graph_title Load average".into(),
                "load.label load".into(),
                format!("load.value 0.{i}"),
            ],
        });
        samples.push(Sample {
            time: t,
            plugin: "if_eth0.100",
            lines: vec![
                "multigraph if_eth0_100".into(),
                "graph_title Traffic".into(),
                "down.label received".into(),
                "down.type DERIVE".into(),
                format!("down.value {}", i * 1000),
                "multigraph if_eth0_100.errors".into(),
                "graph_title Errors".into(),
                "err.label errors".into(),
                "err.value U".into(),
            ],
        });
    }
    classic_spool(dir.path(), 3600, "node1.example.org", &samples);
    dir
}

#[test]
fn greeting_cap_list_nodes_version_quit() {
    let spool = fixture();
    let out = ours(
        spool.path(),
        &["--spoolfetch"],
        "cap multigraph dirtyconfig\nlist\nlist othername\nnodes\nversion\nquit\nlist\n",
    );
    assert!(out.status.success(), "{}", out.stderr());
    let text = out.stdout();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got[0], "# munin node at node1.example.org");
    assert_eq!(got[1], "cap multigraph spool");
    assert_eq!(got[2], "if_eth0_100 load");
    assert_eq!(
        got[3], "if_eth0_100 load",
        "the node argument is ignored, as in Perl"
    );
    assert_eq!(got[4..6], ["node1.example.org", "."]);
    assert!(
        got[6].starts_with("munins node on node1.example.org version: "),
        "{}",
        got[6]
    );
    assert_eq!(got.len(), 7, "nothing after quit: {text}");
}

#[test]
fn without_spoolfetch_the_spool_capability_is_not_announced() {
    let spool = fixture();
    let out = ours(spool.path(), &[], "cap multigraph dirtyconfig\n");
    assert_eq!(after_greeting(&out.stdout()), "cap multigraph\n");
}

#[test]
fn hostname_option_overrides_spool_meta_and_system_name_is_the_fallback() {
    let spool = fixture();
    let out = ours(spool.path(), &["--hostname", "other.example"], "quit\n");
    assert_eq!(out.stdout(), "# munin node at other.example\n");
    fs::remove_file(spool.path().join("SPOOL-META")).unwrap();
    let out = ours(spool.path(), &[], "");
    let system = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(out.stdout(), format!("# munin node at {}\n", system.trim()));
}

#[test]
fn config_and_fetch_answer_from_the_newest_record() {
    let spool = fixture();
    let last = T0 + 900;
    let out = ours(
        spool.path(),
        &[],
        "config load\nfetch load\nconfig if_eth0.100\nfetch if_eth0_100\nfetch nosuch\nconfig\n",
    );
    assert_eq!(
        after_greeting(&out.stdout()),
        format!(
            "graph_title Load average\nload.label load\n.\n\
             load.value {last}:0.3\n.\n\
             multigraph if_eth0_100\ngraph_title Traffic\ndown.label received\ndown.type DERIVE\n\
             multigraph if_eth0_100.errors\ngraph_title Errors\nerr.label errors\n.\n\
             multigraph if_eth0_100\ndown.value {last}:3000\nmultigraph if_eth0_100.errors\nerr.value {last}:U\n.\n\
             # Unknown service\n.\n\
             # config needs a plugin name\n.\n"
        )
    );
}

#[test]
fn spoolfetch_last_seconds() {
    let spool = fixture();
    // Everything is older than an hour ago from now: `-3600` sends nothing; a window
    // reaching back to T0 sends the last three samples.
    let out = ours(spool.path(), &["--spoolfetch"], "spoolfetch -3600\n");
    assert_eq!(after_greeting(&out.stdout()), ".\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = ours(
        spool.path(),
        &["--spoolfetch"],
        format!("spoolfetch -{}\n", now - T0),
    );
    let body = out.stdout();
    assert!(!body.contains(&format!("load.value {T0}:")), "{body}");
    assert!(
        body.contains(&format!("load.value {}:0.1", T0 + 300)),
        "{body}"
    );
}

#[test]
fn bad_commands_get_a_comment_and_the_session_goes_on() {
    let spool = fixture();
    let long = "x".repeat(70 * 1024);
    let mut input = format!("{long}\n").into_bytes();
    input.extend_from_slice(b"\x00\xff garbage\nspoolfetch abc\nspoolfetch 99999999999999999999999\nspoolfetch\nlisting\n\nlist\n");
    let out = ours(spool.path(), &[], &input);
    assert!(out.status.success());
    assert_eq!(
        after_greeting(&out.stdout()),
        "# Line too long (over 65536 bytes); ignored\n\
         # Unknown command. Try cap, list, nodes, config, fetch, spoolfetch, version or quit\n\
         # spoolfetch needs a timestamp (seconds since the epoch) or -SECONDS, got \"abc\"\n.\n\
         # spoolfetch needs a timestamp (seconds since the epoch) or -SECONDS, got \"99999999999999999999999\"\n.\n\
         # spoolfetch needs a timestamp (seconds since the epoch) or -SECONDS, got \"\"\n.\n\
         # Unknown command. Try cap, list, nodes, config, fetch, spoolfetch, version or quit\n\
         # Unknown command. Try cap, list, nodes, config, fetch, spoolfetch, version or quit\n\
         if_eth0_100 load\n"
    );
}

#[test]
fn end_of_input_in_mid_line_ends_quietly() {
    let spool = fixture();
    let out = ours(spool.path(), &["-v"], "list\nspoolfe");
    assert!(out.status.success());
    assert_eq!(after_greeting(&out.stdout()), "if_eth0_100 load\n");
    assert!(
        out.stderr().contains("input ended in mid-line"),
        "{}",
        out.stderr()
    );
}

#[test]
fn unusable_spool_directories_fail_with_one_clear_line_and_nothing_on_stdout() {
    let dir = tempdir();
    let missing = dir.path().join("missing");
    let plain = dir.path().join("plain");
    fs::write(&plain, "x").unwrap();
    for (path, what) in [(&missing, "does not exist"), (&plain, "is not a directory")] {
        let out = run(
            Command::new(our_async()).arg("-s").arg(path),
            b"list\n",
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "{}", out.stdout());
        let err = out.stderr();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(what) && err.contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn unreadable_spool_directory_as_an_unprivileged_user() {
    require_root();
    let spool = fixture();
    fs::set_permissions(spool.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let out = ours_as_nobody(&["-s".as_ref(), spool.path().as_os_str()], b"list\n");
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr());
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr().contains("Permission denied"),
        "{}",
        out.stderr()
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--frobnicate"][..],
        &["--hostname", "two words"],
        &["--catchup-window", "x"],
    ] {
        let out = run(
            Command::new(our_async()).args(args),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr());
        assert!(out.stdout.is_empty());
    }
    let out = run(
        Command::new(our_async()).arg("--help"),
        b"",
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    for opt in [
        "--spooldir",
        "--hostname",
        "--cleanup",
        "--cleanupandexit",
        "--spoolfetch",
        "--vectorfetch",
        "--verbose",
        "--debug",
        "--screen",
        "--catchup-window",
        "--version",
    ] {
        assert!(out.stdout().contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn junk_in_spool_meta_and_spool_files_is_skipped_and_logged() {
    let spool = fixture();
    fs::write(
        spool.path().join("SPOOL-META"),
        b"\xff\xfe junk\ninterval_size:banana\nhostname:has space\n",
    )
    .unwrap();
    let junk = spool
        .path()
        .join(format!("munin-daemon.junk.{}.3600", T0 - T0 % 3600));
    fs::write(
        &junk,
        b"\x00\x01binary garbage\ntimestamp 99999999999999999999999\nx.value 1\n",
    )
    .unwrap();
    let out = ours(spool.path(), &["--spoolfetch"], "spoolfetch 0\n");
    assert!(out.status.success());
    let body = out.stdout();
    assert!(body.contains("load.value"), "{body}");
    assert!(
        !body.contains("x.value") && !body.contains("binary"),
        "{body}"
    );
    let err = out.stderr();
    assert!(err.contains("SPOOL-META: unusable hostname"), "{err}");
    assert!(
        err.contains(&junk.display().to_string()) && err.contains("skipped 2 damaged part(s)"),
        "{err}"
    );
}

#[test]
fn a_master_that_hangs_up_mid_reply_ends_the_session_quietly() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    let spool = tempdir();
    let samples: Vec<Sample> = (0..2000u64)
        .map(|i| Sample {
            time: T0 + i * 60,
            plugin: "big",
            lines: (0..20).map(|f| format!("f{f}.value {i}")).collect(),
        })
        .collect();
    classic_spool(spool.path(), 86400, "n", &samples);
    let mut child = Command::new(our_async())
        .arg("-s")
        .arg(spool.path())
        .args(["--spoolfetch", "--screen"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut greeting = String::new();
    stdout.read_line(&mut greeting).unwrap();
    stdin.write_all(b"spoolfetch 0\n").unwrap();
    let mut some = [0u8; 4096];
    stdout.read_exact(&mut some).unwrap();
    drop(stdout);
    drop(stdin);
    let status = wait_exit(
        &mut child,
        Duration::from_secs(30),
        "munin-async did not exit",
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert_eq!(err, "", "nothing logged below --verbose");
}

#[test]
fn nothing_newer_than_complete_until_is_served() {
    let spool = fixture();
    let meta = fs::read_to_string(spool.path().join("SPOOL-META")).unwrap();
    fs::write(
        spool.path().join("SPOOL-META"),
        format!("{meta}complete_until:{}\n", T0 + 300),
    )
    .unwrap();
    let out = ours(spool.path(), &["--spoolfetch"], "spoolfetch 0\n");
    let body = out.stdout();
    assert!(
        body.contains(&format!("load.value {}:0.1", T0 + 300)),
        "{body}"
    );
    assert!(
        !body.contains(&format!("{}:", T0 + 600)),
        "a sample after complete_until was sent: {body}"
    );
}
