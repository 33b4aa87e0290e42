//! Test harness: temporary spools, the real programs (ours and Debian's), bounded waits.
//!
//! Every component a test needs is checked with [`require`], which fails the test with
//! the package to install: a missing component never makes a test pass silently.

#![allow(dead_code)]

mod daemon;
mod fake_node;
mod master;
mod node;
mod programs;
mod spools;

pub use daemon::*;
pub use fake_node::*;
pub use master::*;
pub use node::*;
pub use programs::*;
pub use spools::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tempfile::TempDir;

/// Debian's Perl munin-async, the reference.
pub const PERL_ASYNC: &str = "/usr/share/munin/munin-async";
/// Debian's Perl munin-asyncd, the reference.
pub const PERL_ASYNCD: &str = "/usr/share/munin/munin-asyncd";
/// Debian's munin-update.
pub const MUNIN_UPDATE: &str = "/usr/share/munin/munin-update";

/// Fails the test unless `path` exists, naming the Debian package that provides it.
pub fn require(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: install Debian's {package} (the README's test command does)"
    );
    p
}

/// Fails the test unless it runs as root (sshd, su and mount namespaces need it).
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "this test needs root, as the README's test command runs"
    );
}

/// Our munin-async binary.
pub fn our_async() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_munin-async"))
}

/// A temporary directory that other users (munin, munin-async) can enter.
pub fn tempdir() -> TempDir {
    let d = tempfile::Builder::new()
        .prefix("munin-async-test.")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A finished process.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs a command with `input` on stdin; fails the test if it takes longer than `limit`.
pub fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        // The program may stop reading early (quit); that is not an error here.
        let _ = stdin.write_all(&input);
    });
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(r) => r.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{:?} did not finish within {limit:?}", cmd.get_program());
        }
    };
    let _ = writer.join();
    Output {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Lines from a slice of string literals.
pub fn lines(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

/// The body of a reply: the output without the greeting line.
pub fn after_greeting(out: &str) -> &str {
    out.split_once('\n').map_or("", |(_, rest)| rest)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `done` holds, looking every 50 ms; after `limit`, fails the test with what
/// `what` says. The one way tests wait for something.
pub fn eventually(limit: Duration, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "after {limit:?}: {}", what());
        thread::sleep(Duration::from_millis(50));
    }
}

/// A running process of ours, killed on drop.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `child` exits and returns its status; after `limit`, fails the test with
/// `what`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration, what: &str) -> ExitStatus {
    let mut status = None;
    eventually(
        limit,
        || what.to_string(),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    status.unwrap()
}

/// Waits until something listens on 127.0.0.1:`port`; after `limit`, fails the test with
/// what `what` says (a server's log, say).
pub fn wait_listening(port: u16, limit: Duration, what: impl Fn() -> String) {
    eventually(limit, what, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// The system clock, in seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
