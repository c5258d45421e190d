//! The storage lifecycle as maintenance: deleted items go after `FERRY_TOMBSTONE_RETENTION`,
//! holds nothing uses any more go (a fresh upload's after `FERRY_UPLOAD_EXPIRY`), and content
//! nobody holds or uses is collected `FERRY_GC_GRACE` after its last hold went — bytes first
//! recorded as being collected, so a crash never leaves a row without bytes (see
//! `catalog::Lifecycle`). Each step reads only what is due, so an idle pass is a few index
//! lookups whatever the store's size.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{Periodic, consistency, periodic};
use crate::blob_store::BlobStore;
use crate::catalog::{BoxError, Collection, HoldLifetimes, Lifecycle};
use crate::clock::now_ms;
use crate::config::Config;

/// Rows one step of purging or hold checks takes (each in a transaction of its own size).
const BATCH: u32 = 500;
/// After a collection step finds nothing due it rests this long (the step is an index lookup,
/// but the runner wakes after every upload).
const COLLECTION_REST: Duration = Duration::from_secs(5);

/// What a pass did (`ferry admin collect --json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PassReport {
    /// Tombstones and deleted gallery events removed after their retention.
    pub purged_items: usize,
    /// Holds of accounts that no longer use the content.
    pub released_holds: usize,
    pub collected_blobs: usize,
    pub freed_bytes: i64,
}

/// The lifecycle steps over one catalog and store, with the server's lifetimes.
#[derive(Clone)]
pub struct StorageLifecycle {
    catalog: Arc<dyn Lifecycle>,
    store: Arc<dyn BlobStore>,
    lifetimes: HoldLifetimes,
    grace: Duration,
}

impl StorageLifecycle {
    pub fn new(catalog: Arc<dyn Lifecycle>, store: Arc<dyn BlobStore>, config: &Config) -> Self {
        let lifetimes = HoldLifetimes { upload_expiry: config.upload_expiry, retention: config.tombstone_retention };
        Self { catalog, store, lifetimes, grace: config.gc_grace }
    }

    async fn purge_step(&self, at_ms: i64) -> Result<usize, BoxError> {
        Ok(self.catalog.purge_deleted(before(at_ms, self.lifetimes.retention), BATCH).await?)
    }

    async fn release_step(&self, at_ms: i64) -> Result<(usize, usize), BoxError> {
        Ok(self.catalog.release_holds(at_ms, self.lifetimes, BATCH).await?)
    }

    async fn collect_step(&self, at_ms: i64) -> Result<Collection, BoxError> {
        let delete = consistency::deleter(self.store.clone());
        Ok(self.catalog.collect_blob(before(at_ms, self.grace), delete).await?)
    }

    /// Runs every step until none has anything left that is due at `at_ms` (the wall clock
    /// in production; later in tests). Without `collect`, blobs are left to the process
    /// that may remove them (beside a server on SQLite, the server).
    pub async fn pass(&self, at_ms: i64, collect: bool) -> Result<PassReport, BoxError> {
        let mut report = PassReport::default();
        loop {
            // what this pass wrote is stamped with the wall clock: it is due in this pass too
            let at_ms = at_ms.max(now_ms());
            let purged = self.purge_step(at_ms).await?;
            let (checked, released) = self.release_step(at_ms).await?;
            report.purged_items += purged;
            report.released_holds += released;
            if purged == 0 && checked == 0 {
                break;
            }
        }
        if !collect {
            return Ok(report);
        }
        loop {
            match self.collect_step(at_ms.max(now_ms())).await? {
                Collection::Nothing => break,
                Collection::Kept(_) => {}
                Collection::Collected { size, .. } => {
                    report.collected_blobs += 1;
                    report.freed_bytes += size;
                }
            }
        }
        Ok(report)
    }

    /// The maintenance tasks that only change rows: purging and hold checks.
    pub(super) fn release_tasks(&self) -> [Arc<dyn Periodic>; 2] {
        [
            periodic("purge_deleted", Duration::ZERO, {
                let this = self.clone();
                move || {
                    let this = this.clone();
                    Box::pin(async move {
                        let purged = this.purge_step(now_ms()).await?;
                        Ok((purged > 0).then(|| format!("{purged} deleted items past their retention")))
                    })
                }
            }),
            periodic("release_holds", Duration::ZERO, {
                let this = self.clone();
                move || {
                    let this = this.clone();
                    Box::pin(async move {
                        let (checked, released) = this.release_step(now_ms()).await?;
                        Ok((checked > 0).then(|| format!("{checked} hold checks, {released} holds released")))
                    })
                }
            }),
        ]
    }

    /// The maintenance task that removes blobs (only where this process may).
    pub(super) fn collection_task(&self) -> Arc<dyn Periodic> {
        let this = self.clone();
        periodic("collect_blobs", COLLECTION_REST.min(self.grace / 10), move || {
            let this = this.clone();
            Box::pin(async move {
                Ok(match this.collect_step(now_ms()).await? {
                    Collection::Nothing => None,
                    Collection::Kept(sha256) => Some(format!("kept blob {sha256} (needed again)")),
                    Collection::Collected { sha256, size } => Some(format!("collected blob {sha256} ({size} bytes)")),
                })
            })
        })
    }
}

fn before(at_ms: i64, lifetime: Duration) -> i64 {
    at_ms.saturating_sub(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX))
}
