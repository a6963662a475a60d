//! Recording successes as they happen, whatever the store: into the local journal
//! (one writer thread, fsynced in batches), or into a shared store's journal (one
//! task, each batch one fenced transaction). Either way a record is queued without
//! waiting, batches form while a write is in progress, and [`Recorder::finish`]
//! returns once every queued record is durable, or says how many are not.

use super::StateError;
use super::lease::Validity;
use super::shared::Backend;
use crate::lockfile::{JournalStats, JournalWriter, Record};
use backon::{ExponentialBuilder, Retryable};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Records the successes of a run.
pub struct Recorder {
    kind: Kind,
    validity: Arc<Validity>,
    queued: AtomicUsize,
    /// Set while the writer cannot write a batch: no new call starts meanwhile, so
    /// that what is applied but not recorded stays within the calls in flight.
    stalled: Arc<AtomicBool>,
}

enum Kind {
    Journal(JournalWriter),
    Shared {
        sender: Option<mpsc::UnboundedSender<Record>>,
        task: tokio::task::JoinHandle<(JournalStats, Option<StateError>)>,
    },
}

impl Recorder {
    /// Records into the local journal.
    pub(super) fn journal(writer: JournalWriter, validity: Arc<Validity>) -> Recorder {
        Recorder { kind: Kind::Journal(writer), validity, queued: AtomicUsize::new(0), stalled: Arc::default() }
    }

    /// Records into `store`'s journal under the lease `token`.
    pub(super) fn shared(store: Arc<Backend>, token: u64, sdkappid: u64, validity: Arc<Validity>) -> Recorder {
        let (sender, receiver) = mpsc::unbounded_channel();
        let stalled = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write_shared(store, token, sdkappid, receiver, validity.clone(), stalled.clone()));
        Recorder { kind: Kind::Shared { sender: Some(sender), task }, validity, queued: AtomicUsize::new(0), stalled }
    }

    /// Queues a record; it is durable once the writer's next batch is written.
    pub fn record(&self, record: Record) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        match &self.kind {
            Kind::Journal(writer) => writer.record(record),
            Kind::Shared { sender, .. } => {
                if let Some(sender) = sender {
                    // The task only stops on an error, which finish() reports.
                    let _ = sender.send(record);
                }
            }
        }
    }

    /// Whether the lease still allows calling the API: a holder whose lease lapsed
    /// (or whose record can no longer be written) calls nothing more.
    pub fn may_call(&self) -> bool {
        self.validity.valid()
    }

    /// Waits while the record cannot be written (a shared store out of reach), for as
    /// long as the lease lasts: a call started meanwhile could not be recorded.
    pub async fn writable(&self) {
        while self.stalled.load(Ordering::Acquire) && self.validity.valid() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The question a client asks before sending each attempt: is the lease still valid?
    pub fn gate(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let validity = self.validity.clone();
        Arc::new(move || validity.valid())
    }

    /// Writes every queued record and stops. An error says how many records could
    /// not be written: applied, but not recorded, so that the next run applies them again.
    pub async fn finish(self) -> Result<JournalStats, StateError> {
        let queued = self.queued.load(Ordering::Relaxed);
        match self.kind {
            Kind::Journal(writer) => {
                // Joins the writer thread: the time of its last fsync.
                writer.finish().map_err(StateError::Lockfile)
            }
            Kind::Shared { sender, task } => {
                drop(sender);
                let (stats, error) = task.await.map_err(|e| StateError::Unreachable {
                    store: "the record".into(),
                    message: format!("the writer task failed: {e}"),
                })?;
                match error {
                    None => Ok(stats),
                    Some(error) => Err(StateError::Unrecorded {
                        lost: queued.saturating_sub(stats.records),
                        source: Box::new(error),
                    }),
                }
            }
        }
    }
}

/// The shared store's writer: takes whatever records wait, appends them in one
/// fenced transaction, and goes on. A passing failure is tried again while the lease
/// is valid; a lapsed lease ends it (and, with it, the run's calls).
async fn write_shared(
    store: Arc<Backend>,
    token: u64,
    sdkappid: u64,
    mut receiver: mpsc::UnboundedReceiver<Record>,
    validity: Arc<Validity>,
    stalled: Arc<AtomicBool>,
) -> (JournalStats, Option<StateError>) {
    let mut stats = JournalStats::default();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut last: Option<Instant> = None;
    while let Some(first) = receiver.recv().await {
        // A store whose every write costs more as the journal grows (a bucket's head names
        // each piece) takes batches no closer together than its interval; records queued
        // meanwhile join the batch.
        if let Some(at) = last.map(|last| last + store.batch_interval()) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
        last = Some(Instant::now());
        let started = Instant::now();
        batch.clear();
        batch.push(crate::lockfile::encode(&first, sdkappid));
        while let Ok(record) = receiver.try_recv() {
            batch.push(crate::lockfile::encode(&record, sdkappid));
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .without_max_times();
        let append = || async {
            if !validity.valid() {
                return Err(StateError::Lapsed { store: store.label() });
            }
            store.append(token, &batch).await
        };
        let written = append
            .retry(backoff)
            .when(|e| !matches!(e, StateError::Lapsed { .. }) && validity.valid())
            .notify(|e, after| {
                stalled.store(true, Ordering::Release);
                tracing::warn!(error = %e, retry_in = ?after, "cannot record; no new call starts until it can; trying again");
            })
            .await;
        stalled.store(false, Ordering::Release);
        if let Err(e) = written {
            // Nothing more is recorded on this lease, so nothing more may be called.
            validity.lapse();
            return (stats, Some(e));
        }
        stats.records += batch.len();
        stats.syncs += 1;
        stats.busy += started.elapsed();
    }
    (stats, None)
}
