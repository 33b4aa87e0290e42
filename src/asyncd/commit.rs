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

use crate::asyncd::coordinator::{Event, Reply};
use crate::asyncd::poll::{Done, PollError};
use crate::log_error;
use crate::spool::writer::SpoolWriter;

/// A report held until its record is on disk.
struct Held {
    writer: Arc<SpoolWriter>,
    reply: Reply,
    done: Done,
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
    pub(crate) fn hold(&self, writer: Arc<SpoolWriter>, reply: Reply, done: Done) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let held = Held {
            writer,
            reply,
            done,
        };
        if let Err(back) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(held) {
            // The thread is gone: sync here.
            let mut held = back.0;
            settle(&held.writer, std::slice::from_mut(&mut held.done));
            held.reply.send(Event::Done(held.done));
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// How many reports wait for their sync.
    pub(crate) fn pending(&self) -> usize {
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
            let mut dones: Vec<Done> = Vec::with_capacity(group.len());
            let mut rest = Vec::with_capacity(group.len());
            for held in group {
                dones.push(held.done);
                rest.push((held.writer, held.reply));
            }
            settle(&rest[0].0, &mut dones);
            for (done, (_, reply)) in dones.into_iter().zip(rest) {
                reply.send(Event::Done(done));
                pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Syncs `writer`'s filesystem; when that fails, each sample is reported as not written.
fn settle(writer: &SpoolWriter, dones: &mut [Done]) {
    if let Err(e) = writer.sync_fs() {
        let said = e.to_string();
        for done in dones.iter_mut() {
            if done.result.is_ok() {
                done.result = Err(PollError::Write(crate::spool::writer::WriteError::Io {
                    path: writer.dir().to_path_buf(),
                    source: std::io::Error::other(said.clone()),
                }));
            }
        }
    }
}
