//! Debian's munin master: munin-update's directories, ingesting a spool through our
//! munin-async, and reading the RRDs back with rrdtool.

use super::*;

pub fn chown(user: &str, path: &Path) {
    let ok = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {user} {}", path.display());
}

/// Creates munin-update's directories in `dir`, owned by munin.
pub fn master_dirs(dir: &Path) {
    for d in ["db", "html", "log", "run"] {
        fs::create_dir(dir.join(d)).unwrap();
        chown("munin", &dir.join(d));
    }
}

/// Runs Debian's munin-update as munin with its directories in `dir` and one host,
/// `e2e;node1`, at `address`.
pub fn munin_update_in(dir: &Path, global: &str, address: &str) -> Output {
    munin_update_hosts_in(
        dir,
        global,
        &format!("[e2e;node1]\n    address {address}\n"),
    )
}

/// Runs Debian's munin-update as munin with its directories in `dir`, the `global`
/// settings and `hosts` (munin.conf sections).
pub fn munin_update_hosts_in(dir: &Path, global: &str, hosts: &str) -> Output {
    munin_update_as(dir, global, hosts, "--nofork --debug")
}

/// The same in munin-update's default, forking mode, as cron runs it: each node's worker
/// is a process of its own, killed after `timeout_fetch_one_node` (set in `global`).
pub fn munin_update_forking_in(dir: &Path, global: &str, hosts: &str) -> Output {
    munin_update_as(dir, global, hosts, "")
}

fn munin_update_as(dir: &Path, global: &str, hosts: &str, options: &str) -> Output {
    let conf = format!(
        "dbdir {d}/db\nhtmldir {d}/html\nlogdir {d}/log\nrundir {d}/run\n{global}\n{hosts}",
        d = dir.display()
    );
    fs::write(dir.join("munin.conf"), conf).unwrap();
    let cmd = format!(
        "{MUNIN_UPDATE} --config_file {} {options}",
        dir.join("munin.conf").display()
    );
    run(
        Command::new("su").args(["munin", "-s", "/bin/sh", "-c", &cmd]),
        b"",
        Duration::from_secs(180),
    )
}

/// Hands `spool` to the munin user and has Debian's munin-update ingest it through our
/// munin-async over `cmd://`, with its directories in `dir`; RRDs land in `dir/db/e2e`.
pub fn ingest_spool(dir: &Path, spool: &Path) {
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(our_async(), bin.join("munin-async")).unwrap();
    master_dirs(dir);
    // Deployed, the daemon and munin-async run as one user; here munin-update runs
    // munin-async as munin.
    assert!(Command::new("chown")
        .args(["-R", "munin:"])
        .arg(spool)
        .status()
        .unwrap()
        .success());
    let out = munin_update_in(
        dir,
        "",
        &format!(
            "cmd://{} --spooldir {} --spoolfetch",
            bin.join("munin-async").display(),
            spool.display()
        ),
    );
    assert!(out.status.success(), "munin-update: {}", out.stderr());
}

/// The fidelity comparison's two masters, in `work`: one ingests `spool` through our
/// munin-async (`work/via-spool`), the other polls the munin-node at `addr` (HOST:PORT)
/// directly (`work/direct`), as the master's ordinary mode does. Their directories.
pub fn via_spool_and_direct(work: &Path, spool: &Path, addr: &str) -> (PathBuf, PathBuf) {
    let via = work.join("via-spool");
    fs::create_dir(&via).unwrap();
    ingest_spool(&via, spool);
    let direct = work.join("direct");
    fs::create_dir(&direct).unwrap();
    master_dirs(&direct);
    let (host, port) = addr.split_once(':').expect("HOST:PORT");
    let out = munin_update_in(
        &direct,
        "",
        &format!("{host}\n    port {port}\n    use_node_name yes"),
    );
    assert!(out.status.success(), "munin-update: {}", out.stderr());
    (via, direct)
}

/// The values of `rrdtool fetch` output, NaN rows left out.
pub fn fetched_values(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|v| !v.is_nan())
        .collect()
}

pub fn rrdtool(args: &[&str]) -> String {
    let out = run(
        Command::new("rrdtool").args(args),
        b"",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "rrdtool {args:?}: {}", out.stderr());
    out.stdout()
}

/// rrdtool lastupdate: (time, value).
pub fn last_update(rrd: &Path) -> (u64, f64) {
    assert!(rrd.exists(), "{} was not created", rrd.display());
    let text = rrdtool(&["lastupdate", rrd.to_str().unwrap()]);
    let line = text.lines().last().unwrap();
    let (t, v) = line.split_once(':').unwrap();
    (t.trim().parse().unwrap(), v.trim().parse().unwrap())
}

/// `graph.attribute` or `graph.field.attribute` → value, for the test's host, from
/// munin-update's datafile.
pub fn datafile(db: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(db.join("datafile"))
        .unwrap_or_else(|e| panic!("{}/datafile: {e}", db.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix("e2e;node1:"))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| {
            // munin-update 2.0 appends the fields to graph_order once per block it parses,
            // and a spoolfetch holding two samples of a plugin has two blocks; munin-graph
            // and munin-html drop the repeats (munin_get_field_order). Compared as drawn.
            let v = if k.ends_with(".graph_order") {
                let mut seen = BTreeSet::new();
                v.split(' ')
                    .filter(|w| seen.insert(*w))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect()
}

/// Two numbers as munin-node and rrdtool print them (rrdtool rounds) are the same.
pub fn same_number(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y || (x - y).abs() <= 1e-6 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// The structure of an RRD (step, data sources, archives), without its values and times.
pub fn rrd_structure(rrd: &Path) -> Vec<String> {
    rrdtool(&["info", rrd.to_str().unwrap()])
        .lines()
        .filter(|l| {
            l.starts_with("step")
                || (l.starts_with("ds[")
                    && [".type", ".minimal_heartbeat", ".min ", ".max "]
                        .iter()
                        .any(|k| l.contains(k)))
                || (l.starts_with("rra[")
                    && !l.contains("cdp_prep")
                    && [".cf", ".rows", ".pdp_per_row", ".xff"]
                        .iter()
                        .any(|k| l.contains(k)))
        })
        .map(str::to_string)
        .collect()
}

/// RRD file name → the last value given to it ("U" when none).
pub fn last_values(db: &Path) -> BTreeMap<String, String> {
    last_updates(db)
        .into_iter()
        .map(|(name, (_, value))| (name, value))
        .collect()
}

/// RRD file name → (time, value) of its last update ("U" when none).
pub fn last_updates(db: &Path) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(db).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".rrd") {
            continue;
        }
        let text = rrdtool(&["lastupdate", path.to_str().unwrap()]);
        if let Some((t, v)) = text.lines().last().and_then(|l| l.split_once(':')) {
            if let Ok(t) = t.trim().parse() {
                out.insert(name, (t, v.trim().to_string()));
            }
        }
    }
    out
}
