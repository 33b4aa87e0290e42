//! The project's one hand-written munin-node, for faults a real one cannot produce on
//! demand and for scale. It uses nothing but std, so every test tier includes this very
//! file: the integration harness as a module, the unit and in-process tests of `src/`
//! and the benchmark's `examples/fake_munin_nodes.rs` with `#[path]`.
//!
//! Three parts:
//! - [`munin_node`], the dialect: one request line answered as Debian's Perl munin-node
//!   answers it (its replies to `cap`, `nodes`, `list`, `config`, `fetch`, `version`,
//!   `quit` and an unknown command), the plugins' texts given by the caller.
//! - [`FakeNode`], the transport for tests: a port on 127.0.0.1, a thread per connection,
//!   each with a state of the test's type, answering each line with [`Act`]s (bytes at
//!   once or trickled, a silence, a hang-up); it can be taken down and brought back up on
//!   the same port. [`fake_node`] is the stateless form; [`script`] a conversation
//!   written out in advance, each request checked.
//! - The benchmark's transport is its own (a thousand ports in one epoll thread), with
//!   this dialect.

#![allow(dead_code)] // each tier uses a part

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a fake munin-node does in answer to one line.
#[derive(Debug, Clone)]
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

/// A plugin's text for [`munin_node`]: its config (`fetch` false) or its values, each
/// line ending in `\n`, without the `.` line; false when the node has no such plugin.
pub trait Plugins {
    /// Writes plugin `name`'s config or values into `out`.
    fn text(&mut self, name: &[u8], fetch: bool, out: &mut Vec<u8>) -> bool;
}

impl<F: FnMut(&[u8], bool, &mut Vec<u8>) -> bool> Plugins for F {
    fn text(&mut self, name: &[u8], fetch: bool, out: &mut Vec<u8>) -> bool {
        self(name, fetch, out)
    }
}

/// How a munin-node answers where munin-nodes differ (docs/daemon.md, "Other
/// munin-nodes"). [`DEBIAN`] is Debian's Perl munin-node 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Its name, for a test's report.
    pub name: &'static str,
    /// Its answer to `cap`: `Some(capabilities)` (munin-node-c: `Some("")`, a `cap `
    /// line naming none), or `None`: it does not know `cap` (an unknown command).
    pub cap: Option<&'static str>,
    /// Its answer to `nodes`.
    pub nodes: Nodes,
    /// `list` ends with a space after the last name (munin-node-c).
    pub list_space: bool,
    /// An unknown plugin is answered with a `#` line and no `.` line (munin-node-c, shell
    /// nodes). (An unknown command has no `.` from any node.)
    pub no_dot_when_unknown: bool,
    /// A blank line after each line of a config (and a config or fetch ends with a blank
    /// line before its `.`, as munin-node-c ends every plugin's output).
    pub blank_lines: bool,
}

/// What a node answers to `nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// Its name, then `.`.
    Named,
    /// Its name, and no `.`.
    NamedWithoutDot,
    /// It does not know `nodes` (an unknown command).
    Unknown,
}

/// Debian's munin-node 2.0.
pub const DEBIAN: Dialect = Dialect {
    name: "Debian's munin-node",
    cap: Some("multigraph dirtyconfig"),
    nodes: Nodes::Named,
    list_space: false,
    no_dot_when_unknown: false,
    blank_lines: false,
};

/// Debian's munin-node-c 0.0.13 (src/node/node.c), where it differs from munin-node.
pub const MUNIN_NODE_C: Dialect = Dialect {
    name: "munin-node-c",
    cap: Some(""),
    nodes: Nodes::Named,
    list_space: true,
    no_dot_when_unknown: true,
    blank_lines: true,
};

/// A shell script serving a router or a small board: it knows `list`, `config`, `fetch`,
/// `version` and `quit`, and answers anything else with an unknown-command line, no `.`.
pub const SHELL_NODE: Dialect = Dialect {
    name: "a shell node",
    cap: None,
    nodes: Nodes::Unknown,
    list_space: false,
    no_dot_when_unknown: true,
    blank_lines: false,
};

/// A node that lists its `nodes` without a `.` line, and puts blank lines in configs.
pub const LOOSE_NODE: Dialect = Dialect {
    name: "nodes without a dot, blank lines in configs",
    cap: Some("multigraph"),
    nodes: Nodes::NamedWithoutDot,
    list_space: false,
    no_dot_when_unknown: false,
    blank_lines: true,
};

/// Answers one request line (without its newline) as Debian's munin-node 2.0 does, into
/// `out`, for a node named `host` whose `list` is `list` (names separated by spaces):
/// `cap` with `multigraph dirtyconfig`, `nodes` with `host`, `config` and `fetch` with
/// the plugin's text and a `.` line (`# Unknown service` for one it does not have), and
/// `# Unknown command. ...` for anything else. False for `quit` (or `.`): hang up.
pub fn munin_node(
    line: &[u8],
    host: &str,
    list: &str,
    plugins: &mut impl Plugins,
    out: &mut Vec<u8>,
) -> bool {
    speak(&DEBIAN, line, host, list, plugins, out)
}

/// [`munin_node`] in another [`Dialect`].
pub fn speak(
    dialect: &Dialect,
    line: &[u8],
    host: &str,
    list: &str,
    plugins: &mut impl Plugins,
    out: &mut Vec<u8>,
) -> bool {
    let line = line.trim_ascii();
    let (word, arg) = match line.iter().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&line[..i], line[i..].trim_ascii()),
        None => (line, &b""[..]),
    };
    // No `.` after it, from any node.
    let unknown = |out: &mut Vec<u8>| {
        out.extend_from_slice(
            b"# Unknown command. Try cap, list, nodes, config, fetch, version or quit\n",
        )
    };
    match (word, dialect.cap, dialect.nodes) {
        (b"cap", None, _) | (b"nodes", _, Nodes::Unknown) => unknown(out),
        (b"cap", Some(caps), _) => {
            // munin-node-c's `cap ` keeps its space.
            out.extend_from_slice(b"cap ");
            out.extend_from_slice(caps.as_bytes());
            out.push(b'\n');
        }
        (b"nodes", _, nodes) => {
            out.extend_from_slice(host.as_bytes());
            out.push(b'\n');
            if nodes == Nodes::Named {
                out.extend_from_slice(b".\n");
            }
        }
        (b"list", _, _) => {
            // Another node's name lists nothing.
            if arg.is_empty() || arg == host.as_bytes() {
                out.extend_from_slice(list.as_bytes());
                if dialect.list_space && !list.is_empty() {
                    out.push(b' ');
                }
            }
            out.push(b'\n');
        }
        (b"config" | b"fetch", _, _) => {
            let fetch = word == b"fetch";
            let start = out.len();
            if !plugins.text(arg, fetch, out) {
                out.truncate(start);
                if dialect.no_dot_when_unknown {
                    out.extend_from_slice(b"# unknown plugin: ");
                    out.extend_from_slice(arg);
                    out.push(b'\n');
                    return true;
                }
                out.extend_from_slice(b"# Unknown service\n");
            } else if dialect.blank_lines {
                let text = out.split_off(start);
                for l in text.split_inclusive(|b| *b == b'\n') {
                    out.extend_from_slice(l);
                    if !fetch {
                        out.push(b'\n');
                    }
                }
                if fetch {
                    out.push(b'\n');
                }
            }
            out.extend_from_slice(b".\n");
        }
        (b"version", _, _) => {
            out.extend_from_slice(b"munins node on ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b" version: 2.0.75\n");
        }
        (b"quit" | b".", _, _) => return false,
        _ => unknown(out),
    }
    true
}

/// The greeting of a node named `host`.
pub fn greeting(host: &str) -> Vec<u8> {
    format!("# munin node at {host}\n").into_bytes()
}

/// The usual answers of a fake node named `fake.example` with no plugins: the greeting,
/// then [`munin_node`]'s.
pub fn fake_basics(line: &str) -> Vec<Act> {
    if line.is_empty() {
        return vec![Act::Send(greeting("fake.example"))];
    }
    let mut out = Vec::new();
    let none = &mut |_: &[u8], _: bool, _: &mut Vec<u8>| false;
    if munin_node(line.as_bytes(), "fake.example", "", none, &mut out) {
        vec![Act::Send(out)]
    } else {
        vec![Act::Close]
    }
}

/// A munin-node on 127.0.0.1 for a test. Its threads end with the test process.
pub struct FakeNode {
    port: u16,
    /// Down: the port refuses connections, and open ones hang up at their next line.
    down: Arc<AtomicBool>,
    /// Connections open now.
    open: Arc<AtomicUsize>,
}

impl FakeNode {
    /// Starts a node whose every connection has a state `S::default()` and answers each
    /// line as `answer` says: first "" (for the greeting), then each line without its
    /// newline.
    pub fn start<S: Default + 'static>(
        answer: impl Fn(&mut S, &str) -> Vec<Act> + Send + Sync + 'static,
    ) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let node = FakeNode {
            port,
            down: Arc::new(AtomicBool::new(false)),
            open: Arc::new(AtomicUsize::new(0)),
        };
        let (down, open) = (node.down.clone(), node.open.clone());
        let answer = Arc::new(answer);
        thread::spawn(move || {
            let mut listener = Some(listener);
            // Bounded: the test process ends long before.
            for _ in 0..10_000_000 {
                let Some(l) = &listener else {
                    if down.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(1));
                    } else {
                        listener = TcpListener::bind(("127.0.0.1", port)).ok();
                    }
                    continue;
                };
                let Ok((stream, _)) = l.accept() else {
                    return;
                };
                if down.load(Ordering::SeqCst) {
                    // Woken by `set_down`: stop listening.
                    listener = None;
                    continue;
                }
                let (answer, down, open) = (answer.clone(), down.clone(), open.clone());
                thread::spawn(move || {
                    open.fetch_add(1, Ordering::SeqCst);
                    converse(stream, &mut S::default(), &*answer, &down);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        node
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Takes it down (the port refuses connections; open ones hang up at their next
    /// line), or brings it back up on the same port; returns once the port does as said.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            // Wakes the accepting thread, which then stops listening.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
        }
        for _ in 0..5000 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() != down {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
        panic!(
            "port {} still not {}",
            self.port,
            if down { "closed" } else { "open" }
        );
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Answers one connection's lines until it ends.
fn converse<S>(
    mut stream: TcpStream,
    state: &mut S,
    answer: &dyn Fn(&mut S, &str) -> Vec<Act>,
    down: &AtomicBool,
) {
    let Ok(read) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        for act in answer(state, line.trim_end_matches(['\r', '\n'])) {
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
        if reader.read_line(&mut line).unwrap_or(0) == 0 || down.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// A node on 127.0.0.1 that answers each line as `answer` says, every connection alike;
/// its port.
pub fn fake_node(answer: impl Fn(&str) -> Vec<Act> + Send + Sync + 'static) -> u16 {
    FakeNode::start(move |_: &mut (), line| answer(line)).port()
}

/// One step of a [`script`].
#[derive(Debug, Clone)]
pub enum Step {
    /// The next request line must be this.
    Expect(&'static str),
    /// Then this is done.
    Do(Act),
}

/// What a [`script`] found wrong: a request it did not expect, or none where it expected
/// one. Empty while the conversation went as written.
pub type Mismatches = Arc<Mutex<Vec<String>>>;

/// A conversation written out in advance, for [`FakeNode::start`]: the steps before the
/// first `Expect` answer the connection (the greeting), each `Expect` takes one request
/// and checks it, and the steps after it up to the next are its answer. Once the script
/// is over the node hangs up. Each connection runs the script from its start.
pub fn script(steps: Vec<Step>) -> (impl Fn(&mut usize, &str) -> Vec<Act>, Mismatches) {
    let wrong: Mismatches = Arc::default();
    let record = wrong.clone();
    let answer = move |at: &mut usize, line: &str| {
        if *at > 0 || !line.is_empty() {
            match steps.get(*at) {
                Some(Step::Expect(want)) if *want == line => *at += 1,
                Some(Step::Expect(want)) => {
                    record
                        .lock()
                        .unwrap()
                        .push(format!("expected {want:?}, got {line:?}"));
                    return vec![Act::Close];
                }
                _ => {
                    record.lock().unwrap().push(format!("unexpected {line:?}"));
                    return vec![Act::Close];
                }
            }
        }
        let mut acts = Vec::new();
        while let Some(Step::Do(act)) = steps.get(*at) {
            acts.push(act.clone());
            *at += 1;
        }
        if *at == steps.len() {
            acts.push(Act::Close);
        }
        acts
    };
    (answer, wrong)
}
