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

/// Twelve 5-minute samples up to `last` of three plugins: a GAUGE, a DERIVE, a multigraph.
fn samples(last: u64) -> Vec<Sample<'static>> {
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
    samples
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
    let samples = samples(last);
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
    check_host_rrds(m, "e2e", "node1");
}

/// Every RRD of host `host` in group `group` holds what [`samples`] spooled.
fn check_host_rrds(m: &Master, group: &str, host: &str) {
    let db = m.path(&format!("db/{group}"));
    let rrd = |name: &str| db.join(format!("{host}-{name}"));
    assert_eq!(
        last_update(&rrd("load-load-g.rrd")),
        (m.last, (SAMPLES - 1) as f64 + 0.5)
    );
    assert_eq!(
        last_update(&rrd("mg_root-r-g.rrd")),
        (m.last, (SAMPLES - 1) as f64)
    );
    assert_eq!(
        last_update(&rrd("mg_root-child-c-g.rrd")),
        (m.last, 2.0 * (SAMPLES - 1) as f64)
    );
    let derive = rrd("traffic-down-d.rrd");
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
    let spool = m.path("spool");
    let (sshd, line) = start_sshd_with(m, &["--spooldir".as_ref(), spool.as_os_str()]);
    assert_eq!(
        line,
        format!(
            "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc,\
             from=\"127.0.0.1\",command=\"{} --spooldir {} --spoolfetch\" {}\n",
            m.path("bin/munin-async").display(),
            spool.display(),
            fs::read_to_string(m.path("ssh/client_key.pub"))
                .unwrap()
                .trim()
        )
    );
    sshd
}

/// sshd with the one key the master has, its authorized_keys line the one munin-async
/// prints with `args`; gives that line too.
fn start_sshd_with(m: &Master, args: &[&std::ffi::OsStr]) -> (Sshd, String) {
    require("/usr/sbin/sshd", "openssh-server");
    require("/usr/bin/ssh", "openssh-client");
    let ssh = m.path("ssh");
    fs::create_dir(&ssh).unwrap();
    keygen(&ssh.join("host_key"));
    let client = keygen(&ssh.join("client_key"));
    chown("munin", &ssh.join("client_key"));
    // The line munin-async prints for the key, as a sysadmin would install it.
    let out = run(
        Command::new(m.path("bin/munin-async")).args(args).args([
            "--from",
            "127.0.0.1",
            "--authorized-keys",
            "-",
        ]),
        client.as_bytes(),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", out.stderr());
    let line = out.stdout();
    fs::write(ssh.join("authorized_keys"), &line).unwrap();
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
    (sshd, line)
}

fn ssh_options(m: &Master) -> String {
    format!(
        "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
        m.path("ssh/client_key").display()
    )
}

/// `ssh` with the master's key to munin-async@127.0.0.1 on `sshd`, sending `remote` as the
/// command (after `--`, so one starting with `-` is a command, not an option), `input`
/// on its stdin.
fn ssh_to(m: &Master, sshd: &Sshd, remote: &str, input: &[u8]) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.args(ssh_options(m).split(' ')).args([
        "-p",
        &sshd.port.to_string(),
        "--",
        "munin-async@127.0.0.1",
        remote,
    ]);
    run(&mut cmd, input, Duration::from_secs(60))
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
        let out = ssh_to(&m, &sshd, remote, b"list\nquit\n");
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

/// Every file under `dir`, with what `f` gives of it.
fn each_file<T>(dir: &Path, f: impl Fn(&Path, &fs::Metadata) -> T) -> Vec<(PathBuf, T)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), f(&e.path(), &meta)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Each file's last access, in seconds (stat only: reading would move it).
fn atimes(dir: &Path) -> Vec<(PathBuf, i64)> {
    use std::os::unix::fs::MetadataExt;
    each_file(dir, |_, m| m.atime())
}

/// Each file's contents.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    each_file(dir, |p, _| fs::read(p).unwrap_or_default())
}

/// The seed's fanout served whole: one spooling host, one key, one forced command
/// (`--node-from-ssh --config`), and Debian's munin-update fetching three nodes through it
/// (two sections of a munin-asyncd configuration file, one SNMP virtual node under the
/// first), each named the way a Munin 2.0 master can: the address's path, Perl's
/// per-node command line, words after the address. Every RRD is right. Then hostile
/// commands through the same key: each refused with one `#` line and a failure, and
/// nothing outside the spool root read or changed.
#[test]
#[ignore = "needs root and Debian's munin, rrdtool, sshd or strace: the README's test command runs it"]
fn one_key_serves_every_node_of_a_spooling_host_and_nothing_else() {
    let m = setup();
    let root = m.path("site");
    let (web1, db1, switch1) = (
        root.join("web1"),
        root.join("db1"),
        root.join("web1/switch1"),
    );
    let samples = samples(m.last);
    perl_spool(&web1, 86400, "web1.example", &samples);
    perl_spool(&db1, 86400, "db1.example", &samples);
    perl_spool(&switch1, 86400, "switch1.example", &samples);
    // Outside the root: a spool the master must never reach, also through a symlink in it.
    let outside = m.path("outside");
    perl_spool(&outside, 86400, "secret.example", &samples);
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let conf = m.path("munin-asyncd.conf");
    fs::write(
        &conf,
        format!(
            "[web1]\nhost 127.0.0.1:4949\nspooldir {}\n\n[db1]\nhost 127.0.0.2:4949\nspooldir {}\n",
            web1.display(),
            db1.display()
        ),
    )
    .unwrap();
    for p in [&root, &outside] {
        chown_tree("munin-async", p);
    }
    let kept = contents(&outside);
    // Reads move atime on from a day-old value (relatime): a year-2000 atime shows any.
    let touched = Command::new("find")
        .arg(&outside)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-a",
            "-d",
            "2000-01-01",
            "{}",
            "+",
        ])
        .status()
        .unwrap()
        .success();
    assert!(touched);
    let untouched = atimes(&outside);
    assert!(
        untouched.iter().all(|(_, t)| *t < 1_000_000_000),
        "{untouched:?}"
    );
    let (sshd, line) = start_sshd_with(
        &m,
        &[
            "--spooldir".as_ref(),
            root.as_os_str(),
            "--node-from-ssh".as_ref(),
            "--config".as_ref(),
            conf.as_os_str(),
        ],
    );
    assert!(
        line.contains(&format!(
            "command=\"{} --spooldir {} --node-from-ssh --config {} --spoolfetch\"",
            m.path("bin/munin-async").display(),
            root.display(),
            conf.display()
        )),
        "{line}"
    );
    let at = format!("ssh://munin-async@127.0.0.1:{}", sshd.port);
    let hosts = format!(
        "[site;web1]\n    address {at}/web1\n\
         [site;db1]\n    address {at}/usr/share/munin/munin-async --spoolfetch --spooldir {}\n\
         [site;switch1]\n    address {at} switch1\n",
        db1.display()
    );
    let out = munin_update_hosts_in(
        m.dir.path(),
        &format!("ssh_options {}", ssh_options(&m)),
        &hosts,
    );
    assert!(
        out.status.success(),
        "munin-update failed:\n{}\nsshd: {}",
        out.stderr(),
        fs::read_to_string(m.path("ssh/sshd.log")).unwrap_or_default()
    );
    for host in ["web1", "db1", "switch1"] {
        check_host_rrds(&m, "site", host);
    }

    let long = "n".repeat(300);
    let hostile = [
        "/../outside".to_string(),
        "../outside".into(),
        "escape".into(),
        "/escape".into(),
        format!("--spooldir {}", outside.display()),
        format!("--spooldir {}", root.join("escape").display()),
        format!("--spooldir {}/web1/../../outside", root.display()),
        format!(
            "munin-async --cleanupandexit --spooldir {}",
            outside.display()
        ),
        format!("--spoolfetch --hostname evil --spooldir {}", web1.display()),
        "web1; touch /tmp/pwned-by-site-test".into(),
        "$(touch /tmp/pwned-by-site-test)".into(),
        "/bin/sh -c 'touch /tmp/pwned-by-site-test'".into(),
        "a/b".into(),
        long,
        "nothing-here".into(),
    ];
    for remote in &hostile {
        let out = ssh_to(&m, &sshd, remote, b"list\nspoolfetch 0\nquit\n");
        let text = out.stdout();
        assert!(
            text.starts_with("# munin-async: refused: ") && text.lines().count() == 1,
            "{remote}: {text}\n{}",
            out.stderr()
        );
        assert!(!out.status.success(), "{remote}: exit {:?}", out.status);
    }
    assert!(!Path::new("/tmp/pwned-by-site-test").exists());
    assert_eq!(
        atimes(&outside),
        untouched,
        "a file outside the root was read"
    );
    assert!(
        contents(&outside) == kept,
        "a file outside the root was changed"
    );
    // The nodes it serves are still whole after the refusals (no cleanup ran).
    let out = ssh_to(&m, &sshd, "/switch1", b"quit\n");
    assert_eq!(
        out.stdout(),
        "# munin node at switch1.example\n",
        "{}",
        out.stderr()
    );
}

fn chown_tree(user: &str, path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{user}:")])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown -R {user} {}", path.display());
}
