//! The device family's top-hash (API.md §1 `file_hash`) of content over 16 MiB is computed
//! while the bytes stream in only where a device needs it: a bound `file_hash`, device
//! multipart. Content that came through another family is recorded without it, and the
//! `device_hash` job fills it in with one read of the blob, off the upload's path (API.md
//! §5): until then a device's `upload` check does not find that content, so the device sends
//! it again and it is deduplicated on commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::blob_store::{BlobStore, StoreError};
use crate::catalog::{Blobs, Job, JobOutcome};
use crate::domain::Sha256Hex;
use crate::ingest::{IngestError, top_hash_of};
use crate::jobs::JobHandler;

/// Runs `device_hash` jobs.
pub struct DeviceHashes {
    catalog: Arc<dyn Blobs>,
    store: Arc<dyn BlobStore>,
}

impl DeviceHashes {
    pub fn new(catalog: Arc<dyn Blobs>, store: Arc<dyn BlobStore>) -> Self {
        Self { catalog, store }
    }

    async fn fill(&self, sha256: &Sha256Hex) -> Result<(), IngestError> {
        let blob = match self.catalog.blob(sha256).await? {
            // collected meanwhile, or a device sent it since (its top-hash came with it)
            Some(blob) if blob.lacks_device_hash() => blob,
            _ => return Ok(()),
        };
        let bytes = match self.store.read(sha256, None).await {
            Ok(bytes) => bytes,
            Err(StoreError::Missing(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let top = top_hash_of(bytes, blob.size).await?;
        self.catalog.record_device_hash(sha256, &top).await?;
        Ok(())
    }
}

#[async_trait]
impl JobHandler for DeviceHashes {
    async fn run(&self, job: &Job) -> JobOutcome {
        let Some(sha256) = job.payload["sha256"].as_str().and_then(|h| Sha256Hex::parse(h).ok()) else {
            return JobOutcome::Failed { error: "bad job payload".into() };
        };
        match self.fill(&sha256).await {
            Ok(()) => JobOutcome::Done,
            // the store or the catalog is unreachable, or the read broke off: worth another go,
            // spread over minutes (an outage of the store outlasts a few seconds); a job that
            // still fails is queued again by the content's next arrival
            Err(error) => JobOutcome::Retry {
                error: error.to_string(),
                after: Duration::from_secs(2u64.pow(job.attempts.clamp(0, 4) as u32 + 4)),
            },
        }
    }
}
