//! One node's spool directory as munin-asyncd holds it: opened, locked and repaired at
//! the start (or when a virtual node first appears), with what it held then (each
//! service's newest sample, the `complete_until` a master may have read up to) and what
//! its SPOOL-META says now.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::asyncd::ledger::Ledger;
use crate::log_warn;
use crate::spool::meta::{key, SpoolMeta};
use crate::spool::writer::{Durability, SpoolWriter, WriteError};
use crate::spool::Spool;

/// One node's spool directory.
pub(crate) struct NodeSpool {
    /// The node's name ("" for munin-node's own, spooled into the spool directory itself).
    pub(crate) node: String,
    pub(crate) writer: Arc<SpoolWriter>,
    /// The name SPOOL-META gives munin-async's greeting.
    pub(crate) hostname: String,
    /// Each service's newest sample found when the spool was opened.
    pub(crate) newest: BTreeMap<String, u64>,
    /// The complete_until found when the spool was opened: samples must be later.
    pub(crate) floor: u64,
    /// SPOOL-META as the spool was opened: how long each plugin's polls took before a
    /// restart (`poll_ms/<plugin>`), so the first round after it goes longest first too.
    pub(crate) before: SpoolMeta,
    /// What its SPOOL-META says, and where its writing is.
    pub(crate) ledger: Ledger,
    /// Its plugin list file.
    pub(crate) list: ListFile,
}

/// A spool's plugin list file (what munin-async answers `list` with), written on a
/// worker: one write at a time, none when the list is what was written last.
#[derive(Debug, Default)]
pub(crate) struct ListFile {
    /// The list the file holds, as far as this run knows.
    written: Option<Vec<String>>,
    /// A write is under way.
    writing: bool,
    /// The newest list, when it differs from the one being written.
    wanted: Option<Vec<String>>,
}

impl ListFile {
    /// Whether a write is under way.
    pub(crate) fn writing(&self) -> bool {
        self.writing
    }

    /// The list is `list` now: gives it back when a write should start.
    pub(crate) fn want(&mut self, list: Vec<String>) -> Option<Vec<String>> {
        if self.written.as_ref() == Some(&list) && !self.writing {
            self.wanted = None;
            return None;
        }
        if self.writing {
            self.wanted = Some(list);
            return None;
        }
        self.writing = true;
        Some(list)
    }

    /// Writing `list` is over (`ok` when it landed): gives the next list to write, when
    /// one came meanwhile.
    pub(crate) fn written(&mut self, list: Vec<String>, ok: bool) -> Option<Vec<String>> {
        self.writing = false;
        self.written = ok.then_some(list);
        let next = self.wanted.take()?;
        self.want(next)
    }
}

/// Whether a node name from munin-node can name a subdirectory: no `/`, no NUL, not `.`
/// or `..` or hidden, printable, at most 200 bytes. Dashes and dots inside are fine.
pub(crate) fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Whether a node munin-node lists (`nodes`) is its own, the one its greeting names.
/// munin-node lowercases the names in `nodes` but not the greeting's.
pub(crate) fn is_own_node(node: &str, greeting: &str) -> bool {
    node.eq_ignore_ascii_case(greeting)
}

/// Opens a node's spool, repairs it, and says what the repair did: the daemon's start on
/// a spool directory at `now` (the crash-state exploration runs it on every state it
/// makes).
pub(crate) fn open_spool(
    dir: &Path,
    node: &str,
    (interval, now): (u64, u64),
    durability: Durability,
) -> Result<NodeSpool, WriteError> {
    let writer = SpoolWriter::open(dir, interval, durability)?;
    let repaired = writer.repair()?;
    if repaired.files > 0 {
        log_warn!(
            "{}: cut {} bytes of torn records off {} files (an earlier crash)",
            dir.display(),
            repaired.bytes,
            repaired.files
        );
    }
    // A master may have read up to the complete_until published before: no sample may be
    // taken at or before it now, or the master's cursor would already be past it.
    let before = Spool::open(dir).ok().and_then(|s| s.meta().ok());
    // An idle daemon promises complete_until up to its next due poll (see `watermark`); a
    // crash can leave that promise beyond the newest sample. A master's cursor is a
    // sample's time, so the promise beyond the newest sample (and now) is taken back
    // before anything is polled: this start's polls may be at or before it. Not below the
    // newest sample: with a clock that went back (a step, a board booting without its
    // time), nothing is taken until the clock is past it; and a damaged value far ahead
    // cannot hold the daemon back beyond the samples that are there.
    let newest = repaired.newest.values().copied().max().unwrap_or(0);
    let floor = before
        .as_ref()
        .and_then(|m| m.complete_until())
        .map_or(0, |t| t.min(now.max(newest)));
    if let Some(m) = &before {
        if m.complete_until().is_some_and(|t| t > floor) {
            writer.write_meta(&m.pairs_with(key::COMPLETE_UNTIL, &floor.to_string()))?;
        }
    }
    if newest > now {
        // Samples stamped by a clock that ran ahead (a board whose clock was set wrong)
        // hold the spool until the clock catches up: only the admin can tell.
        let hint = if newest - now > 86_400 {
            "; if the clock that stamped them was wrong, move this spool directory aside \
             (and drop the master's state for this node)"
        } else {
            ""
        };
        log_warn!(
            "{}: the clock ({now}) is {} s behind the newest sample spooled ({newest}): \
             nothing is polled until it is past it{hint}",
            dir.display(),
            newest - now
        );
    }
    // The name munin-async greets the master with: a virtual node's own; for the spool
    // directory itself the one SPOOL-META already says, until munin-node tells us (a
    // restart while munin-node is down must not rename the host to "unknown").
    let hostname = if node.is_empty() {
        before
            .as_ref()
            .and_then(|m| m.hostname().ok().flatten())
            .unwrap_or_default()
            .to_string()
    } else {
        node.to_string()
    };
    Ok(NodeSpool {
        node: node.to_string(),
        writer: Arc::new(writer),
        hostname,
        newest: repaired.newest,
        floor,
        before: before.unwrap_or_default(),
        ledger: Ledger::default(),
        list: ListFile::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::{is_own_node, open_spool, valid_node_name, ListFile};
    use crate::spool::meta::SpoolMeta;
    use crate::spool::writer::Durability;
    use crate::util::clock::system_clock;

    #[test]
    fn a_start_takes_back_a_complete_until_promised_beyond_now() {
        // What an idle daemon killed in its sleep leaves: a promise to its next due poll.
        let dir = tempfile::tempdir().unwrap();
        let ahead = system_clock() + 3600;
        std::fs::write(
            dir.path().join("SPOOL-META"),
            format!("hostname:kept.example\ncomplete_until:{ahead}\nplugin_rates/a:300\n"),
        )
        .unwrap();
        let node = open_spool(dir.path(), "", (86400, system_clock()), Durability::Record).unwrap();
        let now = system_clock();
        assert!(node.floor <= now, "{}", node.floor);
        let meta = SpoolMeta::parse(&std::fs::read(dir.path().join("SPOOL-META")).unwrap());
        let c = meta.complete_until().unwrap();
        assert!(c <= now && c + 5 >= now, "complete_until {c}, now {now}");
        // Everything else is kept.
        assert_eq!(meta.hostname().unwrap(), Some("kept.example"));
        assert_eq!(meta.get("plugin_rates/a"), Some(&b"300"[..]));
    }
    #[test]
    fn a_list_file_is_written_once_per_change_one_write_at_a_time() {
        let l = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let mut f = ListFile::default();
        assert_eq!(f.want(l("a b")), Some(l("a b")));
        // Two lists while it is written: the newest follows it.
        assert_eq!(f.want(l("a")), None);
        assert_eq!(f.want(l("a c")), None);
        assert_eq!(f.written(l("a b"), true), Some(l("a c")));
        assert_eq!(f.written(l("a c"), true), None);
        assert_eq!(f.want(l("a c")), None, "unchanged: not rewritten");
        // A failed write is tried again with the next list, even an unchanged one.
        assert_eq!(f.want(l("d")), Some(l("d")));
        assert_eq!(f.written(l("d"), false), None);
        assert_eq!(f.want(l("d")), Some(l("d")));
    }
    #[test]
    fn the_greetings_node_is_munin_nodes_own_whatever_its_case() {
        // munin-node lowercases the names `nodes` lists, not the greeting's.
        assert!(is_own_node("web1.example.org", "Web1.Example.org"));
        assert!(is_own_node("web1", "web1"));
        assert!(!is_own_node("switch1.example", "web1.example.org"));
        assert!(!is_own_node("web1", "web1.example.org"));
    }
    #[test]
    fn node_names_that_can_name_a_directory() {
        for ok in ["virt.example", "switch-01", "a", "host_1.example.org"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        let long = "x".repeat(201);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "/abs",
            "a\0b",
            ".hidden",
            "sp ace",
            "tab\t",
            long.as_str(),
            "caf\u{e9}",
        ] {
            assert!(!valid_node_name(bad), "{bad:?}");
        }
    }
}
