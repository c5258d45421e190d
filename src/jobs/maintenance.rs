//! The housekeeping the runner does when no job is queued, in the order it is tried (each
//! can free the next): expire abandoned uploads (multipart here, others in the `features`
//! tasks their services make with [`periodic`]) and sessions, forget spent one-time targets,
//! purge deleted items past their retention and release holds nothing uses (the storage
//! lifecycle), finish interrupted blob intents, sweep abandoned staging, collect unreferenced
//! blobs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use super::lifecycle::StorageLifecycle;
use super::{Periodic, consistency};
use crate::blob_store::BlobStore;
use crate::catalog::{BoxError, Catalog};
use crate::clock::now_ms;
use crate::config::Config;
use crate::ingest::multipart::MultipartUploads;

/// Intents older than this are finished by maintenance (a commit takes far less; the
/// start-up sweep takes every intent).
const INTENT_AGE: Duration = Duration::from_secs(600);
/// Abandoned staging is looked for this often (on S3 it is a listing of the staging area).
const STAGING_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Whether the tasks that write or remove blobs run in this process. Beside a server on an
/// SQLite catalog they do not: that catalog keeps commits, collection and the intent sweep
/// apart inside its own process only, so the server runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobWrites {
    Here,
    LeftToServer,
}

/// The maintenance tasks of a process; `features` run right after multipart expiry.
pub fn maintenance_tasks(
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn BlobStore>,
    uploads: MultipartUploads,
    features: Vec<Arc<dyn Periodic>>,
    config: &Config,
    blob_writes: BlobWrites,
) -> Vec<Arc<dyn Periodic>> {
    let mut tasks = vec![Task::shared("expire_uploads", Duration::ZERO, move || {
        let uploads = uploads.clone();
        Box::pin(async move {
            let expired = uploads.expire_one().await.map_err(|e| Box::new(e) as BoxError)?;
            Ok(expired.map(|id| format!("expired upload {id}")))
        })
    })];
    tasks.extend(features);
    tasks.extend([
        Task::shared("forget_targets", Duration::ZERO, {
            let catalog = catalog.clone();
            move || {
                let catalog = catalog.clone();
                Box::pin(async move { counted(catalog.forget_expired_targets().await?, "spent upload targets") })
            }
        }),
        Task::shared("expire_sessions", Duration::ZERO, {
            let (catalog, expiry) = (catalog.clone(), config.upload_expiry);
            move || {
                let catalog = catalog.clone();
                Box::pin(async move {
                    // an expired session keeps answering 410 for one more expiry period, then goes
                    let cutoff = now_ms() - expiry.as_millis() as i64;
                    counted(catalog.delete_expired_sessions(cutoff, 100).await?, "expired sessions")
                })
            }
        }),
    ]);
    let lifecycle = StorageLifecycle::new(catalog.clone(), store.clone(), config);
    tasks.extend(lifecycle.release_tasks());
    if blob_writes == BlobWrites::LeftToServer {
        return tasks;
    }
    tasks.push(Task::shared("sweep_intents", Duration::ZERO, {
        let (catalog, store) = (catalog.clone(), store.clone());
        move || {
            let (catalog, store) = (catalog.clone(), store.clone());
            Box::pin(async move {
                counted(catalog.sweep_intents(INTENT_AGE, consistency::deleter(store)).await?, "interrupted intents")
            })
        }
    }));
    tasks.push(Task::shared("sweep_staging", STAGING_SWEEP_EVERY, {
        // a direct PUT unregistered this long after its URL expired never will be
        let (store, unregistered) = (store.clone(), config.signed_url_ttl + config.upload_expiry);
        move || {
            let store = store.clone();
            Box::pin(async move { counted(store.sweep_staging(unregistered).await?, "abandoned staging objects") })
        }
    }));
    tasks.push(lifecycle.collection_task());
    tasks
}

/// A maintenance task from a step: `Ok(Some(what))` when it did something (logged), `Ok(None)`
/// when there was nothing to do. After a step that did nothing or failed it rests for `rest`.
pub fn periodic<F>(name: &'static str, rest: Duration, step: F) -> Arc<dyn Periodic>
where
    F: Fn() -> BoxFuture<'static, Result<Option<String>, BoxError>> + Send + Sync + 'static,
{
    Task::shared(name, rest, step)
}

fn counted(n: usize, what: &str) -> Result<Option<String>, BoxError> {
    Ok((n > 0).then(|| format!("{n} {what}")))
}

type StepFn = Box<dyn Fn() -> BoxFuture<'static, Result<Option<String>, BoxError>> + Send + Sync>;

/// A task that, once a step of it found nothing to do (or failed), rests for `rest` before it looks
/// again (a listing of S3, a scan of old blobs: not on every idle moment).
struct Task {
    name: &'static str,
    rest: Duration,
    found_nothing_at: Mutex<Option<Instant>>,
    step: StepFn,
}

impl Task {
    fn shared<F>(name: &'static str, rest: Duration, step: F) -> Arc<dyn Periodic>
    where
        F: Fn() -> BoxFuture<'static, Result<Option<String>, BoxError>> + Send + Sync + 'static,
    {
        Arc::new(Self { name, rest, found_nothing_at: Mutex::new(None), step: Box::new(step) })
    }

    fn resting(&self) -> bool {
        let last = self.found_nothing_at.lock().expect("not poisoned");
        last.is_some_and(|at| at.elapsed() < self.rest)
    }
}

#[async_trait]
impl Periodic for Task {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn step(&self) -> Result<Option<String>, BoxError> {
        if self.resting() {
            return Ok(None);
        }
        let did = (self.step)().await;
        // a failing step rests too: a store that is down is not asked again on every idle step
        if !matches!(did, Ok(Some(_))) && !self.rest.is_zero() {
            *self.found_nothing_at.lock().expect("not poisoned") = Some(Instant::now());
        }
        did
    }
}
