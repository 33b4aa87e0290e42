//! The munin-node line protocol, as munin-async answers it: parsing what the master
//! sends.
//!
//! Commands are one line each. Perl's munin-async matched prefixes (`^list`, `^cap`), so
//! `listing` counted as `list`; we match whole words, which is what every master sends.

/// The longest command line we accept from the master.
pub(crate) const MAX_COMMAND: usize = 64 * 1024;

/// What `spoolfetch` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// `spoolfetch N`: records newer than N.
    After(u64),
    /// `spoolfetch -N`: records of the last N seconds (Munin's development branch).
    Last(u64),
}

/// A command from the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// `cap WORD…`
    Cap(Vec<&'a [u8]>),
    /// `list [node]`
    List(Option<&'a [u8]>),
    /// `nodes`
    Nodes,
    /// `config PLUGIN`
    Config(&'a [u8]),
    /// `fetch PLUGIN`
    Fetch(&'a [u8]),
    /// `spoolfetch N` or `spoolfetch -N`
    Spoolfetch(Since),
    /// `spoolfetch` with a missing or unusable argument: the argument as sent.
    BadSpoolfetch(&'a [u8]),
    /// `config` or `fetch` without a plugin name.
    MissingPlugin(&'a [u8]),
    /// `version`
    Version,
    /// `quit` or `.`
    Quit,
    /// An empty line.
    Empty,
    /// Anything else.
    Unknown,
}

/// Parses one line (without its `\n`; a trailing `\r` and surrounding blanks are ignored).
pub(crate) fn parse(line: &[u8]) -> Command<'_> {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let Some(verb) = words.next() else {
        return Command::Empty;
    };
    let arg = words.next();
    match verb {
        b"cap" => Command::Cap(arg.into_iter().chain(words).collect()),
        b"list" => Command::List(arg),
        b"nodes" => Command::Nodes,
        b"config" => arg.map_or(Command::MissingPlugin(verb), Command::Config),
        b"fetch" => arg.map_or(Command::MissingPlugin(verb), Command::Fetch),
        b"version" => Command::Version,
        b"quit" | b"." => Command::Quit,
        b"spoolfetch" => match arg {
            Some(a) => parse_since(a).map_or(Command::BadSpoolfetch(a), Command::Spoolfetch),
            None => Command::BadSpoolfetch(b""),
        },
        _ => Command::Unknown,
    }
}

fn parse_since(arg: &[u8]) -> Option<Since> {
    match arg.strip_prefix(b"-") {
        Some(n) => crate::spool::names::parse_decimal(n).map(Since::Last),
        None => crate::spool::names::parse_decimal(arg).map(Since::After),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let cases: &[(&[u8], Command)] = &[
            (
                b"cap multigraph dirtyconfig",
                Command::Cap(vec![b"multigraph", b"dirtyconfig"]),
            ),
            (b"cap", Command::Cap(vec![])),
            (b"list", Command::List(None)),
            (b"list node1 \r", Command::List(Some(b"node1"))),
            (b"nodes", Command::Nodes),
            (b"config load", Command::Config(b"load")),
            (b"fetch  if_eth0", Command::Fetch(b"if_eth0")),
            (b"fetch", Command::MissingPlugin(b"fetch")),
            (
                b"spoolfetch 1795546911",
                Command::Spoolfetch(Since::After(1795546911)),
            ),
            (b"spoolfetch 0\r", Command::Spoolfetch(Since::After(0))),
            (b"spoolfetch -3600", Command::Spoolfetch(Since::Last(3600))),
            (b"spoolfetch", Command::BadSpoolfetch(b"")),
            (b"spoolfetch abc", Command::BadSpoolfetch(b"abc")),
            (b"spoolfetch 12abc", Command::BadSpoolfetch(b"12abc")),
            (
                b"spoolfetch 99999999999999999999999",
                Command::BadSpoolfetch(b"99999999999999999999999"),
            ),
            (b"spoolfetch --5", Command::BadSpoolfetch(b"--5")),
            (b"version", Command::Version),
            (b"quit", Command::Quit),
            (b".", Command::Quit),
            (b"", Command::Empty),
            (b" \t\r", Command::Empty),
            (b"listing", Command::Unknown),
            (b"\x00\xff\xfe", Command::Unknown),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
