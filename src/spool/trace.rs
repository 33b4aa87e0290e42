//! A record of the file operations a [`SpoolWriter`](crate::spool::writer::SpoolWriter)
//! performs on its spool directory, in the order it performed them.
//!
//! The writer logs each operation right after it succeeded, when a trace is attached
//! (tests only: nothing is recorded otherwise). The crash-state exploration
//! (`src/spool/crash_tests/`, `docs/reliability.md`) replays prefixes of a trace under a
//! model of what a power loss keeps, and checks every resulting directory. Replaying a
//! whole trace must give back the directory the writer left, byte for byte: a test checks
//! it, so an operation the writer forgot to log is found.

use std::sync::Mutex;

/// One file operation in the spool directory. Names are file names in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A file opened with `O_CREAT` that did not exist: a new directory entry.
    Create {
        /// The file.
        name: String,
    },
    /// `write` of `data` at `offset` (an append: the file's length before).
    Write {
        /// The file.
        name: String,
        /// Where the bytes went.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `ftruncate` (a torn tail cut off, or `O_TRUNC` on an existing file).
    SetLen {
        /// The file.
        name: String,
        /// Its new length.
        len: u64,
    },
    /// `fdatasync` (or `fsync`) of a file returned.
    Sync {
        /// The file.
        name: String,
    },
    /// `fsync` of the spool directory returned.
    SyncDir,
    /// `syncfs` of the spool's filesystem returned: every file and the directory.
    SyncFs,
    /// `rename`, replacing `to` if it existed.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `unlink`.
    Unlink {
        /// The file.
        name: String,
    },
}

/// Operations in the order they were performed (threads included).
#[derive(Debug, Default)]
pub(crate) struct Trace {
    ops: Mutex<Vec<Op>>,
}

impl Trace {
    /// Appends one operation.
    pub(crate) fn log(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// The operations so far.
    #[cfg(test)]
    pub(crate) fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
