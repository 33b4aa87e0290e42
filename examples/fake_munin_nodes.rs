//! Many fake munin-nodes in one process, for `bench/fanout.py`: fast enough that a
//! thousand nodes answering a whole round at once are not what the benchmark measures.
//!
//! `fake_munin_nodes BASE NODES PLUGINS RATE` listens on 127.0.0.1 ports BASE to
//! BASE+NODES-1; node k greets as `nodek`, lists plugins `p0` … `p{PLUGINS-1}`, each with
//! `update_rate RATE` and one GAUGE value. It prints `ready` once every port listens.
//! One thread, epoll, non-blocking sockets (a thousand ports: the tests' transport has a
//! thread per connection); the answers are the shared fake's, `tests/harness/fake_node.rs`.
//!
//! It also measures the lateness the benchmark is after where it can be seen to the
//! millisecond: when each `fetch` arrives, minus its slot (the last multiple of RATE
//! seconds). Once a round is over (the next slot begun) it prints a line on standard output:
//! `round SLOT N P50 P99 MAX`, N the requests seen and the others in milliseconds.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "../tests/harness/fake_node.rs"]
mod fake_node;
use fake_node::{greeting, munin_node};

struct Conn {
    stream: TcpStream,
    node: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Whether epoll watches for writing too.
    writing: bool,
}

fn arg(args: &[String], i: usize) -> usize {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("usage: fake_munin_nodes BASE NODES PLUGINS RATE"))
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Each round's arrival times, in milliseconds after its slot.
struct Rounds {
    rate_ms: u64,
    by_slot: HashMap<u64, Vec<u64>>,
}

impl Rounds {
    /// A fetch arrived now.
    fn seen(&mut self) {
        let now = now_ms();
        let slot = now / self.rate_ms * self.rate_ms;
        self.by_slot.entry(slot).or_default().push(now - slot);
    }

    /// Prints the rounds that are over.
    fn report(&mut self) {
        let now = now_ms();
        // Every request of a slot arrives before the next slot begins.
        let over = self.rate_ms;
        let mut done: Vec<u64> = self
            .by_slot
            .keys()
            .filter(|&&s| now >= s + over)
            .copied()
            .collect();
        done.sort_unstable();
        for slot in done {
            let mut late = self.by_slot.remove(&slot).unwrap_or_default();
            late.sort_unstable();
            let at = |q: f64| late[((q * late.len() as f64) as usize).min(late.len() - 1)];
            println!(
                "round {} {} {} {} {}",
                slot / 1000,
                late.len(),
                at(0.5),
                at(0.99),
                late[late.len() - 1]
            );
        }
    }
}

/// Answers one request line of node `node` in the shared fake's dialect (Debian's
/// munin-node's), timing each `fetch`. False for `quit`.
fn answer(
    line: &[u8],
    host: &str,
    (list, rate): (&str, usize),
    rounds: &mut Rounds,
    out: &mut Vec<u8>,
) -> bool {
    let mut text = |name: &[u8], fetch: bool, out: &mut Vec<u8>| {
        if fetch {
            rounds.seen();
            out.extend_from_slice(b"v.value 42\n");
        } else {
            out.extend_from_slice(b"graph_title ");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\nupdate_rate ");
            out.extend_from_slice(rate.to_string().as_bytes());
            out.extend_from_slice(b"\nv.label v\nv.type GAUGE\n");
        }
        true
    };
    munin_node(line, host, list, &mut text, out)
}

fn ctl(epfd: i32, op: i32, fd: i32, events: u32) {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: epoll_ctl on descriptors this process owns, with a valid event.
    unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, nodes, plugins, rate) = (arg(&args, 1), arg(&args, 2), arg(&args, 3), arg(&args, 4));
    let list = (0..plugins)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let hosts: Vec<String> = (0..nodes).map(|k| format!("node{k}")).collect();
    // SAFETY: creates an epoll descriptor.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epfd >= 0, "epoll_create1");
    let mut listeners: HashMap<i32, (TcpListener, usize)> = HashMap::new();
    for k in 0..nodes {
        let l = TcpListener::bind(("127.0.0.1", (base + k) as u16)).expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        ctl(
            epfd,
            libc::EPOLL_CTL_ADD,
            l.as_raw_fd(),
            libc::EPOLLIN as u32,
        );
        listeners.insert(l.as_raw_fd(), (l, k));
    }
    println!("ready");
    let mut conns: HashMap<i32, Conn> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 16 * 1024];
    let mut rounds = Rounds {
        rate_ms: rate.max(1) as u64 * 1000,
        by_slot: HashMap::new(),
    };
    loop {
        rounds.report();
        // SAFETY: waits into a buffer of the given length.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 1000) };
        for ev in events.iter().take(n.max(0) as usize) {
            let fd = ev.u64 as i32;
            if let Some((l, k)) = listeners.get(&fd) {
                while let Ok((stream, _)) = l.accept() {
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.set_nodelay(true);
                    let cfd = stream.as_raw_fd();
                    let mut c = Conn {
                        stream,
                        node: *k,
                        input: Vec::new(),
                        output: greeting(&hosts[*k]),
                        writing: false,
                    };
                    let _ = flush(&mut c);
                    c.writing = !c.output.is_empty();
                    ctl(epfd, libc::EPOLL_CTL_ADD, cfd, interest(&c));
                    conns.insert(cfd, c);
                }
                continue;
            }
            let Some(c) = conns.get_mut(&fd) else {
                continue;
            };
            let mut open = true;
            // One read an event: a request is a line or two, and epoll reports the
            // socket again while more waits.
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => open = false,
                    Ok(m) => c.input.extend_from_slice(&buf[..m]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => open = false,
                }
                break;
            }
            let mut used = 0;
            while let Some(end) = c.input[used..].iter().position(|&b| b == b'\n') {
                let line = &c.input[used..used + end];
                used += end + 1;
                if !answer(
                    line,
                    &hosts[c.node],
                    (&list, rate),
                    &mut rounds,
                    &mut c.output,
                ) {
                    open = false;
                    break;
                }
            }
            c.input.drain(..used);
            if open {
                open = flush(c).is_ok();
            }
            if !open {
                ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0);
                conns.remove(&fd);
            } else if c.writing == c.output.is_empty() {
                // Told to epoll only when it changes: a system call a request saved.
                c.writing = !c.output.is_empty();
                ctl(epfd, libc::EPOLL_CTL_MOD, fd, interest(c));
            }
        }
    }
}

/// Reading always; writing too while output waits.
fn interest(c: &Conn) -> u32 {
    let mut e = libc::EPOLLIN as u32;
    if !c.output.is_empty() {
        e |= libc::EPOLLOUT as u32;
    }
    e
}

/// Writes what it can of the waiting output.
fn flush(c: &mut Conn) -> std::io::Result<()> {
    while !c.output.is_empty() {
        match c.stream.write(&c.output) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(m) => {
                c.output.drain(..m);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
