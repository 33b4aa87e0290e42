//! Test harness: temporary spools, the real programs (ours and Debian's), bounded waits.
//!
//! Every component a test needs is checked with [`require`], which fails the test with
//! the package to install: a missing component never makes a test pass silently.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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

/// Runs our munin-async on `spool` with extra arguments and the given input.
pub fn ours(spool: &Path, args: &[&str], input: impl AsRef<[u8]>) -> Output {
    run(
        Command::new(our_async())
            .arg("--spooldir")
            .arg(spool)
            .args(args)
            .arg("--screen"),
        input.as_ref(),
        Duration::from_secs(60),
    )
}

/// Runs Debian's Perl munin-async on `spool`.
pub fn perls(spool: &Path, args: &[&str], input: impl AsRef<[u8]>) -> Output {
    require(PERL_ASYNC, "munin-async");
    run(
        Command::new("perl")
            .arg(PERL_ASYNC)
            .arg("--spooldir")
            .arg(spool)
            .args(args),
        input.as_ref(),
        Duration::from_secs(120),
    )
}

/// One sample for Perl's SpoolWriter: time, plugin name, output lines.
pub struct Sample<'a> {
    pub time: u64,
    pub plugin: &'a str,
    pub lines: Vec<String>,
}

/// Writes samples into `spool` with Debian's own `Munin::Node::SpoolWriter`.
pub fn perl_spool(spool: &Path, interval: u64, hostname: &str, samples: &[Sample]) {
    require("/usr/share/perl5/Munin/Node/SpoolWriter.pm", "munin-async");
    fs::create_dir_all(spool).unwrap();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let mut script = format!(
        "use Munin::Node::SpoolWriter;\nmy $w = Munin::Node::SpoolWriter->new(spooldir => '{}', interval_size => {interval}, hostname => '{hostname}');\n",
        spool.display()
    );
    for s in samples {
        let lines: Vec<String> = s
            .lines
            .iter()
            .map(|l| format!("pack('H*', '{}')", hex(l)))
            .collect();
        script += &format!(
            "$w->write({}, pack('H*', '{}'), [{}]);\n",
            s.time,
            hex(s.plugin),
            lines.join(", ")
        );
    }
    let out = run(
        &mut Command::new("perl"),
        script.as_bytes(),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "perl SpoolWriter failed: {}",
        out.stderr()
    );
}

/// Writes samples in the classic format exactly as Debian's `Munin::Node::SpoolWriter`
/// does (the name sanitised, `timestamp T`, `multigraph NAME` unless the output starts
/// with one, every line but blank and `.` ones), and its SPOOL-META keys. For the tests
/// that must run without Debian's munin; `differential.rs` checks it against Perl's writer
/// byte for byte.
pub fn classic_spool(spool: &Path, interval: u64, hostname: &str, samples: &[Sample]) {
    fs::create_dir_all(spool).unwrap();
    let meta_path = spool.join("SPOOL-META");
    let mut meta: Vec<(String, String)> = fs::read_to_string(&meta_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("interval_size", interval.to_string()),
        ("interval_keep", "7".to_string()),
        ("hostname", hostname.to_string()),
    ] {
        meta.retain(|(key, _)| key != k);
        meta.push((k.to_string(), v));
    }
    let text: String = meta.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    fs::write(&meta_path, text).unwrap();
    for s in samples {
        let service = munin_async::spool::names::sanitise(s.plugin.as_bytes());
        let start = s.time - s.time % interval;
        let path = spool.join(format!("munin-daemon.{service}.{start}.{interval}"));
        let mut out = format!("timestamp {}\n", s.time);
        if !s.lines.first().is_some_and(|l| l.starts_with("multigraph")) {
            out += &format!("multigraph {service}\n");
        }
        for l in s.lines.iter().filter(|l| !l.is_empty() && *l != ".") {
            out += l;
            out.push('\n');
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(out.as_bytes()).unwrap();
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

/// Our munin-asyncd binary.
pub fn our_asyncd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_munin-asyncd"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's munin-node, private: on a loopback port, with only the given plugins (its
/// plugin directory bind-mounted in a mount namespace of its own). Stopped on drop.
pub struct PrivateNode {
    child: std::process::Child,
    pub port: u16,
    pub dir: TempDir,
}

impl PrivateNode {
    /// Starts munin-node with `plugins` (name, shell script) and waits until it answers.
    pub fn start(plugins: &[(&str, &str)]) -> PrivateNode {
        PrivateNode::start_on(free_port(), plugins)
    }

    /// The same, on a given port.
    pub fn start_on(port: u16, plugins: &[(&str, &str)]) -> PrivateNode {
        PrivateNode::start_with(port, plugins, &[])
    }

    /// The same, with files for its plugin-conf.d (name, content), e.g. to put a plugin on
    /// a virtual node with `host_name`.
    pub fn start_with(
        port: u16,
        plugins: &[(&str, &str)],
        plugin_conf: &[(&str, &str)],
    ) -> PrivateNode {
        PrivateNode::start_setup(
            port,
            &NodeSetup {
                plugins,
                plugin_conf: Some(plugin_conf),
                ..NodeSetup::default()
            },
        )
    }

    /// munin-node as Debian's postinst sets it up on this machine: every plugin
    /// `munin-node-configure --shell` enables, Debian's plugin-conf.d, and plugin state
    /// wiped (an empty directory over `/var/lib/munin-node/plugin-state`), as on a new
    /// machine. Returns the node and the plugins' names.
    pub fn start_debian(port: u16) -> (PrivateNode, Vec<String>) {
        require("/usr/sbin/munin-node-configure", "munin-node");
        let links = debian_plugins();
        let node = PrivateNode::start_setup(
            port,
            &NodeSetup {
                links: &links,
                plugin_conf: None,
                fresh_state: true,
                ..NodeSetup::default()
            },
        );
        (node, links.into_iter().map(|(name, _)| name).collect())
    }

    /// munin-node as `setup` says.
    pub fn start_setup(port: u16, setup: &NodeSetup) -> PrivateNode {
        require_root();
        require("/usr/sbin/munin-node", "munin-node");
        let dir = tempdir();
        let plugin_dir = dir.path().join("plugins");
        fs::create_dir(&plugin_dir).unwrap();
        fs::set_permissions(&plugin_dir, fs::Permissions::from_mode(0o755)).unwrap();
        for (name, script) in setup.plugins {
            let p = plugin_dir.join(name);
            fs::write(&p, script).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (name, target) in setup.links {
            std::os::unix::fs::symlink(target, plugin_dir.join(name)).unwrap();
        }
        let d = dir.path().display();
        fs::write(
            dir.path().join("munin-node.conf"),
            format!(
                "log_level 4\nlog_file {d}/munin-node.log\npid_file {d}/munin-node.pid\nbackground 0\nsetsid 0\n\
                 user root\ngroup root\nhost 127.0.0.1\nport {port}\nallow ^127\\.0\\.0\\.1$\ntimeout 60\n"
            ),
        )
        .unwrap();
        let mut mounts = format!("mount --bind {} /etc/munin/plugins", plugin_dir.display());
        if let Some(plugin_conf) = setup.plugin_conf {
            let conf_dir = dir.path().join("plugin-conf.d");
            fs::create_dir(&conf_dir).unwrap();
            for (name, content) in plugin_conf {
                fs::write(conf_dir.join(name), content).unwrap();
            }
            mounts += &format!(
                " && mount --bind {} /etc/munin/plugin-conf.d",
                conf_dir.display()
            );
        }
        if setup.fresh_state {
            let state = dir.path().join("plugin-state");
            fs::create_dir(&state).unwrap();
            fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
            fs::create_dir_all(PLUGIN_STATE).unwrap();
            mounts += &format!(" && mount --bind {} {PLUGIN_STATE}", state.display());
        }
        let script = format!("{mounts} && exec /usr/sbin/munin-node --config {d}/munin-node.conf");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = PrivateNode { child, port, dir };
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "munin-node did not start: {}",
                fs::read_to_string(node.dir.path().join("munin-node.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
        node
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        // munin-node forks per connection; its pid file names the server. Its children
        // go first: killed after it, they would live on with open connections.
        if let Ok(pid) = fs::read_to_string(self.dir.path().join("munin-node.pid")) {
            let _ = Command::new("pkill").args(["-P", pid.trim()]).status();
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where munin-node keeps its plugins' state.
pub const PLUGIN_STATE: &str = "/var/lib/munin-node/plugin-state";

/// What a private munin-node gets.
#[derive(Default)]
pub struct NodeSetup<'a> {
    /// Plugin scripts: name, content.
    pub plugins: &'a [(&'a str, &'a str)],
    /// Plugins as symbolic links: name, target.
    pub links: &'a [(String, String)],
    /// Files of its plugin-conf.d (name, content); None: Debian's `/etc/munin/plugin-conf.d`.
    pub plugin_conf: Option<&'a [(&'a str, &'a str)]>,
    /// An empty plugin-state directory, as on a new machine.
    pub fresh_state: bool,
}

/// The plugins Debian's postinst enables on this machine: what `munin-node-configure
/// --shell` links into an empty plugin directory, as (name, target).
pub fn debian_plugins() -> Vec<(String, String)> {
    let empty = tempdir();
    let out = run(
        Command::new("munin-node-configure")
            .args(["--shell", "--servicedir"])
            .arg(empty.path()),
        b"",
        Duration::from_secs(120),
    );
    let mut links = Vec::new();
    for line in out.stdout().lines() {
        // ln -s '/usr/share/munin/plugins/if_' '/DIR/if_eth0'
        let Some(rest) = line.strip_prefix("ln -s ") else {
            continue;
        };
        let quoted: Vec<&str> = rest.split('\'').filter(|s| !s.trim().is_empty()).collect();
        let [target, link] = quoted[..] else {
            panic!("munin-node-configure printed an unexpected line: {line}");
        };
        let name = Path::new(link)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        links.push((name, target.to_string()));
    }
    assert!(
        links.len() >= 5,
        "munin-node-configure --shell enabled only {} plugins:\n{}{}",
        links.len(),
        out.stdout(),
        out.stderr()
    );
    links
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

/// Whether munin-asyncd has spooled `plugin` into `spool` (its SPOOL-META says so).
pub fn spooled(spool: &Path, plugin: &str) -> bool {
    fs::read_to_string(spool.join("SPOOL-META"))
        .unwrap_or_default()
        .contains(&format!("last-timestamp.{plugin}:"))
}

/// Waits until each (spool, plugin) is spooled; fails with the daemon's `log` after `limit`.
pub fn wait_spooled(pairs: &[(&Path, &str)], log: &Path, limit: Duration) {
    eventually(
        limit,
        || {
            format!(
                "not spooled: {}",
                fs::read_to_string(log).unwrap_or_default()
            )
        },
        || pairs.iter().all(|(spool, plugin)| spooled(spool, plugin)),
    );
}

/// A running process of ours, killed on drop.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs our munin-async as the unprivileged user nobody (from a copy it can execute),
/// with these arguments and input.
pub fn ours_as_nobody(args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    require_root();
    let bin = tempdir();
    let exe = bin.path().join("munin-async");
    fs::copy(our_async(), &exe).unwrap();
    run(
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&exe)
            .args(args),
        input,
        Duration::from_secs(30),
    )
}

/// What a fake munin-node does in answer to one line.
pub enum Act {
    /// Writes these bytes.
    Send(Vec<u8>),
    /// Writes these bytes one at a time, this long apart.
    Trickle(Vec<u8>, Duration),
    /// Says nothing for this long.
    Sleep(Duration),
    /// Hangs up.
    Close,
}

/// A munin-node on 127.0.0.1 that answers each line as `answer` says, for faults a real
/// one cannot produce on demand. `answer` gets "" on connect (for the greeting), then each
/// line without its newline. Every connection is served in a thread of its own until the
/// test ends; its port is returned.
pub fn fake_node(answer: impl Fn(&str) -> Vec<Act> + Send + Sync + 'static) -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::sync::Arc::new(answer);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let answer = answer.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::from("\n");
                loop {
                    for act in answer(line.trim_end_matches(['\r', '\n'])) {
                        let ok = match act {
                            Act::Send(bytes) => stream.write_all(&bytes).is_ok(),
                            Act::Trickle(bytes, gap) => bytes.iter().all(|b| {
                                thread::sleep(gap);
                                stream.write_all(&[*b]).is_ok()
                            }),
                            Act::Sleep(d) => {
                                thread::sleep(d);
                                true
                            }
                            Act::Close => false,
                        };
                        if !ok {
                            return;
                        }
                    }
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The usual answers of a fake node: the greeting, `cap`, `quit`, and an unknown command.
pub fn fake_basics(line: &str) -> Vec<Act> {
    match line {
        "" => vec![Act::Send(b"# munin node at fake.example\n".to_vec())],
        l if l.starts_with("cap") => vec![Act::Send(b"cap multigraph dirtyconfig\n".to_vec())],
        "quit" => vec![Act::Close],
        _ => vec![Act::Send(b"# Unknown command\n".to_vec())],
    }
}

/// Named plugin scripts as `PrivateNode::start` takes them.
pub fn plugin_refs(plugins: &[(String, String)]) -> Vec<(&str, &str)> {
    plugins
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect()
}
