//! `--node-from-ssh`: one forced command serving every node of a spooling host. sshd
//! hands the command the master sent to the forced command as `SSH_ORIGINAL_COMMAND`;
//! Munin 2.0's master sends the address's path and words (Munin::Master::Node::_do_connect):
//! `ssh://munin-async@spool1/web1` sends `/web1 `, `ssh://munin-async@spool1 web1` sends
//! ` web1`, and a master set up for Perl's per-node keys sends a whole command line,
//! `/usr/share/munin/munin-async --spoolfetch --spooldir DIR`.
//!
//! [`parse`] reads that text ([`Asked`]) and [`Allowed::resolve`] maps it to a spool directory the
//! admin configured: the spool directory itself (no command), a section of munin-asyncd's
//! `--config` file, a virtual node's directory under either, or a `--spooldir` naming one
//! of those. Anything else is refused ([`Refused`]): never a shell, never a path the admin
//! did not configure.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::asyncd::fanout::NodeEntry;

/// The longest command taken: a node's name, or Perl's command line with a path.
const MAX_COMMAND: usize = 4096;

/// The longest node name (a file name's limit).
const MAX_NAME: usize = 255;

/// What the master asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Asked {
    /// No command: the spool directory itself.
    Root,
    /// A node by name.
    Node(String),
    /// A spool directory by path (`--spooldir DIR`, Perl's per-node command line).
    Dir(PathBuf),
}

/// Why a command is refused, said in one line to the master and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

/// Whether `name` is a plain node name: 1 to 255 bytes of letters, digits, `.`, `-`, `_`,
/// not starting with `.` or `-`, without `..`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Reads `SSH_ORIGINAL_COMMAND` (None when sshd set none).
pub(crate) fn parse(command: Option<&[u8]>) -> Result<Asked, Refused> {
    let Some(command) = command else {
        return Ok(Asked::Root);
    };
    if command.len() > MAX_COMMAND {
        return refuse(format!("a command of {} bytes", command.len()));
    }
    if let Some(b) = command
        .iter()
        .find(|&&b| !(b.is_ascii_graphic() || b == b' ' || b == b'\t'))
    {
        return refuse(format!("byte 0x{b:02x} in the command"));
    }
    // Printable ASCII only, so this cannot fail.
    let text = String::from_utf8_lossy(command);
    let words: Vec<&str> = text.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    match words.as_slice() {
        [] => Ok(Asked::Root),
        [one] if !one.starts_with('-') && !one[1..].contains('/') && !is_program(one) => {
            let name = one.strip_prefix('/').unwrap_or(one);
            if plain_name(name) {
                Ok(Asked::Node(name.to_string()))
            } else {
                refuse(format!("{one:?} is not a node name"))
            }
        }
        [first, rest @ ..] => {
            let options = if is_program(first) { rest } else { &words[..] };
            command_line(options)
        }
    }
}

/// Whether a word names munin-async itself (`/usr/share/munin/munin-async`).
fn is_program(word: &str) -> bool {
    word.rsplit('/').next() == Some("munin-async")
}

/// Perl's per-node command line, past the program: `--spoolfetch` and `--vectorfetch`
/// (how this forced command serves is its own to say), and `--spooldir DIR` once.
fn command_line(options: &[&str]) -> Result<Asked, Refused> {
    let mut dir = None;
    let mut words = options.iter();
    while let Some(&word) = words.next() {
        let value = match word {
            "--spoolfetch" | "--vectorfetch" => continue,
            "--spooldir" | "-s" => match words.next() {
                Some(v) => *v,
                None => return refuse(format!("{word} without a directory")),
            },
            w if w.starts_with("--spooldir=") => &w["--spooldir=".len()..],
            other => return refuse(format!("option {other:?} is not taken")),
        };
        if dir.replace(value).is_some() {
            return refuse("--spooldir given twice");
        }
    }
    let Some(dir) = dir else {
        return Ok(Asked::Root);
    };
    let path = Path::new(dir);
    if !path.is_absolute() {
        return refuse(format!("--spooldir {dir:?}: not an absolute path"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return refuse(format!("--spooldir {dir:?}: `.` or `..` in the path"));
    }
    Ok(Asked::Dir(path.to_path_buf()))
}

/// The spool directories a master may be served from: the spool directory itself and each
/// `--config` section's, each with the virtual nodes' directories right under it.
pub(crate) struct Allowed {
    /// (name, directory as configured, its real path), the root first (named "").
    roots: Vec<(String, PathBuf, PathBuf)>,
}

impl Allowed {
    /// The spool directory `root` and the nodes of munin-asyncd's configuration file.
    pub(crate) fn new(root: &Path, sections: &[NodeEntry]) -> Result<Allowed, String> {
        let real = |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut roots = vec![(String::new(), root.to_path_buf(), real(root)?)];
        for s in sections {
            // A node not spooled yet has no directory: it cannot be served, nothing else.
            if let Ok(r) = real(&s.spooldir) {
                roots.push((s.name.clone(), s.spooldir.clone(), r));
            }
        }
        Ok(Allowed { roots })
    }

    /// The spool directory for what was asked.
    pub(crate) fn resolve(&self, asked: &Asked) -> Result<PathBuf, Refused> {
        match asked {
            Asked::Root => Ok(self.roots[0].1.clone()),
            Asked::Node(name) => {
                if let Some((_, dir, _)) = self.roots.iter().find(|(n, _, _)| n == name) {
                    return Ok(dir.clone());
                }
                // A virtual node, under the root first, then under each section's.
                for (_, dir, real) in &self.roots {
                    if Self::child(real, name).is_some() {
                        return Ok(dir.join(name));
                    }
                }
                refuse(format!("no node {name:?} is spooled here"))
            }
            Asked::Dir(path) => {
                let real = std::fs::canonicalize(path).or_else(|_| {
                    refuse(format!("--spooldir {}: no such directory", path.display()))
                })?;
                for (_, dir, root) in &self.roots {
                    if real == *root {
                        return Ok(dir.clone());
                    }
                    if real.parent() == Some(root.as_path()) {
                        if let Some(name) = real.file_name().and_then(|n| n.to_str()) {
                            if Self::child(root, name).is_some() {
                                return Ok(dir.join(name));
                            }
                        }
                    }
                }
                refuse(format!(
                    "--spooldir {}: not a spool directory served here",
                    path.display()
                ))
            }
        }
    }

    /// `root/name` when it is a directory of its own (not a symlink), and a spool: it has
    /// SPOOL-META, as every spool munin-asyncd wrote has.
    fn child(root: &Path, name: &str) -> Option<PathBuf> {
        if !plain_name(name) {
            return None;
        }
        let dir = root.join(name);
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        if !meta.is_dir() {
            return None;
        }
        std::fs::symlink_metadata(dir.join(crate::spool::meta::FILE_NAME))
            .ok()
            .filter(|m| m.is_file())?;
        Some(dir)
    }
}

/// Where the master's ssh connection comes from, as sshd says (`SSH_CONNECTION`'s or
/// `SSH_CLIENT`'s first word), for the log.
pub(crate) fn peer() -> String {
    ["SSH_CONNECTION", "SSH_CLIENT"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|v| v.split(' ').next().map(str::to_string))
        .filter(|a| !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "an unknown address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Asked, Refused> {
        parse(Some(s.as_bytes()))
    }

    #[test]
    fn what_munin_2_masters_send_is_understood() {
        assert_eq!(parse(None), Ok(Asked::Root));
        assert_eq!(p(""), Ok(Asked::Root));
        assert_eq!(p("  "), Ok(Asked::Root));
        // ssh://munin-async@spool1/web1 and ssh://munin-async@spool1 web1
        assert_eq!(p("/web1 "), Ok(Asked::Node("web1".into())));
        assert_eq!(
            p(" web1.example.org"),
            Ok(Asked::Node("web1.example.org".into()))
        );
        // Perl's per-node keys: the command line of the address.
        let dir = Asked::Dir("/var/lib/munin-async/web1".into());
        assert_eq!(
            p("/usr/share/munin/munin-async --spoolfetch --spooldir /var/lib/munin-async/web1"),
            Ok(dir.clone())
        );
        assert_eq!(p(" --spooldir=/var/lib/munin-async/web1"), Ok(dir.clone()));
        assert_eq!(
            p("munin-async -s /var/lib/munin-async/web1 --vectorfetch"),
            Ok(dir)
        );
        assert_eq!(
            p("/usr/share/munin/munin-async --spoolfetch"),
            Ok(Asked::Root)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let long = "a".repeat(256);
        let longest = "a".repeat(255);
        assert_eq!(p(&longest), Ok(Asked::Node(longest.clone())));
        for bad in [
            "..",
            "/..",
            "../etc",
            "a/b",
            "/a/b",
            ".hidden",
            "a..b",
            long.as_str(),
            "web1;id",
            "$(id)",
            "web1 web2",
            "-h",
            "--spooldir",
            "--spooldir relative/dir",
            "--spooldir /var/lib/munin-async/../../etc",
            "--spooldir /a --spooldir /b",
            "munin-async --cleanupandexit",
            "munin-async --spoolfetch --hostname evil",
            "/bin/sh -c id",
            "web1\u{e9}",
            "caf\u{0}e",
            "web1\n",
        ] {
            assert!(p(bad).is_err(), "{bad:?} taken: {:?}", p(bad));
        }
        assert!(parse(Some(&[b'a'; MAX_COMMAND + 1])).is_err());
    }

    fn spool(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("SPOOL-META"), "hostname:x\n").unwrap();
    }

    #[test]
    fn names_and_directories_map_only_to_spools_the_admin_configured() {
        let work = tempfile::tempdir().unwrap();
        let (root, web1, outside) = (
            work.path().join("spool"),
            work.path().join("other/web1"),
            work.path().join("outside"),
        );
        spool(&root);
        spool(&root.join("switch1"));
        spool(&web1);
        spool(&web1.join("snmp1"));
        spool(&outside);
        std::fs::create_dir(root.join("empty")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let sections = [
            NodeEntry {
                name: "web1".into(),
                host: "10.0.0.1:4949".into(),
                spooldir: web1.clone(),
            },
            NodeEntry {
                name: "later".into(),
                host: "10.0.0.2:4949".into(),
                spooldir: work.path().join("not-yet"),
            },
        ];
        let a = Allowed::new(&root, &sections).unwrap();
        let node = |n: &str| a.resolve(&Asked::Node(n.into()));
        let dir = |d: &Path| a.resolve(&Asked::Dir(d.into()));
        assert_eq!(a.resolve(&Asked::Root), Ok(root.clone()));
        assert_eq!(node("web1"), Ok(web1.clone()));
        assert_eq!(node("switch1"), Ok(root.join("switch1")));
        assert_eq!(node("snmp1"), Ok(web1.join("snmp1")));
        assert_eq!(dir(&web1), Ok(web1.clone()));
        assert_eq!(dir(&root.join("switch1")), Ok(root.join("switch1")));
        assert_eq!(dir(&web1.join("snmp1")), Ok(web1.join("snmp1")));
        for n in ["escape", "empty", "outside", "later", "nothing"] {
            assert!(node(n).is_err(), "{n}");
        }
        for d in [
            outside.clone(),
            root.join("escape"),
            root.join("empty"),
            work.path().to_path_buf(),
            PathBuf::from("/etc"),
        ] {
            assert!(dir(&d).is_err(), "{}", d.display());
        }
    }
}
