//! Any bytes from a master: the session answers, never panics, and stays in bounds, over a
//! spool with plain, sealed and damaged records.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use munin_async::serve::session::{run, Catchup, SessionConfig};
use munin_async::serve::spoolfetch::Form;
use munin_async::spool::record::write_sealed;
use munin_async::spool::Spool;

fn spool() -> &'static (tempfile::TempDir, Spool) {
    static SPOOL: OnceLock<(tempfile::TempDir, Spool)> = OnceLock::new();
    SPOOL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("SPOOL-META"), "hostname:fuzz\ninterval_size:3600\n").unwrap();
        let mut plain = Vec::new();
        let mut sealed = Vec::new();
        for i in 0..20u64 {
            let t = 7200 + i * 300;
            write!(plain, "timestamp {t}\nmultigraph load\ngraph_title Load\nload.label load\nload.value {i}\n").unwrap();
            write_sealed(t, format!("multigraph mg\nx.value {i}\nmultigraph mg.sub\ny.value N:{i}\n").as_bytes(), &mut sealed);
        }
        sealed.extend_from_slice(b"timestamp 99999 len=500 crc32=00000000\ntorn");
        std::fs::write(dir.path().join("munin-daemon.load.7200.3600"), &plain).unwrap();
        std::fs::write(dir.path().join("munin-daemon.mg.7200.3600"), &sealed).unwrap();
        std::fs::write(dir.path().join("munin-daemon.junk.7200.3600"), b"\xff\x00junk\ntimestamp 1x\n").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        (dir, spool)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, spool) = spool();
    let cfg = SessionConfig {
        hostname: "fuzz".into(),
        spoolfetch: true,
        catchup: Catchup::Intervals(2),
        form: if data.first().is_some_and(|b| b & 1 == 1) {
            Form::Records
        } else {
            Form::Blocks
        },
        interval_size: 3600,
        clock: || 10_000,
    };
    let mut out = Vec::new();
    run(spool, &cfg, data, &mut out).unwrap();
    assert!(out.starts_with(b"# munin node at fuzz\n"));
});
