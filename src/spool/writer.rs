//! Appending samples to a spool directory: munin-asyncd's side of the spool.
//!
//! Every sample becomes one sealed record (see [`crate::spool::record`]), written with a single
//! `write` to the end of its interval file while an exclusive `flock` is held, which is
//! what Perl's reader expects. A failed write is cut back to where the file ended before,
//! so no partial record stays. A crash (SIGKILL, power loss) can still leave a torn tail;
//! [`SpoolWriter::repair`] cuts every file back to the end of its last intact record, and
//! each append checks that the file ends on a line boundary first, so a new record is
//! never glued to a torn one. `docs/spool-format.md` says what each durability setting
//! can lose.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::spool::names::{sanitise, IntervalFile};
use crate::spool::record::{is_header, write_sealed, Epoch, RecordSink, Scanner, MAX_LINE};
use crate::spool::trace::{Op, Trace};
use crate::spool::Spool;
use crate::util::line::LineReader;

pub(crate) use crate::spool::LOCK_FILE;

/// When written records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` after every record (and the directory after a new file): a power loss
    /// loses at most the record being written, which the restart cuts off. (munin-asyncd
    /// writes its samples unsynced and syncs them a group at a time, `sync_fs`, before
    /// they count: see `asyncd::commit`.)
    Record,
    /// Leave it to the kernel: a power loss loses the records of the last few seconds
    /// (typically up to 30), never more than that, and never leaves a torn record served.
    Kernel,
}

/// An error writing the spool, saying where.
#[derive(Debug)]
pub enum WriteError {
    /// An I/O error on this path.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Another munin-asyncd holds the spool directory's lock.
    Locked(PathBuf),
    /// Listing the spool directory failed (the error names the path).
    Spool(crate::spool::SpoolError),
    /// A sample too large for one record.
    TooLarge {
        /// The plugin.
        plugin: String,
        /// Its size in bytes.
        bytes: usize,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            WriteError::Spool(e) => e.fmt(f),
            WriteError::TooLarge { plugin, bytes } => write!(
                f,
                "plugin {plugin}: a sample of {bytes} bytes is over the record limit of {} bytes; not spooled",
                crate::spool::record::MAX_RECORD
            ),
            WriteError::Locked(p) => write!(
                f,
                "{}: another munin-asyncd is already spooling into this directory",
                p.display()
            ),
        }
    }
}

impl std::error::Error for WriteError {}

fn io_at(path: &Path) -> impl Fn(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RepairReport {
    /// Files cut back.
    pub(crate) files: u64,
    /// Bytes cut off.
    pub(crate) bytes: u64,
    /// Each service's newest intact sample, so a restarted daemon never spools a second
    /// sample at the same time (RRD refuses two updates in one second).
    pub(crate) newest: std::collections::BTreeMap<String, u64>,
}

/// Builds a record body from a plugin's output lines, as Perl's SpoolWriter does: a
/// `multigraph SERVICE` line first unless the output starts with `multigraph`; empty lines
/// and `.` lines left out. Lines that would read as a record header (`timestamp 1…`) are
/// left out too, since any reader would take them for the start of a new record.
/// Returns how many lines were left out for that reason.
pub fn record_body<'a>(
    service: &str,
    lines: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> usize {
    let mut dropped = 0;
    let mut first = true;
    for line in lines {
        if first && !line.starts_with(b"multigraph") {
            out.extend_from_slice(b"multigraph ");
            out.extend_from_slice(service.as_bytes());
            out.push(b'\n');
        }
        first = false;
        if line.is_empty() || line == b"." {
            continue;
        }
        if is_header(line) || line.contains(&b'\n') {
            dropped += 1;
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    dropped
}

/// SPOOL-META's text from `key:value` pairs.
fn meta_text(pairs: &[(String, String)]) -> Vec<u8> {
    let mut content = String::new();
    for (k, v) in pairs {
        content.push_str(k);
        content.push(':');
        content.push_str(v);
        content.push('\n');
    }
    content.into_bytes()
}

/// Writes one spool directory.
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    interval: u64,
    durability: Durability,
    /// The lock, held while the writer lives; also a descriptor on the spool's
    /// filesystem for `syncfs`.
    lock: File,
    /// The filesystem's device number.
    device: u64,
    /// Where each file operation is logged (tests only).
    trace: Option<Arc<Trace>>,
    /// Per service, the file this writer last appended a whole record to, and its length
    /// then: while the file still has that length its tail is that record's, and the next
    /// append skips reading its last byte. Any other length (a torn tail from a crash, a
    /// write of its own that failed, another writer) is checked.
    /// (The file by its interval's start.)
    whole_tail: Mutex<HashMap<String, (u64, u64)>>,
}

impl SpoolWriter {
    /// Creates the directory if needed (mode 0750), and takes its lock.
    pub fn open(
        dir: &Path,
        interval: u64,
        durability: Durability,
    ) -> Result<SpoolWriter, WriteError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(io_at(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(WriteError::Locked(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_at(&lock_path)(e)),
        }
        let device = {
            use std::os::unix::fs::MetadataExt;
            lock.metadata().map_err(io_at(&lock_path))?.dev()
        };
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            interval: interval.max(1),
            durability,
            lock,
            device,
            trace: None,
            whole_tail: Mutex::new(HashMap::new()),
        })
    }

    /// Logs every file operation from now on into `trace` (the crash-state exploration).
    #[cfg(test)]
    pub(crate) fn traced(mut self, trace: Arc<Trace>) -> SpoolWriter {
        self.trace = Some(trace);
        self
    }

    /// Logs one operation if a trace is attached.
    fn log(&self, op: impl FnOnce() -> Op) {
        if let Some(t) = &self.trace {
            t.log(op());
        }
    }

    /// Whether `path` does not exist yet, when a trace needs to know (else false).
    fn is_new(&self, path: &Path) -> bool {
        self.trace.is_some() && fs::symlink_metadata(path).is_err()
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one sample of `plugin` taken at `time`, whose body was built by
    /// [`record_body`]. Either the whole record is in the file afterwards, or none of it.
    /// With [`Durability::Record`] it is on disk when this returns.
    pub fn append(&self, plugin: &str, time: u64, body: &[u8]) -> Result<(), WriteError> {
        self.append_then(plugin, time, body, self.durability == Durability::Record)
    }

    /// Appends as [`append`](Self::append) does, without forcing the record to disk: a
    /// later [`sync_fs`](Self::sync_fs) does, for every record written before it (group
    /// commit: one sync for a whole round of samples, not one a sample).
    pub(crate) fn append_unsynced(
        &self,
        plugin: &str,
        time: u64,
        body: &[u8],
    ) -> Result<(), WriteError> {
        self.append_then(plugin, time, body, false)
    }

    /// Forces everything written to the spool's filesystem to disk (`syncfs`): every
    /// record, file and directory entry written before the call.
    pub(crate) fn sync_fs(&self) -> Result<(), WriteError> {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on the lock's descriptor, which the writer owns.
        if unsafe { libc::syncfs(self.lock.as_raw_fd()) } != 0 {
            return Err(io_at(&self.dir)(io::Error::last_os_error()));
        }
        self.log(|| Op::SyncFs);
        Ok(())
    }

    /// The filesystem the spool is on (its device number), to sync each one once.
    pub(crate) fn device(&self) -> u64 {
        self.device
    }

    fn append_then(
        &self,
        plugin: &str,
        time: u64,
        body: &[u8],
        sync: bool,
    ) -> Result<(), WriteError> {
        if body.len() > crate::spool::record::MAX_RECORD {
            return Err(WriteError::TooLarge {
                plugin: plugin.to_string(),
                bytes: body.len(),
            });
        }
        let file = IntervalFile {
            service: sanitise(plugin.as_bytes()),
            start: time - time % self.interval,
            size: self.interval,
        };
        let name = file.file_name();
        let path = self.dir.join(&name);
        let err = io_at(&path);
        let new = self.is_new(&path);
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(&err)?;
        if new {
            self.log(|| Op::Create { name: name.clone() });
        }
        f.lock().map_err(&err)?;
        let mut before = f.metadata().map_err(&err)?.len();
        let tails = || self.whole_tail.lock().unwrap_or_else(|e| e.into_inner());
        let known = tails()
            .get(&file.service)
            .is_some_and(|&(start, len)| start == file.start && len == before);
        if before > 0 && !known {
            let mut last = [0u8];
            f.read_exact_at(&mut last, before - 1).map_err(&err)?;
            if last[0] != b'\n' {
                // A torn tail from a crash: cut it off, or the record would be glued to it.
                before = cut_to_intact(&f).map_err(&err)?.0;
                self.log(|| Op::SetLen {
                    name: name.clone(),
                    len: before,
                });
            }
        }
        let mut record = Vec::with_capacity(body.len() + 64);
        write_sealed(time, body, &mut record);
        if let Err(e) = f.write_all(&record) {
            if f.set_len(before).is_ok() {
                self.log(|| Op::SetLen {
                    name: name.clone(),
                    len: before,
                });
            }
            return Err(err(e));
        }
        self.log(|| Op::Write {
            name: name.clone(),
            offset: before,
            data: record.clone(),
        });
        let after = before + record.len() as u64;
        tails().insert(file.service, (file.start, after));
        if sync {
            f.sync_data().map_err(&err)?;
            self.log(|| Op::Sync { name: name.clone() });
            if before == 0 {
                self.sync_dir()?;
            }
        }
        Ok(())
    }

    /// Rewrites `name` in the spool directory whole, through a temporary file and a
    /// rename, so a reader sees the old or the new content, never a mix.
    pub(crate) fn replace_file(&self, name: &str, content: &[u8]) -> Result<(), WriteError> {
        let record = self.durability == Durability::Record;
        self.write_temporary(name, content, record)?;
        self.rename_temporary(name, record)
    }

    /// Writes `name`'s new content to `name.tmp` (synced with `sync`).
    fn write_temporary(&self, name: &str, content: &[u8], sync: bool) -> Result<(), WriteError> {
        let tmp_name = format!("{name}.tmp");
        let tmp = self.dir.join(&tmp_name);
        let err = io_at(&tmp);
        let new = self.is_new(&tmp);
        let mut f = crate::spool::create_private(&tmp).map_err(&err)?;
        self.log(|| match new {
            true => Op::Create {
                name: tmp_name.clone(),
            },
            false => Op::SetLen {
                name: tmp_name.clone(),
                len: 0,
            },
        });
        f.write_all(content).map_err(&err)?;
        self.log(|| Op::Write {
            name: tmp_name.clone(),
            offset: 0,
            data: content.to_vec(),
        });
        if sync {
            f.sync_data().map_err(&err)?;
            self.log(|| Op::Sync {
                name: tmp_name.clone(),
            });
        }
        Ok(())
    }

    /// Renames `name.tmp` over `name` (and syncs the directory with `sync`).
    fn rename_temporary(&self, name: &str, sync: bool) -> Result<(), WriteError> {
        let tmp_name = format!("{name}.tmp");
        let path = self.dir.join(name);
        fs::rename(self.dir.join(&tmp_name), &path).map_err(io_at(&path))?;
        self.log(|| Op::Rename {
            from: tmp_name.clone(),
            to: name.to_string(),
        });
        if sync {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Writes SPOOL-META from `key:value` pairs.
    pub fn write_meta(&self, pairs: &[(String, String)]) -> Result<(), WriteError> {
        self.replace_file(crate::spool::meta::FILE_NAME, &meta_text(pairs))
    }

    /// The group commit's first half of [`write_meta`](Self::write_meta): the new
    /// SPOOL-META written to its temporary file, unsynced. After a
    /// [`sync_fs`](Self::sync_fs) has covered it, [`install_meta`](Self::install_meta)
    /// renames it into place (made durable by the next `sync_fs`; until then a power loss
    /// leaves the SPOOL-META before, which promises less).
    pub(crate) fn prepare_meta(&self, pairs: &[(String, String)]) -> Result<(), WriteError> {
        self.write_temporary(crate::spool::meta::FILE_NAME, &meta_text(pairs), false)
    }

    /// Puts the SPOOL-META [`prepare_meta`](Self::prepare_meta) wrote in place.
    pub(crate) fn install_meta(&self) -> Result<(), WriteError> {
        self.rename_temporary(crate::spool::meta::FILE_NAME, false)
    }

    /// Writes `munin-daemon.list`: the plugin names, sanitised, on one line.
    pub fn write_list(&self, plugins: &[String]) -> Result<(), WriteError> {
        let names: Vec<String> = plugins.iter().map(|p| sanitise(p.as_bytes())).collect();
        self.replace_file(
            crate::spool::LIST_FILE,
            format!("{}\n", names.join(" ")).as_bytes(),
        )
    }

    /// Cuts every interval file back to the end of its last intact record. Run at start,
    /// before the first append.
    pub(crate) fn repair(&self) -> Result<RepairReport, WriteError> {
        let spool = Spool::open(&self.dir).map_err(WriteError::Spool)?;
        let files = spool.interval_files().map_err(WriteError::Spool)?;
        let mut report = RepairReport::default();
        for file in files {
            let path = spool.path_of(&file);
            let f = match OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => f,
                // A symlink or something else that is not ours to change.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            f.lock().map_err(io_at(&path))?;
            let len = f.metadata().map_err(io_at(&path))?.len();
            let (kept, newest) = cut_to_intact(&f).map_err(io_at(&path))?;
            if let Some(t) = newest {
                let e = report.newest.entry(file.service.clone()).or_insert(t);
                *e = (*e).max(t);
            }
            if kept < len {
                self.log(|| Op::SetLen {
                    name: file.file_name(),
                    len: kept,
                });
                report.files += 1;
                report.bytes += len - kept;
            }
        }
        Ok(report)
    }

    fn sync_dir(&self) -> Result<(), WriteError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))?;
        self.log(|| Op::SyncDir);
        Ok(())
    }

    /// Deletes the interval files whose interval ended more than `max_age` seconds before
    /// `now` ([`cleanup::cleanup`](crate::spool::cleanup::cleanup)).
    pub(crate) fn cleanup(
        &self,
        now: u64,
        max_age: u64,
    ) -> Result<crate::spool::cleanup::CleanupReport, crate::spool::SpoolError> {
        let spool = Spool::open(&self.dir)?;
        crate::spool::cleanup::cleanup(&spool, now, max_age, self.trace.as_deref())
    }

    /// Holds the interval files under `max_bytes`, the oldest dropped first
    /// ([`cleanup::cap_size`](crate::spool::cleanup::cap_size)).
    pub(crate) fn cap_size(
        &self,
        now: u64,
        max_bytes: u64,
    ) -> Result<crate::spool::cleanup::CapReport, crate::spool::SpoolError> {
        let spool = Spool::open(&self.dir)?;
        crate::spool::cleanup::cap_size(&spool, now, max_bytes, self.trace.as_deref())
    }
}

/// Cuts a locked file back to the end of its last intact record; returns the new length
/// and the newest intact record's time.
fn cut_to_intact(f: &File) -> io::Result<(u64, Option<u64>)> {
    struct All(Option<u64>);
    impl RecordSink for All {
        type Error = std::convert::Infallible;
        fn begin(&mut self, e: &Epoch) -> Result<bool, Self::Error> {
            self.0 = self.0.max(Some(e.value()));
            Ok(true)
        }
    }
    let len = f.metadata()?.len();
    let mut all = All(None);
    let mut scanner = Scanner::new();
    let mut lines = LineReader::new(
        ReadAt {
            f,
            pos: 0,
            end: len,
        },
        64 * 1024,
        MAX_LINE,
    );
    while let Some((end, line, n)) = lines.next_line()? {
        match scanner.line(line, end, n, &mut all) {
            Ok(_) => {}
            Err(never) => match never {},
        }
    }
    match scanner.finish(&mut all) {
        Ok(_) => {}
        Err(never) => match never {},
    }
    let keep = scanner.stats().served_until;
    if keep < len {
        f.set_len(keep)?;
    }
    Ok((keep, all.0))
}

/// Reads `f` from `pos` to `end` with positioned reads, leaving the file offset alone.
struct ReadAt<'a> {
    f: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::spoolfetch::{spoolfetch, Window};
    use std::os::unix::fs::PermissionsExt;

    const T: u64 = 1_795_500_000;

    fn body(service: &str, lines: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        record_body(service, lines.iter().map(|l| l.as_bytes()), &mut b);
        b
    }

    fn served(dir: &Path) -> String {
        let spool = Spool::open(dir).unwrap();
        let files = spool.interval_files().unwrap();
        let mut out = Vec::new();
        spoolfetch(
            &spool,
            &files,
            Window {
                after: 0,
                until: u64::MAX,
            },
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bodies_are_built_like_perls() {
        assert_eq!(
            body("load", &["graph_title L", "", ".", "load.value 1"]),
            b"multigraph load\ngraph_title L\nload.value 1\n"
        );
        assert_eq!(
            body("mg", &["multigraph a", "x.value 1"]),
            b"multigraph a\nx.value 1\n"
        );
        let mut b = Vec::new();
        let dropped = record_body("p", [&b"timestamp 5"[..], b"x.value 1"], &mut b);
        assert_eq!(
            (dropped, b.as_slice()),
            (1, &b"multigraph p\nx.value 1\n"[..])
        );
    }

    #[test]
    fn appended_records_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(dir.path(), 3600, Durability::Record).unwrap();
        w.append("load", T, &body("load", &["load.value 1"]))
            .unwrap();
        w.append(
            "if_eth0.1",
            T + 3600,
            &body("if_eth0_1", &["multigraph if_eth0_1", "d.value N:2"]),
        )
        .unwrap();
        w.append("load", T + 300, &body("load", &["load.value U"]))
            .unwrap();
        assert_eq!(
            served(dir.path()),
            format!(
                "multigraph if_eth0_1\nd.value {}:2\nmultigraph load\nload.value {T}:1\nmultigraph load\nload.value {}:U\n.\n",
                T + 3600,
                T + 300
            )
        );
        let meta = fs::metadata(
            dir.path()
                .join(format!("munin-daemon.load.{}.3600", T - T % 3600)),
        )
        .unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_next_record_is_whole() {
        let mut torn = Vec::new();
        write_sealed(T + 20, &body("a", &["a.value 3"]), &mut torn);
        for cut in 1..torn.len() {
            for repair_first in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let w = SpoolWriter::open(dir.path(), 86400, Durability::Kernel).unwrap();
                w.append("a", T, &body("a", &["a.value 1"])).unwrap();
                w.append("a", T + 10, &body("a", &["a.value 2"])).unwrap();
                let path = dir
                    .path()
                    .join(format!("munin-daemon.a.{}.86400", T - T % 86400));
                let intact = fs::metadata(&path).unwrap().len();
                let mut f = OpenOptions::new().append(true).open(&path).unwrap();
                f.write_all(&torn[..cut]).unwrap();
                if repair_first {
                    let r = w.repair().unwrap();
                    assert_eq!((r.files, r.bytes), (1, cut as u64), "cut at {cut}");
                    assert_eq!(r.newest.get("a"), Some(&(T + 10)), "cut at {cut}");
                    assert_eq!(fs::metadata(&path).unwrap().len(), intact);
                }
                w.append("a", T + 30, &body("a", &["a.value 4"])).unwrap();
                let text = served(dir.path());
                let values: Vec<&str> = text.lines().filter(|l| l.contains(".value")).collect();
                assert_eq!(
                    values,
                    [
                        format!("a.value {T}:1"),
                        format!("a.value {}:2", T + 10),
                        format!("a.value {}:4", T + 30)
                    ],
                    "cut at {cut}, repair first: {repair_first}"
                );
            }
        }
    }

    #[test]
    fn a_sample_too_large_for_a_record_is_refused_not_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(dir.path(), 86400, Durability::Kernel).unwrap();
        let big = vec![b'x'; crate::spool::record::MAX_RECORD + 1];
        assert!(matches!(
            w.append("a", T, &big),
            Err(WriteError::TooLarge { .. })
        ));
        assert_eq!(w.repair().unwrap(), RepairReport::default());
        assert!(served(dir.path()).eq(".\n"), "nothing was written");
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _w = SpoolWriter::open(dir.path(), 86400, Durability::Kernel).unwrap();
        let e = SpoolWriter::open(dir.path(), 86400, Durability::Kernel).unwrap_err();
        assert!(matches!(e, WriteError::Locked(_)));
        assert!(e.to_string().contains("another munin-asyncd"), "{e}");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(&dir.path().join("spool"), 86400, Durability::Kernel).unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let name = format!("munin-daemon.a.{}.86400", T - T % 86400);
        std::os::unix::fs::symlink(&target, w.dir().join(&name)).unwrap();
        assert!(w.append("a", T, &body("a", &["a.value 1"])).is_err());
        assert!(w.repair().is_ok());
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        let mode = fs::metadata(w.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "no world access to the spool directory");
    }

    #[test]
    fn meta_and_list_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let w = SpoolWriter::open(dir.path(), 86400, Durability::Record).unwrap();
        w.write_meta(&[
            ("hostname".into(), "n1".into()),
            ("interval_size".into(), "86400".into()),
        ])
        .unwrap();
        w.write_list(&["load".into(), "if_eth0.1".into()]).unwrap();
        let meta = crate::spool::meta::SpoolMeta::load(dir.path()).unwrap();
        assert_eq!(meta.hostname(), Ok(Some("n1")));
        assert_eq!(
            fs::read_to_string(dir.path().join("munin-daemon.list")).unwrap(),
            "load if_eth0_1\n"
        );
        assert!(!dir.path().join("SPOOL-META.tmp").exists());
    }
}
