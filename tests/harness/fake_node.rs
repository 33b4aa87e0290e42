//! The one hand-written munin-node, for faults a real one cannot produce on demand.

use super::*;

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
