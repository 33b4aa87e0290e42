//! Reading munin-node's plugin list, as one node's [`Lister`] holds it: when it is read
//! next ([`Listing`]: due, being read on a worker, retried with backoff while munin-node
//! does not answer), whether munin-node answered, and a SIGHUP's reload waiting for it.
//! Also the worker's side ([`read_lists`]: `cap`, `nodes`, a `list` per node, the spools
//! of new virtual nodes opened there, off the driving thread) and which plugins of a list
//! can be spooled ([`Spoolable`]).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::asyncd::env::{Env, Timings};
use crate::asyncd::health::PLUGIN;
use crate::asyncd::msg::{Found, ListResult};
use crate::asyncd::node::NodeError;
use crate::asyncd::node_spool::{is_own_node, open_spool, valid_node_name};
use crate::asyncd::workers::NodeLink;
use crate::spool::names::sanitise;
use crate::spool::writer::Durability;
use crate::util::log::Quoted;
use crate::{log_error, log_notice};

/// The longest plugin name spooled: its file name must stay under the usual 255 bytes.
const MAX_PLUGIN_NAME: usize = 200;

/// How soon the list is read again when a poll finds a plugin gone.
const SOON: Duration = Duration::from_secs(5);

/// When the plugin list is read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// munin-node answered the last read (or none was tried yet): read again at `at`.
    Due { at: Instant },
    /// Being read on a worker; `backoff`: the wait before the next try if it fails.
    Reading { backoff: Duration },
    /// munin-node did not answer: tried again at `at`, then after `backoff` if it still
    /// does not.
    Retrying { at: Instant, backoff: Duration },
}

/// One node's plugin list: when it is read, and what munin-node's answers were.
#[derive(Debug)]
pub(crate) struct Lister {
    state: Listing,
    /// A SIGHUP's reload waits for the next read to end: systemd hears READY=1 then.
    reloading: bool,
    /// Whether munin-node answered the last read (None before the first).
    up: Option<bool>,
    /// Since when munin-node cannot be reached (for the notice when it is back).
    down_since: Option<Instant>,
}

impl Lister {
    /// A node whose list is read at `now`.
    pub(crate) fn new(now: Instant) -> Lister {
        Lister {
            state: Listing::Due { at: now },
            reloading: false,
            up: None,
            down_since: None,
        }
    }

    /// Where the listing is.
    #[cfg(test)]
    pub(crate) fn state(&self) -> Listing {
        self.state
    }

    /// Whether a read should start at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        match self.state {
            Listing::Due { at } | Listing::Retrying { at, .. } => now >= at,
            Listing::Reading { .. } => false,
        }
    }

    /// Whether the list is being read.
    pub(crate) fn reading(&self) -> bool {
        matches!(self.state, Listing::Reading { .. })
    }

    /// A read went out to a worker.
    pub(crate) fn start(&mut self, timings: &Timings) {
        let backoff = match self.state {
            Listing::Retrying { backoff, .. } => backoff,
            Listing::Due { .. } | Listing::Reading { .. } => timings.first_backoff,
        };
        self.state = Listing::Reading { backoff };
    }

    /// A SIGHUP: the list is read at `now` (or the read under way answers it).
    pub(crate) fn reload(&mut self, now: Instant) {
        self.reloading = true;
        match &mut self.state {
            Listing::Due { at } | Listing::Retrying { at, .. } => *at = now,
            Listing::Reading { .. } => {}
        }
    }

    /// A poll found a plugin gone: the list is read within [`SOON`] (a read under way
    /// tells already).
    pub(crate) fn soon(&mut self, now: Instant) {
        match &mut self.state {
            Listing::Due { at } | Listing::Retrying { at, .. } => *at = (*at).min(now + SOON),
            Listing::Reading { .. } => {}
        }
    }

    /// When a read is next due: while one is under way, its end comes as an event (and
    /// this is a long way off).
    pub(crate) fn wake(&self, now: Instant, timings: &Timings) -> Instant {
        match self.state {
            Listing::Due { at } | Listing::Retrying { at, .. } => at,
            Listing::Reading { .. } => now + timings.relist_every,
        }
    }

    /// The second (since the epoch) the list is next read, `unix` being now (and now,
    /// while it is read): plugins it finds are polled at once, so nothing is promised
    /// beyond it.
    pub(crate) fn next_at(&self, now: Instant, unix: u64) -> u64 {
        match self.state {
            Listing::Due { at } | Listing::Retrying { at, .. } => {
                unix.saturating_add(at.saturating_duration_since(now).as_secs())
            }
            Listing::Reading { .. } => unix,
        }
    }

    /// The read failed with `e`: tried again after the backoff, which doubles up to
    /// `max_backoff`. The first failure after an answer is logged, and told systemd.
    pub(crate) fn failed(&mut self, e: &NodeError, env: &Env, host: &str, max_backoff: Duration) {
        let now = env.now();
        let backoff = match self.state {
            Listing::Reading { backoff } => backoff,
            _ => env.timings.first_backoff,
        };
        self.state = Listing::Retrying {
            at: now + backoff,
            backoff: (backoff * 2).min(max_backoff),
        };
        self.down_since.get_or_insert(now);
        if self.up != Some(false) {
            log_error!("{e}; retrying until it answers");
            env.notify(&format!(
                "STATUS=munin-node at {host} does not answer; retrying"
            ));
        }
        self.up = Some(false);
        self.reload_over(env);
    }

    /// The read found `plugins` plugins on `nodes` nodes: read again in
    /// `relist_every`. munin-node coming up (or back) is logged, and told systemd, as a
    /// reload's read is.
    pub(crate) fn answered(&mut self, env: &Env, host: &str, (plugins, nodes): (usize, usize)) {
        let now = env.now();
        self.state = Listing::Due {
            at: now + env.timings.relist_every,
        };
        let back = self
            .down_since
            .take()
            .map(|t| {
                let away = now.saturating_duration_since(t).as_secs();
                format!(" (back after {away} s)")
            })
            .unwrap_or_default();
        if self.up != Some(true) {
            log_notice!("munin-node at {host} is up{back}: {plugins} plugins on {nodes} node(s)");
            env.notify(&format!("STATUS=spooling {plugins} plugins of {host}"));
        } else if self.reloading {
            log_notice!("reload: {plugins} plugins on {nodes} node(s) at {host}");
        }
        self.up = Some(true);
        self.reload_over(env);
    }

    /// The reload is over, whether munin-node answered or not (then it is retried, and the
    /// status says so).
    fn reload_over(&mut self, env: &Env) {
        if std::mem::take(&mut self.reloading) {
            env.notify("READY=1");
        }
    }

    /// A poll could not connect at `now`: munin-node is down since then at the latest.
    pub(crate) fn unreachable(&mut self, now: Instant) {
        self.down_since.get_or_insert(now);
    }

    /// A poll brought a sample at `now`: munin-node answers again, logged when it was
    /// down.
    pub(crate) fn reached(&mut self, now: Instant, host: &str) {
        if let Some(t) = self.down_since.take() {
            let away = now.saturating_duration_since(t).as_secs();
            log_notice!("munin-node at {host} answers again after {away} s");
        }
    }
}

/// Where a listing's worker opens the spools of virtual nodes seen for the first time.
pub(crate) struct SpoolPlace {
    /// The spool directory: a virtual node's spool is its subdirectory.
    pub(crate) root: PathBuf,
    pub(crate) interval: u64,
    /// The time the listing began.
    pub(crate) now: u64,
    pub(crate) durability: Durability,
    /// The nodes whose spools are open already ("" for the spool directory itself).
    pub(crate) open: Vec<String>,
}

/// Reads the plugin list of munin-node at `host`, on a worker: munin-node's own node
/// first (named ""), then each virtual node it serves besides. The spool of a virtual
/// node not in `place.open` is opened here (a repair reads every file of it); one that
/// cannot be is logged and left out, and tried again at the next read.
pub(crate) fn read_lists(link: &NodeLink, place: &SpoolPlace) -> ListResult {
    let mut conn = link.connect()?;
    let nodes = conn.nodes()?;
    if !conn.in_step() {
        // `nodes` ended without its `.`: one that came late would end the next reply.
        conn.quit();
        conn = link.connect()?;
    }
    // munin-node's own node (the one its greeting names, what `list` without a node
    // returns) spools into the spool directory itself, as Perl's 2.0 munin-asyncd does:
    // the forced command every site has keeps serving it. Each other (virtual) node gets
    // a subdirectory.
    let mut lists = vec![(String::new(), conn.list("")?)];
    for node in nodes {
        if is_own_node(&node, &conn.hostname) {
            continue;
        }
        if valid_node_name(&node) {
            let plugins = conn.list(&node)?;
            lists.push((node, plugins));
        } else {
            log_error!(
                "virtual node {} cannot name a spool directory; not spooled",
                Quoted(node.as_bytes())
            );
        }
    }
    let hostname = conn.hostname.clone();
    conn.quit();
    let mut opened = Vec::new();
    lists.retain(|(node, _)| {
        if place.open.iter().any(|n| n == node) {
            return true;
        }
        match open_spool(
            &place.root.join(node),
            node,
            (place.interval, place.now),
            place.durability,
        ) {
            Ok(spool) => {
                opened.push(spool);
                true
            }
            Err(e) => {
                log_error!("{e}; virtual node {node} is not spooled");
                false
            }
        }
    });
    Ok(Found {
        hostname,
        lists,
        opened,
    })
}

/// Which plugins of a list can be spooled, each refusal logged once.
#[derive(Debug, Default)]
pub(crate) struct Spoolable {
    /// Plugins refused (spool, name).
    refused: BTreeSet<(usize, String)>,
}

impl Spoolable {
    /// The plugins of `list` that can be spooled into `spool`: a name must fit in a file
    /// name, and two names that sanitise alike (`if_eth0.1` and `if_eth0_1`) would share
    /// one spool file and mix their data, so only the first in the list is spooled (and
    /// none that would take the daemon's own `munin_asyncd`).
    pub(crate) fn filter(&mut self, spool: usize, list: &[String]) -> Vec<String> {
        // The daemon's own plugin has its file too.
        let own = PLUGIN.to_string();
        let mut files: BTreeMap<String, &String> = BTreeMap::from([(own.clone(), &own)]);
        let mut ok = Vec::with_capacity(list.len());
        for name in list {
            let why = if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
                Some(format!(
                    "a plugin name of {} bytes is not spooled (at most {MAX_PLUGIN_NAME})",
                    name.len()
                ))
            } else {
                match files.entry(sanitise(name.as_bytes())) {
                    Entry::Occupied(first) => Some(format!(
                        "plugin {} is not spooled: its spool file would be plugin {}'s ({})",
                        Quoted(name.as_bytes()),
                        Quoted(first.get().as_bytes()),
                        first.key()
                    )),
                    Entry::Vacant(v) => {
                        v.insert(name);
                        None
                    }
                }
            };
            match why {
                None => ok.push(name.clone()),
                Some(why) => {
                    if self.refused.insert((spool, name.clone())) {
                        log_error!("{why}");
                    }
                }
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings::default()
    }

    #[test]
    fn a_failing_node_is_retried_with_a_doubling_backoff_and_read_hourly_once_it_answers() {
        let t = timings();
        let start = Instant::now();
        let mut l = Lister::new(start);
        assert!(l.due(start));
        l.start(&t);
        assert!(l.reading() && !l.due(start + Duration::from_secs(9999)));
        assert_eq!(l.next_at(start, 1000), 1000);
        // What Lister::failed does to the state, without its logging.
        let mut backoffs = Vec::new();
        for _ in 0..8 {
            let Listing::Reading { backoff } = l.state() else {
                panic!("not reading: {:?}", l.state());
            };
            backoffs.push(backoff.as_secs());
            l.state = Listing::Retrying {
                at: start + backoff,
                backoff: (backoff * 2).min(Duration::from_secs(60)),
            };
            assert!(!l.due(start) && l.due(start + backoff));
            l.start(&t);
        }
        assert_eq!(backoffs, [1, 2, 4, 8, 16, 32, 60, 60]);
        // A SIGHUP while retrying reads now, and keeps the backoff.
        l.state = Listing::Retrying {
            at: start + Duration::from_secs(60),
            backoff: Duration::from_secs(60),
        };
        l.reload(start);
        assert!(l.due(start));
        l.start(&t);
        assert_eq!(
            l.state(),
            Listing::Reading {
                backoff: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn a_gone_plugin_brings_the_read_forward_never_back() {
        let t = timings();
        let start = Instant::now();
        let mut l = Lister::new(start);
        l.state = Listing::Due {
            at: start + t.relist_every,
        };
        assert_eq!(l.next_at(start, 1000), 1000 + t.relist_every.as_secs());
        l.soon(start);
        assert_eq!(l.wake(start, &t), start + SOON);
        l.soon(start + SOON);
        assert_eq!(l.wake(start, &t), start + SOON);
        // While a read is under way, its end tells.
        l.start(&t);
        l.soon(start);
        assert!(l.reading());
        assert_eq!(l.wake(start, &t), start + t.relist_every);
    }

    #[test]
    fn plugins_that_would_share_a_file_or_overflow_a_name_are_refused_once() {
        let mut s = Spoolable::default();
        let list: Vec<String> = ["if_eth0.1", "if_eth0_1", "munin_asyncd", "cpu"]
            .iter()
            .map(|s| s.to_string())
            .chain(["x".repeat(201), String::new()])
            .collect();
        assert_eq!(s.filter(0, &list), ["if_eth0.1", "cpu"]);
        assert_eq!(s.refused.len(), 4);
        assert_eq!(s.filter(0, &list), ["if_eth0.1", "cpu"]);
        assert_eq!(s.refused.len(), 4);
        // Another spool is another directory.
        assert_eq!(s.filter(1, &list[1..2]), ["if_eth0_1"]);
    }
}
