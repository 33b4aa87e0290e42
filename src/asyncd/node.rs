//! A client of munin-node's line protocol, as munin-asyncd uses it.
//!
//! Every request has a deadline, and every reply is bounded in line length and total
//! size. A node that hangs, trickles, sends an endless line or closes mid-reply fails that
//! one request with an error that says which, and the connection is dropped.
//!
//! Not every munin-node ends its replies with a `.` line (docs/daemon.md, "Other
//! munin-nodes"): munin-node-c answers an unknown plugin with one `#` line and nothing
//! after, shell nodes for routers answer `cap` and `nodes` with an unknown-command line,
//! some nodes list their `nodes` without a `.`. A reply that could be whole as it stands
//! (comment lines only, or any `nodes` line) and is followed by [`UNENDED_WAIT`] of
//! silence ends there: that request costs the wait, not the request timeout. Such a reply
//! is counted ([`Unended`]), and the connection it came on is not used again (a `.` that
//! came late would end the next reply).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::line::{LineEnd, LineReader};
use crate::{log_debug, log_notice};

/// The longest line accepted from munin-node.
pub(crate) const MAX_LINE: usize = 1 << 20;
/// The largest reply accepted for one request: what fits in one spool record.
pub(crate) const MAX_REPLY: usize = crate::spool::record::MAX_RECORD;

/// The lines of a multi-line reply, without the final `.`.
pub(crate) type Reply = Vec<Vec<u8>>;

/// How long a reply that could be whole without its `.` waits for more before it is taken
/// as ended. A node that does send the `.` sends it at once after such a line: in the
/// same write (munin-node-c, munin-node's buffered plugin output), or, for a node writing
/// line by line without `TCP_NODELAY`, once the first line's segment is acknowledged (a
/// round trip plus at most 200 ms of this side's delayed acknowledgement, Nagle's
/// algorithm). One second covers round trips up to 400 ms; the plugin that would lose its
/// sample to it prints a comment and then nothing for a second, which only a node that
/// streams plugin output (munin-node-c) can show, and the reply is then cut and counted.
pub(crate) const UNENDED_WAIT: Duration = Duration::from_secs(1);

/// The replies of one munin-node that ended without their `.` (after [`UNENDED_WAIT`]),
/// counted over all its connections; the first is logged as a notice, the others at debug.
#[derive(Debug, Default)]
pub(crate) struct Unended {
    /// The node's address, for the log.
    host: String,
    count: AtomicU64,
}

impl Unended {
    /// None yet from munin-node at `host`.
    pub(crate) fn new(host: &str) -> Unended {
        Unended {
            host: host.to_string(),
            count: AtomicU64::new(0),
        }
    }

    /// How many so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn add(&self, request: &str) {
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        let (host, wait) = (&self.host, UNENDED_WAIT.as_secs_f64());
        if before == 0 {
            log_notice!(
                "munin-node at {host} answered {request:?} without a \".\" line: taken as \
                 ended after {wait} s of silence (such replies are counted in munin_asyncd's \
                 polls graph, \"unended\")"
            );
        } else {
            log_debug!("munin-node at {host}: {request:?} answered without a \".\" line");
        }
    }
}

/// Which replies may end without a `.` once the node falls silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// One of nothing but comment lines (`# unknown plugin: x`, `# Unknown command`).
    AfterComments,
    /// Any (`nodes`, which the node answers itself, at once).
    AfterAnyLine,
}

/// What went wrong talking to munin-node.
#[derive(Debug)]
pub(crate) enum NodeError {
    /// Could not connect.
    Connect {
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// No complete answer before the deadline.
    Timeout {
        /// The request.
        request: String,
    },
    /// The node closed the connection before the answer was complete.
    Closed {
        /// The request.
        request: String,
    },
    /// The answer was not what the protocol says.
    Protocol {
        /// The request.
        request: String,
        /// What was wrong.
        what: String,
    },
    /// Another I/O error.
    Io {
        /// The request.
        request: String,
        /// The error.
        source: io::Error,
    },
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Connect { addr, source } => {
                write!(f, "cannot connect to munin-node at {addr}: {source}")
            }
            NodeError::Timeout { request } => {
                write!(f, "munin-node did not answer {request:?} in time")
            }
            NodeError::Closed { request } => {
                write!(f, "munin-node closed the connection during {request:?}")
            }
            NodeError::Protocol { request, what } => {
                write!(f, "munin-node's answer to {request:?}: {what}")
            }
            NodeError::Io { request, source } => write!(f, "{request:?}: {source}"),
        }
    }
}

impl std::error::Error for NodeError {}

/// How far a read's timeout may stray from what is left before the deadline before it is
/// set again: a system call saved on nearly every read (back-to-back requests leave it
/// where the next one needs it).
const SLACK: Duration = Duration::from_millis(100);

/// Reads from a stream, its read timeout kept to what is left before a deadline (within
/// [`SLACK`]).
struct Deadlined {
    stream: TcpStream,
    deadline: Instant,
    /// The read timeout set on the stream.
    set: Option<Duration>,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        let near = self
            .set
            .is_some_and(|set| set <= left + SLACK && set + SLACK >= left);
        if !near {
            self.stream.set_read_timeout(Some(left))?;
            self.set = Some(left);
        }
        self.stream.read(buf)
    }
}

/// One connection to munin-node.
pub(crate) struct NodeConn {
    lines: LineReader<Deadlined>,
    timeout: Duration,
    /// The host name in the node's greeting.
    pub(crate) hostname: String,
    /// When it was opened (by the clock of whoever opened it: see `poll::open`).
    pub(crate) born: Instant,
    /// Where replies without their `.` are counted.
    unended: Arc<Unended>,
    /// False once a reply was taken as ended without its `.`: a `.` that came late would
    /// end the next reply, so the connection is not used for another poll.
    in_step: bool,
}

impl NodeConn {
    /// Connects and reads the greeting; every later request gets `timeout`.
    #[cfg(test)]
    pub(crate) fn connect(addr: &str, timeout: Duration) -> Result<NodeConn, NodeError> {
        NodeConn::connect_counted(addr, timeout, Arc::default())
    }

    /// Connects and reads the greeting; every later request gets `timeout`, and replies
    /// without their `.` are counted in `unended`.
    pub(crate) fn connect_counted(
        addr: &str,
        timeout: Duration,
        unended: Arc<Unended>,
    ) -> Result<NodeConn, NodeError> {
        let connect_err = |source| NodeError::Connect {
            addr: addr.to_string(),
            source,
        };
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| NodeError::Connect {
                addr: addr.to_string(),
                source: e,
            })?;
        let _ = stream.set_nodelay(true);
        let mut conn = NodeConn {
            lines: LineReader::new(
                Deadlined {
                    stream,
                    deadline: Instant::now() + timeout,
                    set: None,
                },
                // Grown for a longer line; small, as a site's daemon keeps thousands idle.
                4 * 1024,
                MAX_LINE,
            ),
            timeout,
            hostname: String::new(),
            born: Instant::now(),
            unended,
            in_step: true,
        };
        let greeting = conn.read_line("(greeting)")?;
        let text = String::from_utf8_lossy(&greeting);
        conn.hostname = text
            .split_once("munin node at ")
            .and_then(|(_, h)| h.split_whitespace().next())
            .filter(|h| crate::spool::meta::is_hostname(h.as_bytes()))
            .unwrap_or("unknown")
            .to_string();
        Ok(conn)
    }

    fn inner(&mut self) -> &mut Deadlined {
        self.lines.get_mut()
    }

    fn send(&mut self, request: &str) -> Result<(), NodeError> {
        let timeout = self.timeout;
        let inner = self.inner();
        inner.deadline = Instant::now() + timeout;
        inner
            .stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| classify(request, e))
    }

    fn read_line(&mut self, request: &str) -> Result<Vec<u8>, NodeError> {
        match self.lines.next_line() {
            Ok(Some((LineEnd::Newline, line, _))) => {
                Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
            }
            Ok(Some((LineEnd::TooLong, _, n))) => Err(NodeError::Protocol {
                request: request.to_string(),
                what: format!("a line of {n} bytes, over the limit of {MAX_LINE}"),
            }),
            Ok(Some((LineEnd::Eof, _, _)) | None) => Err(NodeError::Closed {
                request: request.to_string(),
            }),
            Err(e) => Err(classify(request, e)),
        }
    }

    /// Sends a request answered by one line.
    fn one_line(&mut self, request: &str) -> Result<Vec<u8>, NodeError> {
        self.send(request)?;
        self.read_line(request)
    }

    /// Sends a request answered by lines up to a line starting with `.`.
    fn multi_line(&mut self, request: &str, ends: Ends) -> Result<Vec<Vec<u8>>, NodeError> {
        self.send(request)?;
        self.reply(request, ends)
    }

    /// Reads the reply to `request`: lines up to a line starting with `.`, or, once what
    /// came could be a whole reply as `ends` says, up to [`UNENDED_WAIT`] of silence.
    fn reply(&mut self, request: &str, ends: Ends) -> Result<Vec<Vec<u8>>, NodeError> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut size = 0;
        let mut only_comments = true;
        loop {
            let whole = !lines.is_empty()
                && match ends {
                    Ends::AfterComments => only_comments,
                    Ends::AfterAnyLine => true,
                };
            let line = if whole {
                match self.read_line_within(request, UNENDED_WAIT)? {
                    Some(line) => line,
                    None => {
                        self.unended.add(request);
                        self.in_step = false;
                        return Ok(lines);
                    }
                }
            } else {
                self.read_line(request)?
            };
            // Perl's munin-asyncd ends a reply at any line starting with `.`.
            if line.starts_with(b".") {
                return Ok(lines);
            }
            only_comments &= line.starts_with(b"#");
            size += line.len() + 1;
            if size > MAX_REPLY {
                return Err(NodeError::Protocol {
                    request: request.to_string(),
                    what: format!("a reply over {MAX_REPLY} bytes"),
                });
            }
            lines.push(line);
        }
    }

    /// The next line if one comes within `wait` (and before the request's deadline);
    /// `None` after `wait` of silence.
    fn read_line_within(
        &mut self,
        request: &str,
        wait: Duration,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        let deadline = self.inner().deadline;
        let soon = Instant::now() + wait;
        if deadline <= soon {
            return self.read_line(request).map(Some);
        }
        self.inner().deadline = soon;
        let line = self.read_line(request);
        self.inner().deadline = deadline;
        match line {
            Err(NodeError::Timeout { .. }) => Ok(None),
            line => line.map(Some),
        }
    }

    /// Whether the connection can take another request: no reply on it was taken as
    /// ended without its `.`.
    pub(crate) fn in_step(&self) -> bool {
        self.in_step
    }

    /// Announces our capabilities; returns the node's.
    pub(crate) fn cap(&mut self, caps: &str) -> Result<Vec<String>, NodeError> {
        let request = format!("cap {caps}");
        let line = self.one_line(&request)?;
        let text = String::from_utf8_lossy(&line);
        match text.strip_prefix("cap") {
            Some(rest) => Ok(rest.split_whitespace().map(String::from).collect()),
            None if text.starts_with('#') => {
                // A node from before `cap` (or a shell node) answers it as an unknown
                // command, with no `.` line after it, or with one (a few nodes send it).
                // Either way no capability; the `.`, if one comes, is read now.
                loop {
                    match self.read_line_within(&request, UNENDED_WAIT)? {
                        None => {
                            self.unended.add(&request);
                            return Ok(Vec::new());
                        }
                        Some(l) if l.starts_with(b".") => return Ok(Vec::new()),
                        Some(l) if l.starts_with(b"#") => continue,
                        Some(l) => {
                            return Err(NodeError::Protocol {
                                request,
                                what: format!(
                                    "after a comment, {:?}",
                                    crate::util::log::Quoted(&l).to_string()
                                ),
                            })
                        }
                    }
                }
            }
            None => Err(NodeError::Protocol {
                request,
                what: format!(
                    "expected a cap line, got {:?}",
                    crate::util::log::Quoted(&line).to_string()
                ),
            }),
        }
    }

    /// The virtual nodes the node serves (none when it does not know `nodes`).
    pub(crate) fn nodes(&mut self) -> Result<Vec<String>, NodeError> {
        let reply = self.multi_line("nodes", Ends::AfterAnyLine)?;
        if reply.iter().all(|l| l.starts_with(b"#")) {
            // An unknown command: no node sends a `.` after that line.
            self.in_step = true;
        }
        Ok(reply
            .iter()
            .filter(|l| !l.starts_with(b"#"))
            .map(|l| String::from_utf8_lossy(l).trim().to_string())
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// The plugins of a (virtual) node.
    pub(crate) fn list(&mut self, node: &str) -> Result<Vec<String>, NodeError> {
        let line = self.one_line(format!("list {node}").trim_end())?;
        Ok(String::from_utf8_lossy(&line)
            .split_whitespace()
            .map(String::from)
            .collect())
    }

    /// A plugin's config output.
    pub(crate) fn config(&mut self, plugin: &str) -> Result<Vec<Vec<u8>>, NodeError> {
        self.multi_line(&format!("config {plugin}"), Ends::AfterComments)
    }

    /// A plugin's config and fetch output, both asked in one write: one round trip
    /// instead of two, for a plugin whose config carries no values. Both replies are read
    /// whatever the first says; each has the request timeout from when it is awaited.
    /// `between` runs once the config's reply is in (munin-node, which answers requests
    /// in turn, then starts on the fetch), and what it gives is returned between the two.
    pub(crate) fn config_and_fetch<T>(
        &mut self,
        plugin: &str,
        between: impl FnOnce() -> T,
    ) -> Result<(Reply, T, Reply), NodeError> {
        let (config, fetch) = (format!("config {plugin}"), format!("fetch {plugin}"));
        self.send(&format!("{config}\n{fetch}"))?;
        let configured = self.reply(&config, Ends::AfterComments)?;
        let got = between();
        if !self.in_step {
            // The config's reply ended without its `.` (a plugin the node does not know):
            // the fetch's is not waited for, nor is the connection used again.
            return Ok((configured, got, Vec::new()));
        }
        let timeout = self.timeout;
        self.inner().deadline = Instant::now() + timeout;
        let fetched = self.reply(&fetch, Ends::AfterComments)?;
        Ok((configured, got, fetched))
    }

    /// A plugin's fetch output.
    pub(crate) fn fetch(&mut self, plugin: &str) -> Result<Vec<Vec<u8>>, NodeError> {
        self.multi_line(&format!("fetch {plugin}"), Ends::AfterComments)
    }

    /// Frees the read buffer while the connection is kept idle (nothing is buffered
    /// between requests; the next request makes it again).
    pub(crate) fn release(&mut self) {
        self.lines.release();
    }

    /// Says goodbye (best effort).
    pub(crate) fn quit(mut self) {
        let _ = self.send("quit");
    }
}

fn classify(request: &str, e: io::Error) -> NodeError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => NodeError::Timeout {
            request: request.to_string(),
        },
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof => NodeError::Closed {
            request: request.to_string(),
        },
        _ => NodeError::Io {
            request: request.to_string(),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    use crate::asyncd::tests::fake_node::{self, Act, FakeNode};

    enum Step {
        /// Read one request line and check it.
        Expect(&'static str),
        Send(Vec<u8>),
        /// Send these bytes one at a time, this far apart.
        Trickle(&'static [u8], Duration),
        Sleep(Duration),
    }
    use Step::*;

    /// A scripted node on a loopback port (the shared fake's [`fake_node::script`]), for
    /// faults a real munin-node cannot produce on demand; with what `join` checks once
    /// the conversation is over.
    fn fake_node(steps: Vec<Step>) -> (String, Conversation) {
        let steps = steps
            .into_iter()
            .map(|step| match step {
                Expect(want) => fake_node::Step::Expect(want),
                Send(bytes) => fake_node::Step::Do(Act::Send(bytes)),
                Trickle(bytes, gap) => fake_node::Step::Do(Act::Trickle(bytes.to_vec(), gap)),
                Sleep(d) => fake_node::Step::Do(Act::Sleep(d)),
            })
            .collect();
        let (answer, wrong) = fake_node::script(steps);
        let node = FakeNode::start(answer);
        (node.addr(), Conversation { node, wrong })
    }

    /// A scripted node's conversation.
    struct Conversation {
        node: FakeNode,
        wrong: fake_node::Mismatches,
    }

    impl Conversation {
        /// Waits (up to 5 s) for the connection to end; says what went otherwise than
        /// written.
        fn join(self) -> Result<(), String> {
            for _ in 0..500 {
                if self.node.open() == 0 {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let wrong = std::mem::take(&mut *self.wrong.lock().unwrap());
            match wrong.is_empty() {
                true => Ok(()),
                false => Err(wrong.join("; ")),
            }
        }
    }

    impl Drop for Conversation {
        /// A conversation not joined is checked as far as it went.
        fn drop(&mut self) {
            let wrong = std::mem::take(&mut *self.wrong.lock().unwrap());
            if !thread::panicking() {
                assert!(wrong.is_empty(), "the fake node's script: {wrong:?}");
            }
        }
    }

    fn greet() -> Step {
        Send(b"# munin node at fake.example\n".to_vec())
    }

    const SHORT: Duration = Duration::from_millis(300);

    #[test]
    fn a_normal_conversation() {
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("cap multigraph dirtyconfig"),
            Send(b"cap multigraph dirtyconfig\n".to_vec()),
            Expect("nodes"),
            Send(b"fake.example\n.\n".to_vec()),
            Expect("list fake.example"),
            Send(b"load cpu\n".to_vec()),
            Expect("config load"),
            Send(b"graph_title Load\r\nload.label load\n.\n".to_vec()),
            Expect("fetch load"),
            Send(b"load.value 0.5\n.\n".to_vec()),
            // Both requests before any reply: they went out together.
            Expect("config cpu"),
            Expect("fetch cpu"),
            Send(b"graph_title CPU\n.\ncpu.value 7\n.\n".to_vec()),
            Expect("quit"),
        ]);
        let mut c = NodeConn::connect(&addr, SHORT).unwrap();
        assert_eq!(c.hostname, "fake.example");
        assert_eq!(
            c.cap("multigraph dirtyconfig").unwrap(),
            ["multigraph", "dirtyconfig"]
        );
        assert_eq!(c.nodes().unwrap(), ["fake.example"]);
        assert_eq!(c.list("fake.example").unwrap(), ["load", "cpu"]);
        assert_eq!(
            c.config("load").unwrap(),
            [b"graph_title Load".to_vec(), b"load.label load".to_vec()]
        );
        assert_eq!(c.fetch("load").unwrap(), [b"load.value 0.5".to_vec()]);
        assert_eq!(
            c.config_and_fetch("cpu", || 42).unwrap(),
            (
                vec![b"graph_title CPU".to_vec()],
                42,
                vec![b"cpu.value 7".to_vec()]
            )
        );
        c.quit();
        h.join().unwrap();
    }

    #[test]
    fn a_node_that_hangs_times_out() {
        let (addr, _h) = fake_node(vec![
            greet(),
            Expect("config load"),
            Sleep(Duration::from_secs(3)),
        ]);
        let mut c = NodeConn::connect(&addr, SHORT).unwrap();
        let start = Instant::now();
        assert!(matches!(c.config("load"), Err(NodeError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_trickling_node_times_out_at_the_deadline_not_per_byte() {
        let (addr, _h) = fake_node(vec![
            greet(),
            Expect("fetch load"),
            Trickle(b"load.value 1234567890\n.\n", Duration::from_millis(50)),
        ]);
        let mut c = NodeConn::connect(&addr, SHORT).unwrap();
        let start = Instant::now();
        assert!(matches!(c.fetch("load"), Err(NodeError::Timeout { .. })));
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn an_endless_line_is_refused_without_holding_it() {
        let (addr, _h) = fake_node(vec![
            greet(),
            Expect("config load"),
            Send(vec![b'x'; MAX_LINE + 10]),
            Send(b"\n.\n".to_vec()),
        ]);
        let mut c = NodeConn::connect(&addr, Duration::from_secs(5)).unwrap();
        let e = c.config("load").unwrap_err();
        assert!(matches!(e, NodeError::Protocol { .. }), "{e}");
        assert!(e.to_string().contains("over the limit"), "{e}");
    }

    #[test]
    fn a_close_mid_reply_is_reported() {
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("fetch load"),
            Send(b"load.value 1\n".to_vec()),
        ]);
        let mut c = NodeConn::connect(&addr, SHORT).unwrap();
        let e = c.fetch("load").unwrap_err();
        assert!(matches!(e, NodeError::Closed { .. }), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn garbage_is_data_but_a_bad_cap_answer_is_an_error() {
        let (addr, _h) = fake_node(vec![
            greet(),
            Expect("cap multigraph"),
            Send(b"\x00\xffwhat\n".to_vec()),
        ]);
        let mut c = NodeConn::connect(&addr, SHORT).unwrap();
        assert!(matches!(
            c.cap("multigraph"),
            Err(NodeError::Protocol { .. })
        ));
    }

    /// Long beside [`UNENDED_WAIT`]: a test that ends well before it was not held to it.
    const LONG: Duration = Duration::from_secs(20);

    /// Runs `f`, and says how long it took.
    fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
        let start = Instant::now();
        (f(), start.elapsed())
    }

    /// Within the wait and a margin for a loaded machine, far from the request timeout.
    fn about_the_wait(took: Duration) {
        assert!(
            took >= UNENDED_WAIT && took < UNENDED_WAIT * 4,
            "took {took:?}"
        );
    }

    #[test]
    fn an_unknown_plugin_without_its_dot_costs_the_wait_and_the_connection() {
        // munin-node-c: one `#` line for config and for fetch, no `.`.
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("config gone"),
            Send(b"# unknown plugin: gone\n".to_vec()),
            Expect("config gone"),
            Expect("fetch gone"),
            Send(b"# unknown plugin: gone\n# unknown plugin: gone\n".to_vec()),
            Expect("quit"),
        ]);
        let unended = Arc::new(Unended::default());
        let mut c = NodeConn::connect_counted(&addr, LONG, unended.clone()).unwrap();
        let (config, took) = timed(|| c.config("gone").unwrap());
        about_the_wait(took);
        assert_eq!(config, [b"# unknown plugin: gone".to_vec()]);
        assert!(!c.in_step());
        assert_eq!(unended.count(), 1);
        // Both asked at once: the fetch's answer is not waited for after the config's.
        let (got, took) = timed(|| c.config_and_fetch("gone", || 7).unwrap());
        about_the_wait(took);
        assert_eq!(got.0.len(), 2);
        assert!(got.2.is_empty());
        assert_eq!(unended.count(), 2);
        c.quit();
        h.join().unwrap();
    }

    #[test]
    fn a_cap_answered_as_an_unknown_command_gives_no_capability_with_or_without_a_dot() {
        for dot in [false, true] {
            let mut answer =
                b"# Unknown command. Try list, nodes, config, fetch, version or quit\n".to_vec();
            if dot {
                answer.extend_from_slice(b".\n");
            }
            let (addr, h) = fake_node(vec![
                greet(),
                Expect("cap multigraph dirtyconfig"),
                Send(answer),
                Expect("list"),
                Send(b"load\n".to_vec()),
                Expect("quit"),
            ]);
            let unended = Arc::new(Unended::default());
            let mut c = NodeConn::connect_counted(&addr, LONG, unended.clone()).unwrap();
            let (caps, took) = timed(|| c.cap("multigraph dirtyconfig").unwrap());
            assert!(caps.is_empty());
            if dot {
                assert!(took < UNENDED_WAIT, "{took:?}");
                assert_eq!(unended.count(), 0);
            } else {
                about_the_wait(took);
                assert_eq!(unended.count(), 1);
            }
            // In step either way: the next answer is the next request's.
            assert!(c.in_step());
            assert_eq!(c.list("").unwrap(), ["load"]);
            c.quit();
            h.join().unwrap();
        }
    }

    #[test]
    fn nodes_without_a_dot_or_unknown_end_after_the_wait() {
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("nodes"),
            Send(b"fake.example\nrouter1\n".to_vec()),
            Expect("quit"),
        ]);
        let mut c = NodeConn::connect(&addr, LONG).unwrap();
        let (nodes, took) = timed(|| c.nodes().unwrap());
        about_the_wait(took);
        assert_eq!(nodes, ["fake.example", "router1"]);
        c.quit();
        h.join().unwrap();
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("nodes"),
            Send(b"# Unknown command. Try list, config, fetch, version or quit\n".to_vec()),
            Expect("quit"),
        ]);
        let mut c = NodeConn::connect(&addr, LONG).unwrap();
        let (nodes, took) = timed(|| c.nodes().unwrap());
        about_the_wait(took);
        assert!(nodes.is_empty(), "{nodes:?}");
        c.quit();
        h.join().unwrap();
    }

    #[test]
    fn a_comment_then_values_a_moment_later_is_one_reply_and_blank_lines_are_kept() {
        // munin-node-c streams a plugin's output, and ends it with a blank line and `.`.
        let (addr, h) = fake_node(vec![
            greet(),
            Expect("fetch slow"),
            Send(b"# warming up\n".to_vec()),
            Sleep(UNENDED_WAIT / 4),
            Send(b"a.value 1\n\n.\n".to_vec()),
            Expect("config slow"),
            Send(b"graph_title slow\n\na.label a\n\n.\n".to_vec()),
            Expect("quit"),
        ]);
        let unended = Arc::new(Unended::default());
        let mut c = NodeConn::connect_counted(&addr, LONG, unended.clone()).unwrap();
        assert_eq!(
            c.fetch("slow").unwrap(),
            [b"# warming up".to_vec(), b"a.value 1".to_vec(), Vec::new()]
        );
        assert_eq!(c.config("slow").unwrap().len(), 4);
        assert!(c.in_step());
        assert_eq!(unended.count(), 0);
        c.quit();
        h.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_a_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = NodeConn::connect(&format!("127.0.0.1:{port}"), SHORT)
            .err()
            .unwrap();
        assert!(matches!(e, NodeError::Connect { .. }));
        assert!(e.to_string().contains(&port.to_string()));
    }
}
