//! Background work: queued jobs from the catalog, and periodic maintenance.
//!
//! The runner only claims, leases, retries and dispatches: what a job kind does is a
//! [`JobHandler`], and what maintenance does is a [`Periodic`] task, both registered where the
//! application is assembled (`app`), so this module imports no feature. Jobs run concurrently,
//! a few workers per kind ([`Registration`]), and fairly: an account that has its share of a
//! kind's workers waits for one of them before it gets another (see
//! `catalog::ClaimScope`), so one account's slow import never stalls another's, and a slow
//! network job never stalls media processing, expiry or collection (they have workers of
//! their own). A running job's lease is renewed while its worker lives; a dead worker's job
//! is taken over once the lease has passed, and retried.
//!
//! [`JobRunner::run_one_step`] does one unit of work so tests and `ferry admin jobs run
//! --until-idle` drive it deterministically; the server runs the same in workers.

pub mod consistency;
mod lifecycle;
mod maintenance;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::catalog::{BoxError, CatalogError, ClaimScope, Job, JobOutcome, JobQueue};
use crate::domain::{JobKind, UserId};
pub use lifecycle::{PassReport, StorageLifecycle};
pub use maintenance::{BlobWrites, maintenance_tasks, periodic};

/// How long a claimed job is leased; its worker renews it every third of that while alive.
const LEASE: Duration = Duration::from_secs(60);

/// What one kind of job does.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs one job. Implementations MUST be idempotent (a job may run again after a worker
    /// died) and MUST sort their failures: what may pass is retried, what cannot is failed.
    async fn run(&self, job: &Job) -> JobOutcome;
}

/// A maintenance task run when there is no queued work (expiry, sweeps, collection).
#[async_trait]
pub trait Periodic: Send + Sync {
    /// What the task is, for logs and `admin jobs run`.
    fn name(&self) -> &'static str;
    /// Does one unit of the task's work; `Some` says what was done, `None` that there was
    /// nothing to do.
    async fn step(&self) -> Result<Option<String>, BoxError>;
}

/// How a job kind runs.
#[derive(Clone)]
pub struct Registration {
    pub handler: Arc<dyn JobHandler>,
    /// Jobs of this kind running at once in one process.
    pub workers: usize,
    /// Jobs of this kind one account may have running at once (across replicas).
    pub per_owner: u32,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    RanJob { job_id: i64, kind: JobKind, ok: bool },
    Maintained { task: &'static str, did: String },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Idle => f.write_str("idle"),
            Step::RanJob { job_id, kind, ok } => {
                write!(f, "{kind} job {job_id} {}", if *ok { "done" } else { "failed or retried" })
            }
            Step::Maintained { task, did } => write!(f, "{task}: {did}"),
        }
    }
}

#[derive(Clone)]
pub struct JobRunner {
    catalog: Arc<dyn JobQueue>,
    kinds: Arc<BTreeMap<JobKind, Registration>>,
    periodic: Arc<Vec<Arc<dyn Periodic>>>,
    wake: Arc<Notify>,
    interval: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl JobRunner {
    /// A runner over `catalog`, woken by `wake` (the ingest pipeline notifies it when new
    /// content queued its media job), looking for work every `interval` when idle.
    pub fn new(catalog: Arc<dyn JobQueue>, wake: Arc<Notify>, interval: Duration) -> Self {
        Self { catalog, kinds: Arc::default(), periodic: Arc::default(), wake, interval, metrics: Arc::default() }
    }

    /// Counts the jobs it runs into `metrics` (`ferry_jobs_total`).
    pub fn counting(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// Registers the handler of a job kind (at assembly, before the runner is cloned).
    pub fn register(mut self, kind: JobKind, registration: Registration) -> Self {
        Arc::make_mut(&mut self.kinds).insert(kind, registration);
        self
    }

    /// Registers maintenance tasks, run in this order (each can free the next).
    pub fn maintain(mut self, tasks: Vec<Arc<dyn Periodic>>) -> Self {
        self.periodic = Arc::new(tasks);
        self
    }

    /// Queues a job on behalf of `owner` and wakes the runner.
    pub async fn enqueue(
        &self,
        kind: JobKind,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        owner: Option<UserId>,
    ) -> Result<i64, CatalogError> {
        let id = self.catalog.enqueue_job_for(kind, payload, dedup_key, owner).await?;
        // every idle worker looks (the job may be of any kind); one that is between a claim
        // and its wait finds the stored permit
        self.wake.notify_waiters();
        self.wake.notify_one();
        Ok(id)
    }

    /// Runs one queued job of a registered kind, or else one maintenance step.
    pub async fn run_one_step(&self) -> Result<Step, CatalogError> {
        let kinds: Vec<JobKind> = self.kinds.keys().copied().collect();
        if !kinds.is_empty() {
            let scope = ClaimScope { kinds: &kinds, per_owner: u32::MAX };
            if let Some(job) = self.catalog.claim_job_in(LEASE, scope).await? {
                return self.run_claimed(job).await;
            }
        }
        for task in self.periodic.iter() {
            match task.step().await {
                Ok(Some(did)) => return Ok(Step::Maintained { task: task.name(), did }),
                Ok(None) => {}
                Err(e) => tracing::warn!(task = task.name(), error = %e, "maintenance step failed; will retry"),
            }
        }
        Ok(Step::Idle)
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

    /// Runs a claimed job under its handler, renewing its lease while it runs, and records
    /// the outcome. A handler that panics fails its job.
    async fn run_claimed(&self, job: Job) -> Result<Step, CatalogError> {
        let (job_id, kind) = (job.job_id, job.kind);
        let span = tracing::info_span!("job", job_id, kind = %kind, owner = ?job.owner_id.map(|o| o.0));
        let outcome = async {
            let Some(registration) = self.kinds.get(&kind) else {
                return JobOutcome::Failed { error: format!("no handler for job kind '{kind}'") };
            };
            let handler = registration.handler.clone();
            // both stop with this future (a server stopped mid-job leaves its lease to expire)
            let _heartbeat = AbortOnDrop(self.heartbeat(job_id));
            let mut running = AbortOnDrop(tokio::spawn(async move { handler.run(&job).await }.in_current_span()));
            match (&mut running.0).await {
                Ok(outcome) => outcome,
                Err(e) => JobOutcome::Failed { error: format!("the job's handler failed: {e}") },
            }
        }
        .instrument(span.clone())
        .await;
        let ok = matches!(outcome, JobOutcome::Done);
        let counted = match &outcome {
            JobOutcome::Done => "done",
            JobOutcome::Retry { .. } => "retried",
            JobOutcome::Failed { .. } | JobOutcome::Refused { .. } => "failed",
        };
        self.metrics.job(kind.as_str(), counted);
        span.in_scope(|| match &outcome {
            JobOutcome::Done => tracing::debug!("job done"),
            JobOutcome::Retry { error, after } => tracing::info!(%error, ?after, "job will be retried"),
            JobOutcome::Failed { error } | JobOutcome::Refused { error, .. } => tracing::warn!(%error, "job failed"),
        });
        self.catalog.finish_job(job_id, outcome).await?;
        Ok(Step::RanJob { job_id, kind, ok })
    }

    /// Renews a running job's lease until aborted.
    fn heartbeat(&self, job_id: i64) -> tokio::task::JoinHandle<()> {
        let catalog = self.catalog.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = catalog.renew_job(job_id, LEASE).await {
                    tracing::warn!(job_id, error = %e, "could not renew a job's lease");
                }
            }
        })
    }

    /// The server's loop: each registered kind's workers take its jobs as they come; one
    /// more loop runs maintenance when it finds nothing else to do.
    pub async fn run_forever(self) {
        let mut workers = tokio::task::JoinSet::new();
        for (kind, registration) in self.kinds.iter() {
            for _ in 0..registration.workers.max(1) {
                let (runner, kind, per_owner) = (self.clone(), *kind, registration.per_owner);
                workers.spawn(async move { runner.work(kind, per_owner).await });
            }
        }
        let maintenance = self.clone();
        workers.spawn(async move { maintenance.maintain_forever().await });
        while workers.join_next().await.is_some() {}
    }

    /// One worker of `kind`: claims its jobs within the kind's fair share per account.
    async fn work(&self, kind: JobKind, per_owner: u32) {
        let kinds = [kind];
        loop {
            let claimed = self.catalog.claim_job_in(LEASE, ClaimScope { kinds: &kinds, per_owner }).await;
            match claimed {
                Ok(Some(job)) => {
                    if let Err(e) = self.run_claimed(job).await {
                        tracing::error!(error = %e, kind = %kind, "could not record a job's outcome");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, kind = %kind, "could not claim a job"),
            }
            self.idle().await;
        }
    }

    async fn maintain_forever(&self) {
        loop {
            let mut busy = true;
            while busy {
                busy = false;
                for task in self.periodic.iter() {
                    match task.step().await {
                        Ok(Some(did)) => {
                            tracing::info!(task = task.name(), did, "maintenance");
                            busy = true;
                            break;
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(task = task.name(), error = %e, "maintenance step failed"),
                    }
                }
            }
            self.idle().await;
        }
    }

    /// Waits until woken or the interval passes.
    async fn idle(&self) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(self.interval) => {}
        }
    }
}

/// A task aborted when this is dropped: work that must not outlive what started it.
pub(crate) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
