//! End to end: Debian's munin-update ingests what our munin-async serves, over a `cmd://`
//! address and over ssh with the forced command of the seed document; rrdtool reads the
//! values back.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;

const STEP: u64 = 300;
const SAMPLES: u64 = 12;
/// The DERIVE field grows by this much per second.
const RATE: u64 = 10;

struct Master {
    dir: TempDir,
    /// Time of the newest sample.
    last: u64,
}

impl Master {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A spool of the last hour (munin-update refuses nothing recent), our binary where the
/// munin and munin-async users can run it, and munin-update's directories.
fn setup() -> Master {
    require_root();
    require(MUNIN_UPDATE, "munin");
    require("/usr/bin/rrdtool", "rrdtool");
    let dir = tempdir();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last = now - now % STEP;
    let mut samples = Vec::new();
    for k in 0..SAMPLES {
        let t = last - (SAMPLES - 1 - k) * STEP;
        samples.push(Sample {
            time: t,
            plugin: "load",
            lines: lines(&[
                "graph_title Load average",
                "graph_vlabel load",
                "load.label load",
            ])
            .into_iter()
            .chain([format!("load.value {k}.5")])
            .collect(),
        });
        samples.push(Sample {
            time: t,
            plugin: "traffic",
            lines: lines(&[
                "graph_title Traffic",
                "down.label received",
                "down.type DERIVE",
                "down.min 0",
            ])
            .into_iter()
            .chain([format!("down.value {}", t * RATE)])
            .collect(),
        });
        samples.push(Sample {
            time: t,
            plugin: "mg",
            lines: lines(&["multigraph mg_root", "graph_title Root", "r.label r"])
                .into_iter()
                .chain([
                    format!("r.value {k}"),
                    "multigraph mg_root.child".into(),
                    "graph_title Child".into(),
                    "c.label c".into(),
                    format!("c.value {}", k * 2),
                ])
                .collect(),
        });
    }
    let spool = dir.path().join("spool");
    perl_spool(&spool, 86400, "node1", &samples);
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(our_async(), bin.join("munin-async")).unwrap();
    fs::set_permissions(bin.join("munin-async"), fs::Permissions::from_mode(0o755)).unwrap();
    master_dirs(dir.path());
    Master { dir, last }
}

/// Writes munin.conf with one host at `address` and runs munin-update as munin.
fn munin_update(m: &Master, global: &str, address: &str) -> Output {
    munin_update_in(m.dir.path(), global, address)
}

fn check_rrds(m: &Master) {
    let db = m.path("db/e2e");
    assert_eq!(
        last_update(&db.join("node1-load-load-g.rrd")),
        (m.last, (SAMPLES - 1) as f64 + 0.5)
    );
    assert_eq!(
        last_update(&db.join("node1-mg_root-r-g.rrd")),
        (m.last, (SAMPLES - 1) as f64)
    );
    assert_eq!(
        last_update(&db.join("node1-mg_root-child-c-g.rrd")),
        (m.last, 2.0 * (SAMPLES - 1) as f64)
    );
    let derive = db.join("node1-traffic-down-d.rrd");
    assert_eq!(last_update(&derive).0, m.last);
    // Each sample carried its own time, so every 5-minute step shows the true rate.
    let start = (m.last - 6 * STEP).to_string();
    let end = m.last.to_string();
    let text = rrdtool(&[
        "fetch",
        derive.to_str().unwrap(),
        "AVERAGE",
        "-r",
        "300",
        "-s",
        &start,
        "-e",
        &end,
    ]);
    let rates = fetched_values(&text);
    assert!(rates.len() >= 5, "too few rows with data:\n{text}");
    for r in rates {
        assert!(
            (r - RATE as f64).abs() < 1e-6,
            "rate {r}, expected {RATE}:\n{text}"
        );
    }
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn munin_update_ingests_over_cmd() {
    let m = setup();
    let address = format!(
        "cmd://{} --spooldir {} --spoolfetch",
        m.path("bin/munin-async").display(),
        m.path("spool").display()
    );
    let out = munin_update(&m, "", &address);
    assert!(
        out.status.success(),
        "munin-update failed:\n{}",
        out.stderr()
    );
    check_rrds(&m);
    // A second run finds nothing new and changes nothing.
    let out = munin_update(&m, "", &address);
    assert!(out.status.success(), "{}", out.stderr());
    let log = fs::read_to_string(m.path("log/munin-update.log")).unwrap();
    assert!(
        log.contains("didn't send any data"),
        "the second run should find no new data:\n{log}"
    );
    check_rrds(&m);
}

/// sshd on a free loopback port, stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> String {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen");
    fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// The seed's deployment: the master's key in authorized_keys with the forced command and
/// every hardening option; sshd that lets munin-async in with that key only.
fn start_sshd(m: &Master) -> Sshd {
    require("/usr/sbin/sshd", "openssh-server");
    require("/usr/bin/ssh", "openssh-client");
    let ssh = m.path("ssh");
    fs::create_dir(&ssh).unwrap();
    keygen(&ssh.join("host_key"));
    let client = keygen(&ssh.join("client_key"));
    chown("munin", &ssh.join("client_key"));
    // The line munin-async prints for the key, as a sysadmin would install it.
    let out = run(
        Command::new(m.path("bin/munin-async"))
            .arg("--spooldir")
            .arg(m.path("spool"))
            .args(["--from", "127.0.0.1", "--authorized-keys", "-"]),
        client.as_bytes(),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", out.stderr());
    let line = out.stdout();
    assert_eq!(
        line,
        format!(
            "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc,\
             from=\"127.0.0.1\",command=\"{} --spooldir {} --spoolfetch\" {client}\n",
            m.path("bin/munin-async").display(),
            m.path("spool").display()
        )
    );
    fs::write(ssh.join("authorized_keys"), line).unwrap();
    let port = free_port();
    fs::write(
        ssh.join("sshd_config"),
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {s}/host_key\nAuthorizedKeysFile {s}/authorized_keys\n\
             UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AllowUsers munin-async\nPidFile {s}/sshd.pid\nLogLevel VERBOSE\n",
            s = ssh.display()
        ),
    )
    .unwrap();
    fs::create_dir_all("/run/sshd").unwrap();
    // Debian creates munin-async with a locked password, which sshd refuses without PAM.
    let ok = Command::new("usermod")
        .args(["-p", "*", "munin-async"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "usermod -p '*' munin-async");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(ssh.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(fs::File::create(ssh.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let sshd = Sshd { child, port };
    wait_listening(port, Duration::from_secs(20), || {
        format!(
            "sshd did not start: {}",
            fs::read_to_string(ssh.join("sshd.log")).unwrap_or_default()
        )
    });
    sshd
}

fn ssh_options(m: &Master) -> String {
    format!(
        "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
        m.path("ssh/client_key").display()
    )
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn munin_update_ingests_over_ssh_with_the_forced_command() {
    let m = setup();
    let sshd = start_sshd(&m);
    let out = munin_update(
        &m,
        &format!("ssh_options {}", ssh_options(&m)),
        &format!("ssh://munin-async@127.0.0.1:{}", sshd.port),
    );
    assert!(
        out.status.success(),
        "munin-update failed:\n{}\nsshd: {}",
        out.stderr(),
        fs::read_to_string(m.path("ssh/sshd.log")).unwrap_or_default()
    );
    check_rrds(&m);
}

#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn a_shell_command_over_the_key_gets_munin_async_never_a_shell() {
    let m = setup();
    let sshd = start_sshd(&m);
    for remote in [
        "echo PWNED; id",
        "/bin/sh -c 'touch /tmp/pwned-by-test'",
        "--spooldir /etc --cleanupandexit",
    ] {
        let mut cmd = Command::new("ssh");
        cmd.args(ssh_options(&m).split(' ')).args([
            "-p",
            &sshd.port.to_string(),
            "--",
            "munin-async@127.0.0.1",
            remote,
        ]);
        let out = run(&mut cmd, b"list\nquit\n", Duration::from_secs(60));
        let text = out.stdout();
        assert!(
            text.starts_with("# munin node at node1\n"),
            "{remote}: {text}\n{}",
            out.stderr()
        );
        assert_eq!(after_greeting(&text), "load mg traffic\n", "{remote}");
        assert!(
            !text.contains("PWNED") && !text.contains("uid="),
            "{remote}: {text}"
        );
    }
    assert!(!Path::new("/tmp/pwned-by-test").exists());
}
