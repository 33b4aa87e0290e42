//! Spools for tests: written by Debian's Perl SpoolWriter or the harness's classic writer,
//! and waiting for munin-asyncd to spool a plugin.

use super::*;

/// One sample for Perl's SpoolWriter: time, plugin name, output lines.
pub struct Sample<'a> {
    pub time: u64,
    pub plugin: &'a str,
    pub lines: Vec<String>,
}

/// Writes samples into `spool` with Debian's own `Munin::Node::SpoolWriter`.
pub fn perl_spool(spool: &Path, interval: u64, hostname: &str, samples: &[Sample]) {
    require("/usr/share/perl5/Munin/Node/SpoolWriter.pm", "munin-async");
    fs::create_dir_all(spool).unwrap();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let mut script = format!(
        "use Munin::Node::SpoolWriter;\nmy $w = Munin::Node::SpoolWriter->new(spooldir => '{}', interval_size => {interval}, hostname => '{hostname}');\n",
        spool.display()
    );
    for s in samples {
        let lines: Vec<String> = s
            .lines
            .iter()
            .map(|l| format!("pack('H*', '{}')", hex(l)))
            .collect();
        script += &format!(
            "$w->write({}, pack('H*', '{}'), [{}]);\n",
            s.time,
            hex(s.plugin),
            lines.join(", ")
        );
    }
    let out = run(
        &mut Command::new("perl"),
        script.as_bytes(),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "perl SpoolWriter failed: {}",
        out.stderr()
    );
}

/// Writes samples in the classic format exactly as Debian's `Munin::Node::SpoolWriter`
/// does (the name sanitised, `timestamp T`, `multigraph NAME` unless the output starts
/// with one, every line but blank and `.` ones), and its SPOOL-META keys. For the tests
/// that must run without Debian's munin; `differential.rs` checks it against Perl's writer
/// byte for byte.
pub fn classic_spool(spool: &Path, interval: u64, hostname: &str, samples: &[Sample]) {
    fs::create_dir_all(spool).unwrap();
    let meta_path = spool.join("SPOOL-META");
    let mut meta: Vec<(String, String)> = fs::read_to_string(&meta_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("interval_size", interval.to_string()),
        ("interval_keep", "7".to_string()),
        ("hostname", hostname.to_string()),
    ] {
        meta.retain(|(key, _)| key != k);
        meta.push((k.to_string(), v));
    }
    let text: String = meta.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    fs::write(&meta_path, text).unwrap();
    for s in samples {
        let service = munin_async::spool::names::sanitise(s.plugin.as_bytes());
        let start = s.time - s.time % interval;
        let path = spool.join(format!("munin-daemon.{service}.{start}.{interval}"));
        let mut out = format!("timestamp {}\n", s.time);
        if !s.lines.first().is_some_and(|l| l.starts_with("multigraph")) {
            out += &format!("multigraph {service}\n");
        }
        for l in s.lines.iter().filter(|l| !l.is_empty() && *l != ".") {
            out += l;
            out.push('\n');
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(out.as_bytes()).unwrap();
    }
}

/// Whether munin-asyncd has spooled `plugin` into `spool` (its SPOOL-META says so).
pub fn spooled(spool: &Path, plugin: &str) -> bool {
    fs::read_to_string(spool.join("SPOOL-META"))
        .unwrap_or_default()
        .contains(&format!("last-timestamp.{plugin}:"))
}

/// Waits until each (spool, plugin) is spooled; fails with the daemon's `log` after `limit`.
pub fn wait_spooled(pairs: &[(&Path, &str)], log: &Path, limit: Duration) {
    eventually(
        limit,
        || {
            format!(
                "not spooled: {}",
                fs::read_to_string(log).unwrap_or_default()
            )
        },
        || pairs.iter().all(|(spool, plugin)| spooled(spool, plugin)),
    );
}

/// How many records munin-asyncd has written for `plugin` in `spool`, whole or not (the
/// `timestamp` lines of its interval files): cheap enough to poll while it runs.
pub fn records(spool: &Path, plugin: &str) -> usize {
    let prefix = format!("munin-daemon.{plugin}.");
    fs::read_dir(spool)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| {
            let text = fs::read(e.path()).unwrap_or_default();
            memchr_count(&text, b"\ntimestamp ") + usize::from(text.starts_with(b"timestamp "))
        })
        .sum()
}

/// Waits until `plugin` has at least `n` records in `spool`; fails with the daemon's `log`.
pub fn wait_records(spool: &Path, plugin: &str, n: usize, log: &Path, limit: Duration) {
    eventually(
        limit,
        || {
            format!(
                "{plugin}: {} of {n} records: {}",
                records(spool, plugin),
                fs::read_to_string(log).unwrap_or_default()
            )
        },
        || records(spool, plugin) >= n,
    );
}

fn memchr_count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Every sample munin-async serves from the whole spool, as (graph, time), after checking
/// that each record is whole: one time per record, and a `big` record with all 2000 fields
/// and labels. Also the times of each graph must strictly increase (no timestamp twice).
pub fn served(spool: &Path, when: &str) -> BTreeSet<(String, u64)> {
    let out = ours(
        spool,
        &["--spoolfetch", "--catchup-window", "0"],
        "spoolfetch 0\n",
    );
    assert!(out.status.success(), "{when}: {}", out.stderr());
    whole_records(&out.stdout(), when)
}

/// The samples of a spoolfetch reply, as (graph, time), after checking each sample is
/// whole and no graph has a time twice (see [`served`]). Works on both forms of the
/// reply: a block per record (`--compat-output`) or a block per run of equal configs.
pub fn whole_records(text: &str, when: &str) -> BTreeSet<(String, u64)> {
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    for line in after_greeting(text).lines() {
        if let Some(g) = line.strip_prefix("multigraph ") {
            blocks.push((g.to_string(), Vec::new()));
        } else if line != "." {
            let Some(last) = blocks.last_mut() else {
                panic!("{when}: a line before any block: {line:?}");
            };
            last.1.push(line);
        }
    }
    // graph → time → fields with a value at that time (for `big`, how many: a record
    // served twice would give 4000).
    let mut samples: BTreeMap<String, BTreeMap<u64, BTreeSet<&str>>> = BTreeMap::new();
    let mut big: BTreeMap<u64, usize> = BTreeMap::new();
    for (graph, lines) in &blocks {
        if graph == "big" {
            let labels = lines.iter().filter(|l| l.contains(".label ")).count();
            assert_eq!(labels, 2000, "{when}: a big block without its whole config");
        }
        let times = samples.entry(graph.clone()).or_default();
        for (field, v) in lines.iter().filter_map(|l| l.split_once(".value ")) {
            let t: u64 = v
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{when}: {graph}: a value without its time: {v}"));
            if graph == "big" {
                *big.entry(t).or_default() += 1;
                times.entry(t).or_default();
            } else {
                assert!(
                    times.entry(t).or_default().insert(field),
                    "{when}: {graph}: {field} twice at {t} (a record served twice)"
                );
            }
        }
    }
    for (t, n) in &big {
        assert_eq!(*n, 2000, "{when}: a big record at {t} torn or served twice");
    }
    samples
        .into_iter()
        .flat_map(|(g, ts)| ts.into_keys().map(move |t| (g.clone(), t)))
        .collect()
}
