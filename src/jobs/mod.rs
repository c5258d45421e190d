//! Background work: queued jobs from the catalog (claimed with a lease, retried with
//! backoff) and maintenance steps (blob GC). [`JobRunner::run_one_step`] does one unit of
//! work so tests and `ferry admin jobs run --until-idle` drive it deterministically; the
//! server runs the same step in a loop, woken at once when work is queued.

pub mod consistency;
pub mod media_process;
pub mod remote_fetch;
pub mod watch;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::blob_store::{BlobStore, DirectMultipart, Staged};
use crate::catalog::{BoxError, Catalog, CatalogError, Job, JobOutcome};
use crate::config::Config;
use crate::ingest::Ingest;
use crate::remote::RemotePolicy;

/// How long a claimed job is leased before another worker may take it over.
const LEASE: Duration = Duration::from_secs(300);
/// After a collection pass finds nothing, the next one waits a tenth of `gc_grace`, at most
/// this long. A pass reads every blob last used before the grace cutoff until it meets an
/// unreferenced one, so on a large catalog it is not free (~0.1 s per 200,000 referenced
/// blobs on SQLite), and the runner wakes after every upload that stores new content.
const MAX_COLLECTION_PAUSE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct JobRunner {
    pub(crate) catalog: Arc<dyn Catalog>,
    store: Arc<dyn BlobStore>,
    pub(crate) ingest: Ingest,
    pub(crate) remote: Arc<RemotePolicy>,
    pub(crate) config: Arc<Config>,
    wake: Arc<Notify>,
    /// False in an admin run beside a server on an SQLite catalog: that catalog keeps
    /// collection and commits apart inside its own process only, so the server collects.
    collects_blobs: bool,
    /// When a collection pass last found nothing (shared by the runner's clones).
    last_empty_collection: Arc<Mutex<Option<Instant>>>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    RanJob { job_id: i64, kind: String, ok: bool },
    ExpiredUpload(String),
    ExpiredSessions(usize),
    PurgedTombstones(usize),
    CollectedBlob(String),
}

impl JobRunner {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn BlobStore>,
        config: Arc<Config>,
        remote: Arc<RemotePolicy>,
    ) -> Self {
        // new content queues its media job: the pipeline wakes the runner to start it now
        let wake = Arc::new(Notify::new());
        let ingest = Ingest::new(store.clone(), catalog.clone()).waking(wake.clone());
        Self {
            catalog,
            store,
            ingest,
            remote,
            config,
            wake,
            collects_blobs: true,
            last_empty_collection: Arc::new(Mutex::new(None)),
        }
    }

    /// The same runner without the blob-collection step.
    pub fn without_blob_collection(self) -> Self {
        Self { collects_blobs: false, ..self }
    }

    /// Queues a job and wakes the runner.
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> Result<i64, CatalogError> {
        let id = self.catalog.enqueue_job(kind, payload, dedup_key).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Runs one queued job, or else one maintenance step: expire an upload, purge old
    /// tombstones, collect a blob — in that order, since each can free the next.
    pub async fn run_one_step(&self) -> Result<Step, CatalogError> {
        if let Some(job) = self.catalog.claim_job(LEASE).await? {
            let (job_id, kind) = (job.job_id, job.kind.clone());
            let outcome = self.run_job(&job).await;
            let ok = matches!(outcome, JobOutcome::Done);
            self.catalog.finish_job(job_id, outcome).await?;
            return Ok(Step::RanJob { job_id, kind, ok });
        }
        if let Some(upload) = self.catalog.expired_uploads(1).await?.pop() {
            // a direct-mode upload's parts are in S3's own multipart upload
            if let (Some(direct), Some(held)) = (self.store.direct(), DirectMultipart::parse(&upload.upload_id))
                && let Err(e) = direct.abort_multipart(&held).await
            {
                tracing::warn!(error = %e, upload = %upload.upload_id, "could not abort an expired S3 upload");
            }
            for part in self.catalog.delete_upload(&upload.upload_id).await? {
                let staged = Staged { key: part.staging_key, size: part.size };
                if let Err(e) = self.store.discard(&staged).await {
                    tracing::warn!(error = %e, upload = %upload.upload_id, "could not remove an expired part");
                }
            }
            return Ok(Step::ExpiredUpload(upload.upload_id));
        }
        // expired sessions keep answering 410 for one more expiry period, then go
        let cutoff = crate::clock::now_ms() - self.config.upload_expiry.as_millis() as i64;
        let sessions = self.catalog.delete_expired_sessions(cutoff, 100).await?;
        if sessions > 0 {
            return Ok(Step::ExpiredSessions(sessions));
        }
        let purged = self.catalog.purge_tombstones(self.config.tombstone_retention).await?;
        if purged > 0 {
            return Ok(Step::PurgedTombstones(purged));
        }
        if !self.collects_blobs || self.collection_paused() {
            return Ok(Step::Idle);
        }
        let store = self.store.clone();
        let collected = self
            .catalog
            .collect_blob(
                self.config.gc_grace,
                Box::new(move |sha256| {
                    Box::pin(async move { store.delete(&sha256).await.map_err(|e| Box::new(e) as BoxError) })
                }),
            )
            .await?;
        if collected.is_none() {
            *self.last_empty_collection.lock().expect("not poisoned") = Some(Instant::now());
        }
        Ok(collected.map_or(Step::Idle, |h| Step::CollectedBlob(h.to_string())))
    }

    fn collection_paused(&self) -> bool {
        let pause = (self.config.gc_grace / 10).min(MAX_COLLECTION_PAUSE);
        self.last_empty_collection.lock().expect("not poisoned").is_some_and(|at| at.elapsed() < pause)
    }

    /// Runs steps until there is nothing left to do; returns the steps taken.
    pub async fn run_until_idle(&self) -> Result<Vec<Step>, CatalogError> {
        let mut steps = Vec::new();
        loop {
            match self.run_one_step().await? {
                Step::Idle => return Ok(steps),
                step => steps.push(step),
            }
        }
    }

    async fn run_job(&self, job: &Job) -> JobOutcome {
        match job.kind.as_str() {
            remote_fetch::KIND => remote_fetch::run(self, job).await,
            crate::gallery::PULL_KIND => crate::gallery::run_pull(self, job).await,
            media_process::KIND => media_process::run(self, job).await,
            other => JobOutcome::Failed { error: format!("unknown job kind '{other}'") },
        }
    }

    /// The server's loop: work until idle, then sleep until woken or the interval passes.
    pub async fn run_forever(self) {
        loop {
            match self.run_until_idle().await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "job runner step failed"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.job_interval) => {}
            }
        }
    }
}
