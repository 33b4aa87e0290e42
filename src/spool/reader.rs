//! A spool directory, as the reader sees it.
//!
//! Lists interval files and streams one file's records into a [`RecordSink`]. Files are
//! found by listing the directory and parsing names ([`IntervalFile::parse`]); no path is
//! ever built from what a master sends. A file is read up to the length it had while we
//! held a shared `flock` on it: Perl's writer holds an exclusive lock while it appends a
//! record, so that length ends on a record boundary, and the lock is released before we
//! stream, so a slow master never stalls the writer.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::spool::meta::SpoolMeta;
use crate::spool::names::IntervalFile;
use crate::spool::record::{RecordSink, ScanStats, Scanner, MAX_LINE};
use crate::util::line::{Block, LineReader};

/// Read buffer size for spool files.
const READ_BUFFER: usize = 64 * 1024;

/// An error about the spool directory or one of its files, saying which.
#[derive(Debug)]
pub enum SpoolError {
    /// The spool directory does not exist.
    Missing(PathBuf),
    /// The spool path exists but is not a directory.
    NotADirectory(PathBuf),
    /// An I/O error on this path.
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The name matched a spool file but the entry is not a regular file (a symlink, say).
    NotAFile(PathBuf),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Missing(p) => write!(f, "spool directory {} does not exist", p.display()),
            SpoolError::NotADirectory(p) => {
                write!(f, "spool directory {} is not a directory", p.display())
            }
            SpoolError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SpoolError::NotAFile(p) => write!(f, "{}: not a regular file, skipped", p.display()),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Scanning a file failed: either the spool file or the sink (the master's side).
#[derive(Debug)]
pub enum ScanError<E> {
    /// Reading the spool file failed.
    Spool(SpoolError),
    /// The sink failed.
    Sink(E),
}

/// A spool directory that exists and can be listed.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Checks that `dir` is a directory we can list.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(SpoolError::NotADirectory(dir.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::Missing(dir.to_path_buf()))
            }
            Err(source) => {
                return Err(SpoolError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
        fs::read_dir(dir).map_err(|source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads SPOOL-META (empty when missing).
    pub(crate) fn meta(&self) -> Result<SpoolMeta, SpoolError> {
        SpoolMeta::load(&self.dir).map_err(|source| SpoolError::Io {
            path: self.dir.join(crate::spool::meta::FILE_NAME),
            source,
        })
    }

    /// Every interval file, sorted by service, then interval start and size.
    pub(crate) fn interval_files(&self) -> Result<Vec<IntervalFile>, SpoolError> {
        let io_err = |source| SpoolError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            if let Some(f) = IntervalFile::parse(entry.file_name().as_encoded_bytes()) {
                files.push(f);
            }
        }
        files.sort();
        Ok(files)
    }

    /// The spooled plugin names, sorted and unique.
    pub(crate) fn plugins(&self) -> Result<Vec<String>, SpoolError> {
        let mut names: Vec<String> = self
            .interval_files()?
            .into_iter()
            .map(|f| f.service)
            .collect();
        names.dedup();
        Ok(names)
    }

    /// The plugins munin-asyncd last found on the node, from `munin-daemon.list` (sanitised
    /// names; Perl's munin-asyncd writes the file too). None when there is no such file.
    /// Read through no symlink, and at most 1 MiB of it.
    pub(crate) fn listed(&self) -> Option<std::collections::BTreeSet<String>> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(crate::spool::LIST_FILE))
            .ok()?;
        let mut bytes = Vec::new();
        f.take(1 << 20).read_to_end(&mut bytes).ok()?;
        Some(
            bytes
                .split(|b| b.is_ascii_whitespace())
                .filter(|n| !n.is_empty())
                .map(crate::spool::names::sanitise)
                .collect(),
        )
    }

    /// The path of an interval file.
    pub(crate) fn path_of(&self, f: &IntervalFile) -> PathBuf {
        self.dir.join(f.file_name())
    }

    /// Opens an interval file for reading: a regular file (not a link to one elsewhere),
    /// and its committed length.
    fn open_file(&self, f: &IntervalFile) -> Result<(File, u64), SpoolError> {
        let path = self.path_of(f);
        let err = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        let before = fs::symlink_metadata(&path).map_err(err)?;
        if !before.file_type().is_file() {
            return Err(SpoolError::NotAFile(path));
        }
        let file = File::open(&path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
            return Err(SpoolError::NotAFile(path));
        }
        // Perl's writer appends a record under an exclusive lock; its length under our
        // shared lock ends on a record boundary.
        file.lock_shared().map_err(err)?;
        let len = file.metadata().map(|m| m.len());
        file.unlock().map_err(err)?;
        Ok((file, len.map_err(err)?))
    }

    /// The bytes of an interval file as it is now (0 when it cannot be seen; a symlink's
    /// own size, never its target's).
    pub(crate) fn size_of(&self, f: &IntervalFile) -> u64 {
        fs::symlink_metadata(self.path_of(f)).map_or(0, |m| m.len())
    }

    /// Records that a master has been sent every sample up to `cursor` (for munin-asyncd's
    /// lag graph). Best effort: a read-only spool is no error.
    pub(crate) fn record_cursor(&self, cursor: u64) {
        self.replace_own_file(crate::spool::CURSOR_FILE, format!("{cursor}\n").as_bytes());
    }

    /// The replies last sent to each master (see [`crate::spool::pace`]); none when the
    /// file is missing or unreadable.
    pub(crate) fn pace(&self) -> crate::spool::pace::Pace {
        let path = self.dir.join(crate::spool::pace::PACE_FILE);
        crate::spool::pace::Pace::parse(&fs::read(path).unwrap_or_default())
    }

    /// Records the replies last sent to each master. Best effort, like the cursor.
    pub(crate) fn record_pace(&self, pace: &crate::spool::pace::Pace) {
        self.replace_own_file(crate::spool::pace::PACE_FILE, pace.text().as_bytes());
    }

    /// Replaces a file of munin-async's own in the spool directory at once (a private
    /// file renamed over it). A read-only spool is no error: logged at debug.
    fn replace_own_file(&self, name: &str, content: &[u8]) {
        use std::io::Write as _;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let written = create_private(&tmp)
            .and_then(|mut f| f.write_all(content))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            crate::log_debug!("{}: {e}", path.display());
        }
    }

    /// Streams the records of one interval file into `sink`, until the sink ends the scan.
    pub(crate) fn scan_file<S: RecordSink>(
        &self,
        f: &IntervalFile,
        sink: &mut S,
    ) -> Result<ScanStats, ScanError<S::Error>> {
        let (file, len) = self.open_file(f).map_err(ScanError::Spool)?;
        let mut lines = LineReader::new(file.take(len), READ_BUFFER, MAX_LINE);
        let mut scanner = Scanner::new();
        loop {
            let read = lines.next_block().map_err(|source| {
                ScanError::Spool(SpoolError::Io {
                    path: self.path_of(f),
                    source,
                })
            })?;
            let go_on = match read {
                None => break,
                Some(Block::Lines(block)) => scanner.block(block, sink),
                Some(Block::Line(end, line, n)) => scanner.line(line, end, n, sink),
            }
            .map_err(ScanError::Sink)?;
            if !go_on {
                // The sink has seen enough: the rest of the file is not read.
                return Ok(scanner.stats());
            }
        }
        scanner.finish(sink).map_err(ScanError::Sink)?;
        Ok(scanner.stats())
    }
}
/// Creates (or empties) a file for the spool's owner and group only (0640), never through
/// a symlink.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}
