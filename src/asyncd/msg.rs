//! The messages of munin-asyncd's threads, at the bottom of its modules: what a worker, the
//! group commit or a signal sends the driving thread ([`Input`], [`Event`], through a
//! [`Reply`]), and what a poll reports ([`Done`], [`PollError`]). Their producers and their
//! consumer both import this module, and it imports neither.

use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::asyncd::node::NodeError;
use crate::asyncd::node_spool::NodeSpool;
use crate::spool::writer::WriteError;

/// What reading the plugin list gives.
pub(crate) type ListResult = Result<Found, NodeError>;

/// What munin-node listed.
pub(crate) struct Found {
    /// The name its greeting gave.
    pub(crate) hostname: String,
    /// Each node's plugins: its own first (named ""), then each virtual node whose spool
    /// is open.
    pub(crate) lists: Vec<(String, Vec<String>)>,
    /// The spools of virtual nodes listed for the first time, opened on the worker.
    pub(crate) opened: Vec<NodeSpool>,
}

/// What the driving thread hears: a node's event, or a request of the operator's (from
/// the signal handler's thread, or a test).
pub(crate) enum Input {
    /// An event of the node at this index.
    Node(usize, Event),
    /// SIGTERM or SIGINT: stop, letting polls under way land.
    Stop,
    /// SIGHUP: read every node's plugin list again.
    Reload,
}

/// What wakes the driving loop for a node: a poll done or written, the plugin list read,
/// a cleanup over, a health sample, a plugin list file or a SPOOL-META written.
pub(crate) enum Event {
    /// A poll wrote its record, which waits for the group commit's sync: its connection
    /// is free, and its `Done` follows the sync.
    Written {
        id: usize,
    },
    Done(Done),
    Listed(ListResult),
    /// Old spool files cleaned up (what went is logged).
    Cleaned,
    /// The health sample at `time` spooled (or not).
    HealthWritten {
        time: u64,
        result: Result<(), WriteError>,
    },
    /// A spool's plugin list file written (or not).
    ListWritten {
        spool: usize,
        list: Vec<String>,
        result: Result<(), WriteError>,
    },
    /// A spool's SPOOL-META written (or not).
    Published {
        spool: usize,
        result: Result<(), WriteError>,
    },
}

/// Where a worker reports to: the driving loop's channel, tagged with the node.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) node: usize,
    pub(crate) tx: Sender<Input>,
}

impl Reply {
    /// Sends `event` for this node (nothing when the loop is gone).
    pub(crate) fn send(&self, event: Event) {
        let _ = self.tx.send(Input::Node(self.node, event));
    }
}

/// What a worker reports.
pub(crate) struct Done {
    pub(crate) id: usize,
    /// How long the poll took.
    pub(crate) took: Duration,
    pub(crate) result: Result<Sample, PollError>,
}

/// A spooled sample.
pub(crate) struct Sample {
    pub(crate) time: u64,
    pub(crate) rate: Option<u64>,
    /// The fetch answered no value (nothing but `.`): the record holds the config only.
    pub(crate) empty: bool,
    /// The config carried the values (dirtyconfig): no fetch was needed.
    pub(crate) dirty: bool,
}

/// Why a poll gave no sample.
pub(crate) enum PollError {
    Node(NodeError),
    Write(WriteError),
    Unknown,
    /// munin-node answered, but with nothing to spool: a config of comments only (munin-node
    /// says `# Bad exit` or `# Timeout` when the plugin failed), or a fetch of comments or
    /// other lines but no value. (A fetch of nothing at all is spooled: see `Sample::empty`.)
    Plugin {
        request: &'static str,
        said: String,
        /// How long munin-node took to answer that request.
        took: Duration,
    },
    /// Not started: the daemon is stopping.
    Stopped,
    /// The plugin already has a sample at this second (a restart within the second of
    /// the last sample, or a clock that went back): a second one would be refused by RRD.
    TooEarly {
        last: u64,
    },
}

impl PollError {
    /// Whether a connection's session may have ended under a poll that took `took`:
    /// closed, a config that said nothing at all, or `# Timed out` within
    /// [`SESSION_CLAMP`]. munin-node gives a plugin its `timeout` cut to the session's end
    /// less 5 s (Munin::Common::Timeout): in those last 5 s it answers `# Timed out`
    /// without running the plugin, and just before them it runs it under an alarm of a
    /// second or two, which a loaded machine's fork and exec can outlast. A plugin that
    /// really hangs is given the whole `timeout` (whole seconds: 10 unless set, Debian's
    /// munin-node.conf suggests 60).
    pub(crate) fn ended_session(&self) -> bool {
        match self {
            PollError::Node(NodeError::Closed { .. }) => true,
            PollError::Plugin {
                request,
                said,
                took,
            } => {
                (*request == "config" && said == NOTHING)
                    || (said == TIMED_OUT && *took < SESSION_CLAMP)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollError::Node(e) => e.fmt(f),
            PollError::Write(e) => e.fmt(f),
            PollError::Unknown => f.write_str("munin-node does not know this plugin (any more)"),
            PollError::Stopped => f.write_str("not polled: stopping"),
            PollError::Plugin { request, said, .. } => {
                write!(f, "{request} gave nothing to spool ({said}); not spooled")
            }
            PollError::TooEarly { last } => write!(
                f,
                "skipped: samples up to {last} are spooled already (a restart within that second, or a clock gone back)"
            ),
        }
    }
}

/// How soon a `# Timed out` comes when it is a session's end, not the plugin's own
/// timeout (see [`PollError::ended_session`]). It was a second until the test command
/// saw munin-node, on a machine busy compiling, take longer for the last second of a
/// session (tests/node_faults.rs, the short `global_timeout`).
pub(crate) const SESSION_CLAMP: Duration = Duration::from_secs(5);

/// What a reply without comment lines said.
pub(crate) const NOTHING: &str = "nothing";
/// What munin-node's `# Timed out` said, as `poll::comments` puts it.
pub(crate) const TIMED_OUT: &str = "\"# Timed out\"";
