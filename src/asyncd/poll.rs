//! One poll of one plugin, run on a worker: config, then fetch, spooled with the time its
//! request was sent, and reported to the node's coordinator as a [`Done`].

use std::sync::Arc;

use crate::asyncd::commit::Commit;
use crate::asyncd::env::Env;
use crate::asyncd::msg::{Done, PollError, Reply, Sample, NOTHING};
use crate::asyncd::node::{NodeConn, NodeError};
use crate::asyncd::schedule::rate_in_config;
use crate::asyncd::workers::NodeLink;
use crate::spool::names::sanitise;
use crate::spool::record::is_value_line;
use crate::spool::writer::{record_body, SpoolWriter};
use crate::util::log::Quoted;
use crate::{log_debug, log_info, log_warn};

/// The rate the master assumes for a plugin whose config declares none.
const MASTER_DEFAULT_RATE: u64 = 300;

/// A poll for a worker.
pub(crate) struct Job {
    pub(crate) id: usize,
    pub(crate) plugin: String,
    /// Config and fetch in one write (the plugin's last config carried no values).
    pub(crate) pipeline: bool,
    /// The plugin's last sample is at this time minus one: a sample now must be later.
    pub(crate) not_before: u64,
    /// The spool of the plugin's node.
    pub(crate) writer: Arc<SpoolWriter>,
    /// How the record becomes durable, and when it is reported.
    pub(crate) commit: Commit,
}

/// One poll, on a worker: with an idle connection of the node's or a new one, spooled,
/// and reported to the node's coordinator.
pub(crate) fn run_job(job: Job, link: &NodeLink, env: &Env, reply: &Reply) {
    let started = env.now();
    let mut conn = None;
    let result = if env.stopping() {
        Err(PollError::Stopped)
    } else if env.unix() < job.not_before {
        Err(PollError::TooEarly {
            last: job.not_before - 1,
        })
    } else {
        conn = link.take(env.now());
        // How old a kept connection was when the poll began.
        let kept = conn
            .as_ref()
            .map(|c| started.saturating_duration_since(c.born));
        match (poll(link, env, &mut conn, &job), kept) {
            (Err(e), Some(age)) if e.ended_session() => {
                // A connection kept idle may have been closed meanwhile: munin-node ends
                // every session after its global_timeout (15 minutes by default) and at a
                // restart, and runs no plugin in a session's last 5 s. Once more on a new
                // one, and connections are used for less time from now on.
                log_debug!("plugin {}: {e}; again on a new connection", job.plugin);
                if let Some(life) = link.session_ended(age) {
                    log_info!(
                        "munin-node at {} ended the session of a connection {} s old (its \
                         global_timeout, or a restart): connections are used for {} s at \
                         most until the plugin list is read again",
                        link.host,
                        age.as_secs(),
                        life.as_secs()
                    );
                }
                conn = None;
                poll(link, env, &mut conn, &job)
            }
            (result, _) => result,
        }
    };
    // After a node, write or plugin fault the connection may be in any state, or held by
    // a munin-node process left over from before a restart: it is not kept.
    if !matches!(
        result,
        Err(PollError::Node(_) | PollError::Write(_) | PollError::Plugin { .. })
    ) {
        if let Some(c) = conn {
            link.give_back(c);
        }
    }
    let report = Done {
        id: job.id,
        took: env.now().saturating_duration_since(started),
        result,
    };
    // The connection is free now; with the group commit the sample counts after its sync.
    job.commit.report(job.writer, reply, report);
}

/// One sample of one plugin: config, then fetch unless config carried the values.
fn poll(
    link: &NodeLink,
    env: &Env,
    conn: &mut Option<NodeConn>,
    job: &Job,
) -> Result<Sample, PollError> {
    let (plugin, not_before) = (job.plugin.as_str(), job.not_before);
    let c = match conn {
        Some(c) => c,
        None => open(link, env, conn).map_err(PollError::Node)?,
    };
    let config_time = env.unix();
    let config_asked = env.now();
    let (config, fetched) = if job.pipeline {
        // The fetch's time: when munin-node starts on it, once the config is answered.
        let (config, fetch_time, fetched) = c
            .config_and_fetch(plugin, || (env.unix(), env.now()))
            .map_err(PollError::Node)?;
        (config, Some((fetch_time, fetched)))
    } else {
        (c.config(plugin).map_err(PollError::Node)?, None)
    };
    let config_took = env.now().saturating_duration_since(config_asked);
    if config.first().is_some_and(|l| is_unknown_plugin(l)) {
        return Err(PollError::Unknown);
    }
    if config
        .iter()
        .all(|l| l.starts_with(b"#") || l.trim_ascii().is_empty())
    {
        return Err(PollError::Plugin {
            request: "config",
            said: comments(&config),
            took: config_took,
        });
    }
    let dirty = config.iter().any(|l| is_value_line(l));
    let (time, values) = if dirty {
        // A fetch asked with the config is not used: the config's values are.
        (config_time, Vec::new())
    } else {
        let ((t, fetch_asked), values) = match fetched {
            Some(fetched) => fetched,
            None => (
                (env.unix(), env.now()),
                c.fetch(plugin).map_err(PollError::Node)?,
            ),
        };
        if !values.iter().any(|l| is_value_line(l))
            && values.iter().any(|l| !l.trim_ascii().is_empty())
        {
            // `# Bad exit`, `# Timeout`, or lines that are no values: a failure. A reply
            // of nothing but `.` is an answer (see below).
            return Err(PollError::Plugin {
                request: "fetch",
                said: comments(&values),
                took: env.now().saturating_duration_since(fetch_asked),
            });
        }
        (t, values)
    };
    // A fetch that answered nothing at all (Debian's diskstats on its first run only
    // records its state) is spooled as Perl does: the record carries the config, so the
    // master learns the graph now, not a whole rate later.
    let empty = !dirty && !values.iter().any(|l| is_value_line(l));
    if time < not_before {
        return Err(PollError::TooEarly {
            last: not_before - 1,
        });
    }
    let rate = rate_in_config(config.iter().map(Vec::as_slice)).map(|r| r.seconds);
    let default_rate = format!("update_rate {}", link.default_rate).into_bytes();
    let mut lines: Vec<&[u8]> = Vec::with_capacity(config.len() + values.len() + 1);
    let mut rest = config.iter().map(Vec::as_slice).peekable();
    if rate.is_none() && link.default_rate != MASTER_DEFAULT_RATE {
        // A config without update_rate is polled at --update-rate; when that is not the
        // master's own default, the master must be told (as Munin's development branch
        // does), after a leading multigraph line if there is one. Otherwise the config
        // goes to the master as munin-node sent it.
        if let Some(first) = rest.next_if(|l| l.starts_with(b"multigraph")) {
            lines.push(first);
        }
        lines.push(&default_rate);
    }
    lines.extend(rest);
    lines.extend(values.iter().map(Vec::as_slice));
    let service = sanitise(plugin.as_bytes());
    let mut body = Vec::new();
    let dropped = record_body(&service, lines, &mut body);
    if dropped > 0 {
        log_warn!("plugin {plugin}: {dropped} line(s) that would read as a record header left out");
    }
    job.commit
        .append(&job.writer, plugin, time, &body)
        .map_err(PollError::Write)?;
    log_debug!(
        "spooled {plugin} at {time} ({} bytes{})",
        body.len(),
        if empty {
            ", config only: the fetch gave no value"
        } else {
            ""
        }
    );
    Ok(Sample {
        time,
        rate,
        empty,
        dirty,
    })
}

/// Whether a config's first line says the node has no such plugin: Debian's munin-node
/// says `# Unknown service`, munin-node-c `# unknown plugin: NAME`.
fn is_unknown_plugin(line: &[u8]) -> bool {
    let starts = |with: &[u8]| {
        line.get(..with.len())
            .is_some_and(|l| l.eq_ignore_ascii_case(with))
    };
    starts(b"# unknown service") || starts(b"# unknown plugin")
}

/// Opens a connection to the node into `conn`, born by `env`'s clock.
fn open<'c>(
    link: &NodeLink,
    env: &Env,
    conn: &'c mut Option<NodeConn>,
) -> Result<&'c mut NodeConn, NodeError> {
    let mut c = link.connect()?;
    c.born = env.now();
    Ok(conn.insert(c))
}

/// What a failed reply said, for the log: its comment lines, or "nothing".
fn comments(reply: &[Vec<u8>]) -> String {
    let said: Vec<String> = reply
        .iter()
        .filter(|l| l.starts_with(b"#"))
        .take(3)
        .map(|l| Quoted(&l[..l.len().min(100)]).to_string())
        .collect();
    if said.is_empty() {
        NOTHING.to_string()
    } else {
        said.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::asyncd::node::NodeError;

    #[test]
    fn a_session_ended_under_a_poll_is_told_from_a_plugin_that_fails() {
        let said =
            |reply: &[&[u8]]| comments(&reply.iter().map(|l| l.to_vec()).collect::<Vec<_>>());
        let plugin = |request, reply: &[&[u8]], took| PollError::Plugin {
            request,
            said: said(reply),
            took,
        };
        let (at_once, later) = (Duration::from_millis(20), Duration::from_secs(10));
        let closed = PollError::Node(NodeError::Closed {
            request: "config a".to_string(),
        });
        assert!(closed.ended_session());
        assert!(plugin("config", &[], later).ended_session());
        assert!(plugin("config", &[b"# Timed out"], at_once).ended_session());
        assert!(plugin("fetch", &[b"# Timed out"], at_once).ended_session());
        // The alarm of a session's last seconds, outlasted on a loaded machine.
        let slow = Duration::from_millis(2400);
        assert!(plugin("fetch", &[b"# Timed out"], slow).ended_session());
        // A plugin that hangs is killed after munin-node's timeout; one that fails, fails.
        assert!(!plugin("config", &[b"# Timed out"], later).ended_session());
        assert!(!plugin("config", &[b"# Bad exit"], at_once).ended_session());
        assert!(!plugin("fetch", &[], at_once).ended_session());
        assert!(!PollError::Unknown.ended_session());
    }
}
