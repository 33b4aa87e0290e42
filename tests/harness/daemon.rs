//! Running our munin-asyncd against a node, stopping it, reading what it spooled, and the
//! test plugins several suites share.

use super::*;

/// About 100 KB a record (2000 fields), every second.
pub const BIG: &str = "#!/bin/sh
if [ \"$1\" = config ]; then
  echo 'graph_title Big'
  echo 'update_rate 1'
  seq 1 2000 | sed 's/.*/f&.label field number &/'
  exit 0
fi
t=$(date +%s)
seq 1 2000 | sed \"s/.*/f&.value $t/\"
";

/// (graph, field) → the times of its values, from a spoolfetch reply.
pub fn value_times(reply: &str) -> BTreeMap<(String, String), Vec<u64>> {
    let mut graph = String::new();
    let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for line in reply.lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            graph = g.to_string();
        } else if let Some((field, v)) = line.split_once(".value ") {
            let t = v.split(':').next().unwrap().parse().unwrap();
            out.entry((graph.clone(), field.to_string()))
                .or_default()
                .push(t);
        }
    }
    out
}

/// A 1-second plugin whose fetch takes `delay` (a shell `sleep` argument).
pub fn one_second_plugin(name: &str, delay: &str) -> String {
    format!(
        "#!/bin/sh\nif [ \"$1\" = config ]; then\n  printf 'graph_title {name}\\nupdate_rate 1\\nv.label v\\n'\n  exit 0\nfi\nsleep {delay}\necho \"v.value 1\"\n"
    )
}

pub fn start_daemon(
    addr: &str,
    spool: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) -> Running {
    start_daemon_env(addr, spool, log, extra, &[])
}

pub fn start_daemon_env(
    addr: &str,
    spool: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
) -> Running {
    Running(
        Command::new(our_asyncd())
            .envs(env.iter().copied())
            .args(["--host", addr, "--spooldir"])
            .arg(spool)
            .args(["--screen", "-v"])
            .args(if extra.contains(&"--durability") {
                &[][..]
            } else {
                &["--durability", "kernel"][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    )
}

pub fn stop(mut daemon: Running) {
    stop_within(
        &mut daemon,
        Duration::from_secs(2),
        "munin-asyncd did not stop",
    );
}

/// Sends SIGTERM and fails the test unless the daemon is gone within `limit`.
pub fn stop_within(daemon: &mut Running, limit: Duration, what: &str) -> std::process::ExitStatus {
    let pid = daemon.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    wait_exit(&mut daemon.0, limit, what)
}

/// A plugin with one field, answering at once.
pub fn simple_plugin(title: &str) -> String {
    format!("#!/bin/sh\nif [ \"$1\" = config ]; then printf 'graph_title {title}\\nv.label v\\n'; exit 0; fi\necho 'v.value 1'\n")
}

/// Copies a spool without SPOOL-META (so without complete_until), to read everything in it.
pub fn copy_without_watermark(
    spool: &std::path::Path,
    copy: &std::path::Path,
) -> std::path::PathBuf {
    fs::create_dir(copy).unwrap();
    for e in fs::read_dir(spool).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "SPOOL-META" {
            fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    copy.to_path_buf()
}

/// Every (graph, time) pair a spoolfetch reply carries, with repeats.
pub fn pairs(reply: &str) -> Vec<(String, u64)> {
    value_times(reply)
        .into_iter()
        .flat_map(|((graph, _), times)| times.into_iter().map(move |t| (graph.clone(), t)))
        .collect()
}
