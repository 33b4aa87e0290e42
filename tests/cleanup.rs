//! Cleanup (`--cleanup`, `--cleanupandexit`): only interval files whose interval ended
//! more than interval_size × interval_keep ago go, and nothing that is not a spool file.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::harness::*;

const HOUR: u64 = 3600;

/// A spool with hourly intervals kept for 3 hours: files ending 5 h, 4 h ago (old), and
/// 2 h ago, the current hour (kept); plus things cleanup must never touch.
fn spool_with_old_files(dir: &Path) -> (Vec<String>, Vec<String>) {
    fs::write(
        dir.join("SPOOL-META"),
        "hostname:clean.example\ninterval_size:3600\ninterval_keep:3\n",
    )
    .unwrap();
    let current = now() - now() % HOUR;
    let name = |start: u64| format!("munin-daemon.load.{start}.3600");
    let old = vec![name(current - 6 * HOUR), name(current - 5 * HOUR)];
    let kept = vec![name(current - 3 * HOUR), name(current)];
    // Every file is written now, so its mtime is new: Perl's cleanup, which goes by mtime,
    // would keep the old ones; ours goes by the interval in the name.
    for f in old.iter().chain(&kept) {
        fs::write(
            dir.join(f),
            format!("timestamp {}\nload.value 1\n", current),
        )
        .unwrap();
    }
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), "keep me").unwrap();
    let untouchable = [
        "munin-daemon.list".to_string(),
        "SPOOL-META".to_string(),
        "notes.txt".to_string(),
        format!("munin-daemon.load.{}.3600.bak", current - 9 * HOUR),
        format!("munin-daemon.load-x.{}.3600", current - 9 * HOUR),
        format!("munin-daemon.link.{}.3600", current - 9 * HOUR),
    ];
    for f in &untouchable[..5] {
        if !dir.join(f).exists() {
            fs::write(dir.join(f), "x").unwrap();
        }
    }
    symlink(outside.join("precious"), dir.join(&untouchable[5])).unwrap();
    (old, kept.into_iter().chain(untouchable).collect())
}

#[test]
fn cleanupandexit_removes_only_expired_interval_files() {
    let spool = tempdir();
    let (old, kept) = spool_with_old_files(spool.path());
    let out = ours(spool.path(), &["--cleanupandexit", "-v"], "");
    // The symlink named like an old spool file is refused: exit 1, and it says so.
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr());
    assert!(
        out.stderr().contains("not a regular file, not deleted"),
        "{}",
        out.stderr()
    );
    assert!(out.stdout.is_empty(), "no session with --cleanupandexit");
    for f in &old {
        assert!(!spool.path().join(f).exists(), "{f} should be gone");
    }
    for f in &kept {
        assert!(
            spool.path().join(f).symlink_metadata().is_ok(),
            "{f} should be kept"
        );
    }
    assert_eq!(
        fs::read_to_string(spool.path().join("outside/precious")).unwrap(),
        "keep me"
    );
}

#[test]
fn cleanup_after_a_session() {
    let spool = tempdir();
    let (old, _) = spool_with_old_files(spool.path());
    fs::remove_file(spool.path().join(format!(
        "munin-daemon.link.{}.3600",
        now() - now() % HOUR - 9 * HOUR
    )))
    .unwrap();
    let out = ours(spool.path(), &["--cleanup"], "list\nquit\n");
    assert!(out.status.success(), "{}", out.stderr());
    assert_eq!(
        after_greeting(&out.stdout()),
        "load\n",
        "the session comes first"
    );
    for f in &old {
        assert!(!spool.path().join(f).exists(), "{f} should be gone");
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn an_unreadable_spool_file_is_skipped_and_logged_and_the_rest_served() {
    require_root();
    let spool = tempdir();
    let t = 1_795_500_000u64;
    perl_spool(
        spool.path(),
        86400,
        "n",
        &[
            Sample {
                time: t,
                plugin: "a",
                lines: lines(&["a.value 1"]),
            },
            Sample {
                time: t,
                plugin: "b",
                lines: lines(&["b.value 2"]),
            },
        ],
    );
    let b = spool
        .path()
        .join(format!("munin-daemon.b.{}.86400", t - t % 86400));
    fs::set_permissions(&b, fs::Permissions::from_mode(0o000)).unwrap();
    let out = ours_as_nobody(
        &[
            "-s".as_ref(),
            spool.path().as_os_str(),
            "--spoolfetch".as_ref(),
            "--screen".as_ref(),
        ],
        b"spoolfetch 0\n",
    );
    assert!(out.status.success(), "{}", out.stderr());
    assert_eq!(
        after_greeting(&out.stdout()),
        format!("multigraph a\na.value {t}:1\n.\n")
    );
    assert!(
        out.stderr().contains(&b.display().to_string())
            && out.stderr().contains("Permission denied"),
        "{}",
        out.stderr()
    );
}
