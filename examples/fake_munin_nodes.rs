//! Many fake munin-nodes in one process, for `bench/fanout.py`: fast enough that a
//! thousand nodes answering a whole round at once are not what the benchmark measures.
//!
//! `fake_munin_nodes BASE NODES PLUGINS RATE` listens on 127.0.0.1 ports BASE to
//! BASE+NODES-1; node k greets as `nodek`, lists plugins `p0` … `p{PLUGINS-1}`, each with
//! `update_rate RATE` and one GAUGE value. It prints `ready` once every port listens.
//! One thread, epoll, non-blocking sockets.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

struct Conn {
    stream: TcpStream,
    node: usize,
    input: Vec<u8>,
    output: Vec<u8>,
}

fn arg(args: &[String], i: usize) -> usize {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("usage: fake_munin_nodes BASE NODES PLUGINS RATE"))
}

fn answer(line: &[u8], node: usize, list: &str, rate: usize, out: &mut Vec<u8>) -> bool {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    if line.starts_with("cap") {
        out.extend_from_slice(b"cap multigraph dirtyconfig\n");
    } else if line == "nodes" {
        out.extend_from_slice(format!("node{node}\n.\n").as_bytes());
    } else if line.starts_with("list") {
        out.extend_from_slice(list.as_bytes());
    } else if let Some(p) = line.strip_prefix("config ") {
        let text = format!("graph_title {p}\nupdate_rate {rate}\nv.label v\nv.type GAUGE\n.\n");
        out.extend_from_slice(text.as_bytes());
    } else if line.starts_with("fetch ") {
        out.extend_from_slice(b"v.value 42\n.\n");
    } else if line == "quit" {
        return false;
    } else {
        out.extend_from_slice(b"# Unknown command\n");
    }
    true
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
        .join(" ")
        + "\n";
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
    loop {
        // SAFETY: waits into a buffer of the given length.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, -1) };
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
                        output: format!("# munin node at node{k}\n").into_bytes(),
                    };
                    let _ = flush(&mut c);
                    ctl(epfd, libc::EPOLL_CTL_ADD, cfd, interest(&c));
                    conns.insert(cfd, c);
                }
                continue;
            }
            let Some(c) = conns.get_mut(&fd) else {
                continue;
            };
            let mut open = true;
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(m) => c.input.extend_from_slice(&buf[..m]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            while let Some(end) = c.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.input.drain(..=end).collect();
                if !answer(&line, c.node, &list, rate, &mut c.output) {
                    open = false;
                    break;
                }
            }
            if open {
                open = flush(c).is_ok();
            }
            if open {
                ctl(epfd, libc::EPOLL_CTL_MOD, fd, interest(c));
            } else {
                ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0);
                conns.remove(&fd);
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
