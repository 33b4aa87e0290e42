//! The configuration file for polling several munin-nodes from one munin-asyncd (one
//! spooling host per site, the "fanout" of the seed document).
//!
//! ```text
//! # /etc/munin/munin-asyncd.conf
//! [web1]
//! host 10.0.0.11:4949
//! spooldir /var/lib/munin-async/web1
//!
//! [db1]
//! host db1.example.org:4949
//! spooldir /var/lib/munin-async/db1
//! ```
//!
//! One section per node, each with `host` and `spooldir`. Blank lines and `#` comments
//! are ignored. Everything else on the command line applies to every node. Any mistake is
//! refused at start with the file, the line and the setting.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One node to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeEntry {
    /// The section's name.
    pub(crate) name: String,
    /// munin-node's address, HOST:PORT.
    pub(crate) host: String,
    /// Where its samples are spooled.
    pub(crate) spooldir: PathBuf,
}

/// Parses the file's text; `file` names it in errors.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Vec<NodeEntry>, String> {
    let at = |line: usize, msg: String| format!("{}:{line}: {msg}", file.display());
    let mut entries: Vec<(usize, String, Option<String>, Option<PathBuf>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(at(
                    n,
                    format!("section name {name:?}: expected a name without spaces"),
                ));
            }
            if entries.iter().any(|e| e.1 == name) {
                return Err(at(n, format!("section [{name}] appears twice")));
            }
            entries.push((n, name.to_string(), None, None));
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(k, v)| (k, v.trim()));
        let Some(entry) = entries.last_mut() else {
            return Err(at(n, format!("{key:?} before any [node] section")));
        };
        if value.is_empty() {
            return Err(at(n, format!("{key} needs a value")));
        }
        match key {
            "host" if entry.2.is_some() => {
                return Err(at(n, "host set twice in this section".into()))
            }
            "host" if !value.contains(':') => {
                return Err(at(n, format!("host {value:?}: expected HOST:PORT")))
            }
            "host" => entry.2 = Some(value.to_string()),
            "spooldir" if entry.3.is_some() => {
                return Err(at(n, "spooldir set twice in this section".into()))
            }
            "spooldir" if !value.starts_with('/') => {
                return Err(at(
                    n,
                    format!("spooldir {value:?}: expected an absolute path"),
                ))
            }
            "spooldir" => entry.3 = Some(PathBuf::from(value)),
            other => {
                return Err(at(
                    n,
                    format!("unknown setting {other:?} (expected host or spooldir)"),
                ))
            }
        }
    }
    if entries.is_empty() {
        return Err(format!("{}: no [node] section", file.display()));
    }
    let mut spools = BTreeSet::new();
    let mut out = Vec::new();
    for (n, name, host, spooldir) in entries {
        let host = host.ok_or_else(|| at(n, format!("section [{name}] has no host")))?;
        let spooldir =
            spooldir.ok_or_else(|| at(n, format!("section [{name}] has no spooldir")))?;
        if !spools.insert(spooldir.clone()) {
            return Err(at(
                n,
                format!(
                    "section [{name}]: spooldir {} is another node's too",
                    spooldir.display()
                ),
            ));
        }
        out.push(NodeEntry {
            name,
            host,
            spooldir,
        });
    }
    Ok(out)
}

/// Reads and parses the file.
pub(crate) fn load(file: &Path) -> Result<Vec<NodeEntry>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    parse(file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<NodeEntry>, String> {
        parse(Path::new("/etc/munin/munin-asyncd.conf"), text)
    }

    #[test]
    fn nodes_with_comments_and_blanks() {
        let nodes = p("# sites\n\n[web1]\nhost 10.0.0.11:4949\nspooldir /var/lib/munin-async/web1\n[db1]\n  host   db1:4949  \nspooldir /s/db1\n").unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (nodes[1].name.as_str(), nodes[1].host.as_str()),
            ("db1", "db1:4949")
        );
        assert_eq!(
            nodes[0].spooldir,
            PathBuf::from("/var/lib/munin-async/web1")
        );
    }

    #[test]
    fn mistakes_name_the_file_the_line_and_the_setting() {
        let cases = [
            ("host a:1\n", ":1: \"host\" before any [node] section"),
            (
                "[a]\nhost a:1\nspooldir /x\n[a]\n",
                ":4: section [a] appears twice",
            ),
            (
                "[a]\nhost nocolon\n",
                ":2: host \"nocolon\": expected HOST:PORT",
            ),
            (
                "[a]\nhost a:1\nspooldir relative\n",
                ":3: spooldir \"relative\": expected an absolute path",
            ),
            ("[a]\nport 5\n", ":2: unknown setting \"port\""),
            ("[a]\nhost\n", ":2: host needs a value"),
            ("[a]\nspooldir /x\n", ":1: section [a] has no host"),
            (
                "[a]\nhost a:1\nspooldir /x\n[b]\nhost b:1\nspooldir /x\n",
                ":4: section [b]: spooldir /x is another node's too",
            ),
            ("[a]\nhost a:1\nhost b:1\n", ":3: host set twice"),
            ("[two words]\n", ":1: section name \"two words\""),
            ("", "no [node] section"),
        ];
        for (text, want) in cases {
            let e = p(text).unwrap_err();
            assert!(e.starts_with("/etc/munin/munin-asyncd.conf"), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
