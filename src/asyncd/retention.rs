//! Keeping a node's spools within bounds: files older than `--interval` × `--retain` go,
//! and with `--max-spool-size` the oldest files go while a spool is over it. The removal
//! itself is the spool writer's ([`crate::spool::writer::SpoolWriter::cleanup`]); this is
//! what is cleaned and what is logged (the coordinator says when, and hands it to a worker).

use std::sync::Arc;

use crate::asyncd::cli::DaemonConfig;
use crate::spool::writer::SpoolWriter;
use crate::{log_error, log_info, log_warn};

/// What a cleanup keeps: files younger than `max_age` seconds, and with `max_bytes`, at
/// most that many bytes a spool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    max_age: u64,
    max_bytes: Option<u64>,
}

impl Bounds {
    /// The bounds `cfg` sets.
    pub(crate) fn of(cfg: &DaemonConfig) -> Bounds {
        Bounds {
            max_age: cfg.interval.saturating_mul(cfg.retain),
            max_bytes: cfg.max_spool_bytes,
        }
    }
}

/// Cleans each of `spools` at `now`, logging what went. Run on a worker: a directory
/// read a spool, and a thousand nodes at a site.
pub(crate) fn clean(bounds: Bounds, spools: &[Arc<SpoolWriter>], now: u64) {
    for writer in spools {
        let dir = writer.dir();
        match writer.cleanup(now, bounds.max_age) {
            Ok(r) if r.removed > 0 => {
                log_info!(
                    "cleanup of {}: {} old spool files removed",
                    dir.display(),
                    r.removed
                )
            }
            Ok(_) => {}
            Err(e) => log_error!("cleanup: {e}"),
        }
        let Some(max) = bounds.max_bytes else {
            continue;
        };
        match writer.cap_size(now, max) {
            Ok(r) => {
                if r.removed > 0 {
                    log_warn!(
                        "{} is over --max-spool-size ({max} bytes): dropped its {} oldest \
                         files ({} bytes of samples a master may not have fetched)",
                        dir.display(),
                        r.removed,
                        r.bytes
                    );
                }
                if r.left > max {
                    log_warn!(
                        "{} holds {} bytes, over --max-spool-size ({max}), in files of the \
                         current interval, which are kept: a shorter --interval helps",
                        dir.display(),
                        r.left
                    );
                }
            }
            Err(e) => log_error!("size cap: {e}"),
        }
    }
}
