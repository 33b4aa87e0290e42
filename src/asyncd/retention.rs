//! Keeping a node's spools within bounds: files older than `--interval` × `--retain` go,
//! and with `--max-spool-size` the oldest files go while a spool is over it. The removal
//! itself is the spool writer's ([`crate::spool::writer::SpoolWriter::cleanup`]); this is
//! when and what is logged.

use crate::asyncd::cli::DaemonConfig;
use crate::asyncd::daemon::NodeSpool;
use crate::{log_error, log_info, log_warn};

/// Cleans each of `spools` at `now`, logging what went.
pub(crate) fn clean(cfg: &DaemonConfig, spools: &[NodeSpool], now: u64) {
    let max_age = cfg.interval.saturating_mul(cfg.retain);
    for spool in spools {
        let dir = spool.writer.dir();
        match spool.writer.cleanup(now, max_age) {
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
        let Some(max) = cfg.max_spool_bytes else {
            continue;
        };
        match spool.writer.cap_size(now, max) {
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
