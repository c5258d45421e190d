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

use crate::blob_store::BlobStore;
use crate::catalog::{BoxError, Catalog, CatalogError, Job, JobOutcome};
use crate::config::Config;
use crate::gallery::GalleryEvents;
use crate::ingest::Ingest;
use crate::ingest::multipart::{MultipartUploads, UploadError};
use crate::ingest::resumable::{ResumableUploads, TusError};
use crate::library::LibraryFiles;
use crate::remote::RemotePolicy;
use crate::signing::Signer;

/// Intents older than this are finished by the maintenance step (a commit takes far less;
/// the start-up sweep takes every intent).
const INTENT_AGE: Duration = Duration::from_secs(600);
/// Abandoned staging is looked for this often (on S3 it is a listing of the staging area).
const STAGING_SWEEP_EVERY: Duration = Duration::from_secs(600);
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
    pub(crate) uploads: MultipartUploads,
    pub(crate) tus: ResumableUploads,
    pub(crate) library: LibraryFiles,
    pub(crate) events: GalleryEvents,
    pub(crate) remote: Arc<RemotePolicy>,
    pub(crate) config: Arc<Config>,
    wake: Arc<Notify>,
    /// False in an admin run beside a server on an SQLite catalog: that catalog keeps
    /// commits, collection and the intent sweep apart inside its own process only, so the
    /// server runs everything that writes or removes blobs (queued jobs store thumbnails and
    /// imports); the admin run does the rest of the maintenance.
    touches_blobs: bool,
    /// When a collection pass last found nothing (shared by the runner's clones).
    last_empty_collection: Arc<Mutex<Option<Instant>>>,
    /// When abandoned staging was last swept (an S3 listing: not on every idle step).
    last_staging_sweep: Arc<Mutex<Option<Instant>>>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    RanJob { job_id: i64, kind: String, ok: bool },
    ExpiredUpload(String),
    ExpiredSessions(usize),
    PurgedTombstones(usize),
    ForgotTargets(usize),
    SweptIntents(usize),
    SweptStaging(usize),
    CollectedBlob(String),
}

impl JobRunner {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn BlobStore>,
        config: Arc<Config>,
        remote: Arc<RemotePolicy>,
        signer: Signer,
    ) -> Self {
        // new content queues its media job: the pipeline wakes the runner to start it now
        let wake = Arc::new(Notify::new());
        let ingest = Ingest::new(store.clone(), catalog.clone()).waking(wake.clone());
        let uploads = MultipartUploads::new(ingest.clone(), signer, &config);
        let library = LibraryFiles::new(catalog.clone(), ingest.clone());
        let events = GalleryEvents::new(catalog.clone(), ingest.clone());
        let tus = ResumableUploads::new(ingest.clone(), library.clone(), events.clone(), &config);
        Self {
            catalog,
            store,
            ingest,
            uploads,
            tus,
            library,
            events,
            remote,
            config,
            wake,
            touches_blobs: true,
            last_empty_collection: Arc::new(Mutex::new(None)),
            last_staging_sweep: Arc::new(Mutex::new(None)),
        }
    }

    /// The same runner without the steps that write or remove blobs (queued jobs, the
    /// intent sweep, collection).
    pub fn without_blob_writes(self) -> Self {
        Self { touches_blobs: false, ..self }
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

    /// Runs one queued job, or else one maintenance step: expire an upload (multipart, then
    /// tus), purge old tombstones, collect a blob — in that order, since each can free the next.
    pub async fn run_one_step(&self) -> Result<Step, CatalogError> {
        if let Some(job) = self.claim_job().await? {
            let (job_id, kind) = (job.job_id, job.kind.clone());
            let outcome = self.run_job(&job).await;
            let ok = matches!(outcome, JobOutcome::Done);
            self.catalog.finish_job(job_id, outcome).await?;
            return Ok(Step::RanJob { job_id, kind, ok });
        }
        if let Some(upload_id) = self.uploads.expire_one().await.map_err(upload_failure)? {
            return Ok(Step::ExpiredUpload(upload_id));
        }
        if let Some(upload_id) = self.tus.expire_one().await.map_err(tus_failure)? {
            return Ok(Step::ExpiredUpload(upload_id));
        }
        let targets = self.catalog.forget_expired_targets().await?;
        if targets > 0 {
            return Ok(Step::ForgotTargets(targets));
        }
        if self.touches_blobs {
            let swept = self.catalog.sweep_intents(INTENT_AGE, consistency::deleter(self.store.clone())).await?;
            if swept > 0 {
                return Ok(Step::SweptIntents(swept));
            }
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
        if self.staging_sweep_due() {
            // a direct PUT unregistered this long after its URL expired never will be
            let unregistered = self.config.signed_url_ttl + self.config.upload_expiry;
            match self.store.sweep_staging(unregistered).await {
                Ok(n) if n > 0 => return Ok(Step::SweptStaging(n)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned staging failed; will retry"),
            }
        }
        if !self.touches_blobs || self.collection_paused() {
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

    async fn claim_job(&self) -> Result<Option<Job>, CatalogError> {
        if !self.touches_blobs {
            return Ok(None);
        }
        self.catalog.claim_job(LEASE).await
    }

    fn staging_sweep_due(&self) -> bool {
        let mut last = self.last_staging_sweep.lock().expect("not poisoned");
        if last.is_some_and(|at| at.elapsed() < STAGING_SWEEP_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
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

/// See [`upload_failure`].
fn tus_failure(err: TusError) -> CatalogError {
    match err {
        TusError::Ingest(crate::ingest::IngestError::Catalog(e)) => e,
        other => CatalogError::Step(Box::new(other)),
    }
}

/// Expiry is maintenance: its catalog errors stop the step; store trouble was logged.
fn upload_failure(err: UploadError) -> CatalogError {
    match err {
        UploadError::Ingest(crate::ingest::IngestError::Catalog(e)) => e,
        other => CatalogError::Step(Box::new(other)),
    }
}
