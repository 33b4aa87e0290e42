//! Debian's munin-node, private: on a loopback port, with the plugins a test gives it.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
        let global = setup
            .global_timeout
            .map_or(String::new(), |s| format!("global_timeout {s}\n"));
        fs::write(
            dir.path().join("munin-node.conf"),
            format!(
                "log_level 4\nlog_file {d}/munin-node.log\npid_file {d}/munin-node.pid\nbackground 0\nsetsid 0\n\
                 user root\ngroup root\nhost 127.0.0.1\nport {port}\nallow ^127\\.0\\.0\\.1$\ntimeout 60\n{global}"
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
        wait_listening(port, Duration::from_secs(20), || {
            format!(
                "munin-node did not start: {}",
                fs::read_to_string(node.dir.path().join("munin-node.log")).unwrap_or_default()
            )
        });
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
    /// munin-node's `global_timeout` (the longest a session lasts); None: its 900 s.
    pub global_timeout: Option<u32>,
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

/// Named plugin scripts as `PrivateNode::start` takes them.
pub fn plugin_refs(plugins: &[(String, String)]) -> Vec<(&str, &str)> {
    plugins
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect()
}

/// A program run once per connection to a port on 127.0.0.1, the connection its stdin and
/// stdout: as inetd, or a systemd socket with `Accept=true` (Debian's
/// `munin-node-c.socket`), runs munin-node-c. Stopped on drop, with what it runs.
pub struct Inetd {
    pub port: u16,
    stop: Arc<AtomicBool>,
    children: Arc<Mutex<Vec<std::process::Child>>>,
}

impl Inetd {
    /// Starts serving `argv` on a free port.
    pub fn start(argv: &[&str]) -> Inetd {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inetd = Inetd {
            port,
            stop: Arc::default(),
            children: Arc::default(),
        };
        let (stop, children) = (inetd.stop.clone(), inetd.children.clone());
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        thread::spawn(move || {
            // Bounded: the test process ends long before.
            for _ in 0..1_000_000 {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(input), Ok(output)) = (stream.try_clone(), stream.try_clone()) else {
                    continue;
                };
                let child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::from(std::os::fd::OwnedFd::from(input)))
                    .stdout(Stdio::from(std::os::fd::OwnedFd::from(output)))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
                drop(stream);
                let mut children = children.lock().unwrap();
                children.retain_mut(|c| c.try_wait().ok().flatten().is_none());
                children.push(child);
            }
        });
        inetd
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
