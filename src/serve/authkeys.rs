//! The hardened `authorized_keys` line for a master's key (`munin-async --authorized-keys`).
//!
//! sshd runs the forced command instead of whatever the master asks for, and the options
//! take away everything else a key can do:
//!
//! ```text
//! no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc,from="192.0.2.0/24",command="/usr/share/munin/munin-async --spooldir /var/lib/munin-async --spoolfetch" ssh-ed25519 AAAA... munin@master
//! ```
//!
//! The forced command goes through the munin-async user's shell, so every word of it must
//! be plain: paths with spaces, quotes or shell characters are refused rather than quoted.

use std::path::Path;

/// The options every line carries, before `from=` and `command=`.
pub(crate) const OPTIONS: &str =
    "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc";

/// What the forced command runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forced<'a> {
    /// munin-async's own path.
    pub(crate) program: &'a Path,
    /// The spool directory.
    pub(crate) spooldir: &'a Path,
    /// `--hostname`, if given.
    pub(crate) hostname: Option<&'a str>,
    /// `--catchup-window`, if given.
    pub(crate) catchup_window: Option<u64>,
    /// `--compat-output`, if given.
    pub(crate) compat_output: bool,
    /// `--node-from-ssh`, with its `--config` file if given.
    pub(crate) node_from_ssh: Option<Option<&'a Path>>,
}

/// One `authorized_keys` line per public key in `keys` (the text of a `.pub` file, or of
/// an `authorized_keys` file without options). `from` restricts the master's address
/// (sshd's pattern-list, e.g. `192.0.2.0/24,2001:db8::/32`).
pub(crate) fn lines(
    forced: Forced<'_>,
    from: Option<&str>,
    keys: &str,
) -> Result<Vec<String>, String> {
    let mut command = vec![
        plain("munin-async's path", &forced.program.to_string_lossy())?,
        "--spooldir".to_string(),
        plain("--spooldir", &forced.spooldir.to_string_lossy())?,
    ];
    if let Some(h) = forced.hostname {
        command.extend(["--hostname".to_string(), plain("--hostname", h)?]);
    }
    if let Some(w) = forced.catchup_window {
        command.extend(["--catchup-window".to_string(), w.to_string()]);
    }
    if forced.compat_output {
        command.push("--compat-output".to_string());
    }
    if let Some(config) = forced.node_from_ssh {
        command.push("--node-from-ssh".to_string());
        if let Some(file) = config {
            command.extend([
                "--config".to_string(),
                plain("--config", &file.to_string_lossy())?,
            ]);
        }
    }
    command.push("--spoolfetch".to_string());
    let mut options = OPTIONS.to_string();
    if let Some(from) = from {
        if from.is_empty()
            || !from
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/,*?!-_[]".contains(&b))
        {
            return Err(format!(
                "--from {from:?}: expected addresses or host patterns separated by commas"
            ));
        }
        options.push_str(&format!(",from=\"{from}\""));
    }
    let prefix = format!("{options},command=\"{}\"", command.join(" "));
    let mut out = Vec::new();
    for (n, line) in keys.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(format!(
            "{prefix} {}",
            public_key(line).map_err(|e| format!("line {}: {e}", n + 1))?
        ));
    }
    if out.is_empty() {
        return Err("no public key found".into());
    }
    Ok(out)
}

/// A word the shell passes through unchanged.
fn plain(what: &str, word: &str) -> Result<String, String> {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-,:=@%".contains(&b))
    {
        Ok(word.to_string())
    } else {
        Err(format!(
            "{what} {word:?} would need quoting in a forced command: use a path of letters, \
             digits and / . _ + - only"
        ))
    }
}

/// Checks one public key line: `TYPE BASE64 [COMMENT]`, without options of its own.
fn public_key(line: &str) -> Result<&str, String> {
    let mut words = line.split_ascii_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("expected a public key: TYPE BASE64 [COMMENT]".into());
    };
    let known = kind.starts_with("ssh-")
        || kind.starts_with("ecdsa-sha2-")
        || kind.starts_with("sk-ssh-")
        || kind.starts_with("sk-ecdsa-");
    if !known {
        return Err(format!(
            "{:?} is not a public key type (does the line carry options already?)",
            kind.chars().take(40).collect::<String>()
        ));
    }
    let base64 = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !base64 || blob.len() < 16 {
        return Err(format!("the key of type {kind} is not base64"));
    }
    if line.contains('"') {
        return Err("a public key line has no quotes".into());
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forced<'a>(program: &'a str, spool: &'a str) -> Forced<'a> {
        Forced {
            program: Path::new(program),
            spooldir: Path::new(spool),
            hostname: None,
            catchup_window: None,
            compat_output: false,
            node_from_ssh: None,
        }
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx2 munin@master";

    #[test]
    fn the_complete_line() {
        let got = lines(
            forced("/usr/share/munin/munin-async", "/var/lib/munin-async"),
            Some("192.0.2.0/24"),
            &format!("# the master\n\n{KEY}\n"),
        )
        .unwrap();
        assert_eq!(
            got,
            [format!(
                "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc,\
                 from=\"192.0.2.0/24\",command=\"/usr/share/munin/munin-async --spooldir \
                 /var/lib/munin-async --spoolfetch\" {KEY}"
            )]
        );
        let f = Forced {
            hostname: Some("node.example.org"),
            catchup_window: Some(3600),
            compat_output: false,
            ..forced("/usr/bin/munin-async", "/srv/spool")
        };
        let got = lines(f, None, KEY).unwrap();
        assert!(got[0].contains(
            "command=\"/usr/bin/munin-async --spooldir /srv/spool --hostname node.example.org \
             --catchup-window 3600 --spoolfetch\" ssh-ed25519"
        ));
        assert!(!got[0].contains("from="));
        // One key for a spooling host: the node comes from the master's command.
        let f = Forced {
            node_from_ssh: Some(Some(Path::new("/etc/munin/munin-asyncd.conf"))),
            ..forced("/usr/bin/munin-async", "/var/lib/munin-async")
        };
        let got = lines(f, None, KEY).unwrap();
        assert!(got[0].contains(
            "command=\"/usr/bin/munin-async --spooldir /var/lib/munin-async --node-from-ssh \
             --config /etc/munin/munin-asyncd.conf --spoolfetch\" ssh-ed25519"
        ));
    }

    #[test]
    fn what_cannot_go_into_a_safe_line_is_refused() {
        let ok = forced("/usr/bin/munin-async", "/var/lib/munin-async");
        for bad_spool in ["/var/lib/a b", "/x\"; rm -rf /", "/x$(id)", "/x`id`", ""] {
            let e = lines(forced("/usr/bin/munin-async", bad_spool), None, KEY).unwrap_err();
            assert!(e.contains("--spooldir"), "{e}");
        }
        for bad_from in ["", "a\"b", "1.2.3.4 5.6.7.8"] {
            assert!(lines(ok, Some(bad_from), KEY).is_err(), "{bad_from:?}");
        }
        for bad_key in [
            "",
            "# only a comment",
            "command=\"/bin/sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx2",
            "ssh-ed25519",
            "ssh-ed25519 not*base64*at*all",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx2 \"quoted\"",
        ] {
            assert!(lines(ok, None, bad_key).is_err(), "{bad_key:?}");
        }
        let e = lines(ok, None, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB\nbogus key").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
