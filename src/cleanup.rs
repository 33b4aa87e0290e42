//! Removing old interval files (`--cleanup`, `--cleanupandexit`).
//!
//! Perl decided by a file's mtime, so a file touched by a backup tool or a copy was kept
//! and an old file restored yesterday deleted. We decide by the interval the file's name
//! says: a file goes once its interval ended more than `interval_size × interval_keep`
//! seconds ago. Only names that parse as interval files and are regular files are ever
//! deleted.

use std::fs;

use crate::spool::{Spool, SpoolError};
use crate::{log_error, log_info};

/// What a cleanup did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanupReport {
    /// Files deleted.
    pub removed: u64,
    /// Files that should have gone but could not be deleted.
    pub failed: u64,
}

/// Deletes every interval file whose interval ended more than `max_age` seconds before
/// `now`.
pub fn cleanup(spool: &Spool, now: u64, max_age: u64) -> Result<CleanupReport, SpoolError> {
    let mut report = CleanupReport::default();
    for f in spool.interval_files()? {
        if now.saturating_sub(f.end()) <= max_age {
            continue;
        }
        let path = spool.path_of(&f);
        let regular = fs::symlink_metadata(&path).map(|m| m.file_type().is_file());
        match regular {
            Ok(true) => {}
            Ok(false) => {
                log_error!("{}: not a regular file, not deleted", path.display());
                report.failed += 1;
                continue;
            }
            Err(e) => {
                log_error!("{}: {e}", path.display());
                report.failed += 1;
                continue;
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                log_info!("removed {}", path.display());
                report.removed += 1;
            }
            Err(e) => {
                log_error!("cannot remove {}: {e}", path.display());
                report.failed += 1;
            }
        }
    }
    Ok(report)
}
