//! Group commit: one `syncfs` for every sample written meanwhile, instead of an
//! `fdatasync` a sample.
//!
//! With `--durability record` a sample counts (its coordinator hears of it, and
//! `complete_until` may cover it) only once it is on disk. A poll's worker writes the
//! record without syncing it and hands its report here; this thread syncs each spool
//! filesystem once for all the reports that came while it synced last, then passes them
//! on. At a site's scale (a thousand nodes, thirty thousand samples in the second of a
//! round) that is tens of syncs a round rather than thirty thousand, and a worker goes
//! back to polling without waiting for the disk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::asyncd::msg::{Done, Event, PollError, Reply};
use crate::log_error;
use crate::spool::writer::{SpoolWriter, WriteError};

/// How a record becomes durable, and when the driving thread hears of it: the one place
/// that knows whether the group commit is on. Polls, the health sample and SPOOL-META
/// call it; none asks which it is.
#[derive(Clone)]
pub(crate) enum Commit {
    /// The writer syncs as its durability says (`--durability kernel`: never; or the
    /// group commit's thread could not be started: each record by itself), and a record
    /// counts once written.
    ByWriter,
    /// `--durability record`: records are written unsynced and count after the group's
    /// `syncfs` (see [`Committer`]).
    Group(Arc<Committer>),
}

impl Commit {
    /// The group commit for `--durability record` (each record synced by itself when its
    /// thread cannot be started), the writer's own way otherwise.
    pub(crate) fn for_durability(record: bool, group: &Option<Arc<Committer>>) -> Commit {
        match group {
            Some(c) if record => Commit::Group(c.clone()),
            _ => Commit::ByWriter,
        }
    }

    /// Appends a record to `writer`'s spool: unsynced when the group commit will sync it.
    pub(crate) fn append(
        &self,
        writer: &SpoolWriter,
        plugin: &str,
        time: u64,
        body: &[u8],
    ) -> Result<(), WriteError> {
        match self {
            Commit::ByWriter => writer.append(plugin, time, body),
            Commit::Group(_) => writer.append_unsynced(plugin, time, body),
        }
    }

    /// Reports a poll to `reply`: at once, or (a sample written for the group commit)
    /// [`Event::Written`] now, to free its connection, and the report after the sync.
    pub(crate) fn report(&self, writer: Arc<SpoolWriter>, reply: &Reply, done: Done) {
        match self {
            Commit::Group(commit) if done.result.is_ok() => {
                reply.send(Event::Written { id: done.id });
                commit.hold(writer, reply.clone(), done);
            }
            _ => reply.send(Event::Done(done)),
        }
    }

    /// Reports the health sample at `time`, appended (or not): at once, or after the sync.
    pub(crate) fn health_written(
        &self,
        writer: Arc<SpoolWriter>,
        reply: Reply,
        time: u64,
        result: Result<(), WriteError>,
    ) {
        match (self, result) {
            (Commit::Group(commit), Ok(())) => commit.hold_health(writer, reply, time),
            (_, result) => reply.send(Event::HealthWritten { time, result }),
        }
    }

    /// Writes `pairs` as spool `spool`'s SPOOL-META and reports [`Event::Published`]:
    /// at once, or put in place after the group's sync.
    pub(crate) fn publish(
        &self,
        writer: Arc<SpoolWriter>,
        reply: Reply,
        spool: usize,
        pairs: &[(String, String)],
    ) {
        match self {
            Commit::Group(commit) => commit.publish(writer, reply, spool, pairs),
            Commit::ByWriter => {
                let result = writer.write_meta(pairs);
                reply.send(Event::Published { spool, result });
            }
        }
    }

    /// How many records and SPOOL-META files wait for their sync.
    pub(crate) fn pending(&self) -> usize {
        match self {
            Commit::ByWriter => 0,
            Commit::Group(commit) => commit.pending(),
        }
    }
}

/// What waits for the next sync: a poll's report, whose record is written; a SPOOL-META
/// written to its temporary file, renamed into place after the sync; or the health
/// sample, written.
struct Held {
    writer: Arc<SpoolWriter>,
    reply: Reply,
    what: What,
}

enum What {
    Report(Done),
    /// The index of the coordinator's spool.
    Meta(usize),
    /// The health sample at this time, written.
    Health(u64),
}

/// The committing thread's mailbox.
pub(crate) struct Committer {
    tx: Mutex<Sender<Held>>,
    /// Reports held and not yet passed on.
    pending: Arc<AtomicUsize>,
}

impl Committer {
    /// Starts the committing thread; `None` (and records are synced one by one) when the
    /// system refuses a thread.
    pub(crate) fn start() -> Option<Arc<Committer>> {
        let (tx, rx) = channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let count = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || run(&rx, &count));
        match spawned {
            Ok(_) => Some(Arc::new(Committer {
                tx: Mutex::new(tx),
                pending,
            })),
            Err(e) => {
                log_error!(
                    "cannot start the group commit's thread: {e}; each sample is synced by itself"
                );
                None
            }
        }
    }

    /// Passes `done` on to `reply` once `writer`'s filesystem is synced.
    fn hold(&self, writer: Arc<SpoolWriter>, reply: Reply, done: Done) {
        self.send(Held {
            writer,
            reply,
            what: What::Report(done),
        });
    }

    /// Passes [`Event::HealthWritten`] on to `reply` once `writer`'s filesystem is
    /// synced: the health sample at `time` is written to it.
    fn hold_health(&self, writer: Arc<SpoolWriter>, reply: Reply, time: u64) {
        self.send(Held {
            writer,
            reply,
            what: What::Health(time),
        });
    }

    /// Writes `pairs` as spool `spool`'s SPOOL-META through the group commit: to its
    /// temporary file now, into place after the next sync; `reply` hears
    /// [`Event::Published`] then.
    fn publish(
        &self,
        writer: Arc<SpoolWriter>,
        reply: Reply,
        spool: usize,
        pairs: &[(String, String)],
    ) {
        match writer.prepare_meta(pairs) {
            Ok(()) => self.send(Held {
                writer,
                reply,
                what: What::Meta(spool),
            }),
            Err(e) => reply.send(Event::Published {
                spool,
                result: Err(e),
            }),
        }
    }

    fn send(&self, held: Held) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(back) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(held) {
            // The thread is gone: sync here.
            finish(vec![back.0]);
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// How many reports wait for their sync.
    fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// The committing thread: takes whatever waits, syncs each filesystem once, passes it on.
fn run(rx: &Receiver<Held>, pending: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(std::iter::from_fn(|| rx.try_recv().ok()));
        // One sync per filesystem (every spool of a site is usually on one).
        let mut by_device: BTreeMap<u64, Vec<Held>> = BTreeMap::new();
        for held in batch {
            by_device
                .entry(held.writer.device())
                .or_default()
                .push(held);
        }
        for (_, group) in by_device {
            let n = group.len();
            finish(group);
            pending.fetch_sub(n, Ordering::SeqCst);
        }
    }
}

/// Syncs the filesystem of a group (all on one), then passes each report on and puts
/// each SPOOL-META in place. When the sync fails, each sample is reported as not
/// written and no SPOOL-META is put in place.
fn finish(group: Vec<Held>) {
    let Some(first) = group.first() else {
        return;
    };
    let synced = first.writer.sync_fs().map_err(|e| e.to_string());
    for held in group {
        let event = match (held.what, &synced) {
            (What::Report(done), Ok(())) => Event::Done(done),
            (What::Report(mut done), Err(said)) => {
                if done.result.is_ok() {
                    done.result = Err(PollError::Write(failed(&held.writer, said)));
                }
                Event::Done(done)
            }
            (What::Meta(spool), Ok(())) => Event::Published {
                spool,
                result: held.writer.install_meta(),
            },
            (What::Meta(spool), Err(said)) => Event::Published {
                spool,
                result: Err(failed(&held.writer, said)),
            },
            (What::Health(time), synced) => Event::HealthWritten {
                time,
                result: synced.clone().map_err(|said| failed(&held.writer, &said)),
            },
        };
        held.reply.send(event);
    }
}

/// The error of a failed sync, for each sample or SPOOL-META it held back.
fn failed(writer: &SpoolWriter, said: &str) -> WriteError {
    WriteError::Io {
        path: writer.dir().to_path_buf(),
        source: std::io::Error::other(said.to_string()),
    }
}
