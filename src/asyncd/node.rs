//! A client of munin-node's line protocol, as munin-asyncd uses it.
//!
//! Every request has a deadline, and every reply is bounded in line length and total
//! size. A node that hangs, trickles, sends an endless line or closes mid-reply fails that
//! one request with an error that says which, and the connection is dropped.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::util::line::{LineEnd, LineReader};

/// The longest line accepted from munin-node.
pub(crate) const MAX_LINE: usize = 1 << 20;
/// The largest reply accepted for one request: what fits in one spool record.
pub(crate) const MAX_REPLY: usize = crate::spool::record::MAX_RECORD;

/// The lines of a multi-line reply, without the final `.`.
pub(crate) type Reply = Vec<Vec<u8>>;

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
}

impl NodeConn {
    /// Connects and reads the greeting; every later request gets `timeout`.
    pub(crate) fn connect(addr: &str, timeout: Duration) -> Result<NodeConn, NodeError> {
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
    fn multi_line(&mut self, request: &str) -> Result<Vec<Vec<u8>>, NodeError> {
        self.send(request)?;
        self.reply(request)
    }

    /// Reads the reply to `request`, lines up to a line starting with `.`.
    fn reply(&mut self, request: &str) -> Result<Vec<Vec<u8>>, NodeError> {
        let mut lines = Vec::new();
        let mut size = 0;
        loop {
            let line = self.read_line(request)?;
            // Perl's munin-asyncd ends a reply at any line starting with `.`.
            if line.starts_with(b".") {
                return Ok(lines);
            }
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

    /// Announces our capabilities; returns the node's.
    pub(crate) fn cap(&mut self, caps: &str) -> Result<Vec<String>, NodeError> {
        let request = format!("cap {caps}");
        let line = self.one_line(&request)?;
        let text = String::from_utf8_lossy(&line);
        match text.strip_prefix("cap") {
            Some(rest) => Ok(rest.split_whitespace().map(String::from).collect()),
            None if text.starts_with('#') => Ok(Vec::new()),
            None => Err(NodeError::Protocol {
                request,
                what: format!(
                    "expected a cap line, got {:?}",
                    crate::util::log::Quoted(&line).to_string()
                ),
            }),
        }
    }

    /// The virtual nodes the node serves.
    pub(crate) fn nodes(&mut self) -> Result<Vec<String>, NodeError> {
        Ok(self
            .multi_line("nodes")?
            .iter()
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
        self.multi_line(&format!("config {plugin}"))
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
        let configured = self.reply(&config)?;
        let got = between();
        let timeout = self.timeout;
        self.inner().deadline = Instant::now() + timeout;
        let fetched = self.reply(&fetch)?;
        Ok((configured, got, fetched))
    }

    /// A plugin's fetch output.
    pub(crate) fn fetch(&mut self, plugin: &str) -> Result<Vec<Vec<u8>>, NodeError> {
        self.multi_line(&format!("fetch {plugin}"))
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
