//! Removing old interval files (`--cleanup`, `--cleanupandexit`).
//!
//! Perl decided by a file's mtime, so a file touched by a backup tool or a copy was kept
//! and an old file restored yesterday deleted. We decide by the interval the file's name
//! says: a file goes once its interval ended more than `interval_size × interval_keep`
//! seconds ago. Only names that parse as interval files and are regular files are ever
//! deleted.
//!
//! munin-asyncd can also hold each spool directory under a size (`--max-spool-size`):
//! [`cap_size`] drops whole interval files, the oldest first, and never a file whose
//! interval has not ended yet, since the writers append to those.

use std::fs;
use std::path::Path;

use crate::spool::trace::{Op, Trace};
use crate::spool::{Spool, SpoolError};
use crate::{log_error, log_info};

/// What a cleanup did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanupReport {
    /// Files deleted.
    pub(crate) removed: u64,
    /// Files that should have gone but could not be deleted.
    pub(crate) failed: u64,
}

/// Deletes every interval file whose interval ended more than `max_age` seconds before
/// `now`. Each deletion is logged into `trace`, if given.
pub(crate) fn cleanup(
    spool: &Spool,
    now: u64,
    max_age: u64,
    trace: Option<&Trace>,
) -> Result<CleanupReport, SpoolError> {
    let mut report = CleanupReport::default();
    for f in spool.interval_files()? {
        if now.saturating_sub(f.end()) <= max_age {
            continue;
        }
        let path = spool.path_of(&f);
        if regular_size(&path).is_some() && remove(&path, trace) {
            report.removed += 1;
        } else {
            report.failed += 1;
        }
    }
    Ok(report)
}

/// What holding a spool under its size did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CapReport {
    /// Files deleted.
    pub(crate) removed: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// The interval files' bytes afterwards.
    pub(crate) left: u64,
}

/// Deletes interval files, the oldest interval first, until the spool's interval files
/// hold at most `max_bytes`. Files whose interval has not ended at `now` are kept, so
/// `left` can stay above `max_bytes`. Each deletion is logged into `trace`, if given.
pub(crate) fn cap_size(
    spool: &Spool,
    now: u64,
    max_bytes: u64,
    trace: Option<&Trace>,
) -> Result<CapReport, SpoolError> {
    let mut files: Vec<_> = spool
        .interval_files()?
        .into_iter()
        .filter_map(|f| {
            let size = regular_size(&spool.path_of(&f))?;
            Some((f, size))
        })
        .collect();
    let mut report = CapReport {
        left: files.iter().map(|(_, size)| size).sum(),
        ..CapReport::default()
    };
    files.sort_by(|(a, _), (b, _)| (a.end(), &a.service).cmp(&(b.end(), &b.service)));
    for (f, size) in files {
        if report.left <= max_bytes || f.end() > now {
            break;
        }
        if remove(&spool.path_of(&f), trace) {
            report.removed += 1;
            report.bytes += size;
            report.left -= size;
        }
    }
    Ok(report)
}

/// The size of a regular file; None (logged) for anything else.
fn regular_size(path: &Path) -> Option<u64> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Some(m.len()),
        Ok(_) => {
            log_error!("{}: not a regular file, not deleted", path.display());
            None
        }
        Err(e) => {
            log_error!("{}: {e}", path.display());
            None
        }
    }
}

/// Deletes one spool file, logging what happened.
fn remove(path: &Path, trace: Option<&Trace>) -> bool {
    match fs::remove_file(path) {
        Ok(()) => {
            if let (Some(t), Some(name)) = (trace, path.file_name()) {
                t.log(Op::Unlink {
                    name: name.to_string_lossy().into_owned(),
                });
            }
            log_info!("removed {}", path.display());
            true
        }
        Err(e) => {
            log_error!("cannot remove {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_cap_drops_the_oldest_finished_intervals_only() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400;
        let now = 10 * day + 500;
        // Three finished days of two plugins and the current day, 1000 bytes each.
        for d in [7, 8, 9, 10] {
            for p in ["cpu", "load"] {
                let name = format!("munin-daemon.{p}.{}.{day}", d * day);
                fs::write(dir.path().join(name), vec![b'x'; 1000]).unwrap();
            }
        }
        fs::write(dir.path().join("SPOOL-META"), vec![b'x'; 5000]).unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let r = cap_size(&spool, now, 5000, None).unwrap();
        assert_eq!((r.removed, r.bytes, r.left), (3, 3000, 5000));
        let names = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(dir.path()),
            [
                "SPOOL-META",
                "munin-daemon.cpu.777600.86400",
                "munin-daemon.cpu.864000.86400",
                "munin-daemon.load.691200.86400",
                "munin-daemon.load.777600.86400",
                "munin-daemon.load.864000.86400",
            ]
        );
        // The current day's files stay even when they alone are over the cap.
        let r = cap_size(&spool, now, 1500, None).unwrap();
        assert_eq!((r.removed, r.bytes, r.left), (3, 3000, 2000));
        assert_eq!(names(dir.path()).len(), 3);
    }
}
