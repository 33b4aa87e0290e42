//! Any bytes as SPOOL-META: parsing and every accessor return a value or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use munin_async::spool::meta::SpoolMeta;

fuzz_target!(|data: &[u8]| {
    let m = SpoolMeta::parse(data);
    if let Ok(Some(h)) = m.hostname() {
        assert!(!h.is_empty() && !h.contains(' '));
    }
    if let Ok(n) = m.interval_size() {
        assert!(n >= 1);
    }
    let _ = m.interval_keep();
    let _ = m.get("plugin_rates/x");
});
