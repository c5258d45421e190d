//! Store ↔ catalog consistency. The commit protocol makes a catalog row without bytes
//! impossible; a crash between placing bytes and committing their row can leave bytes
//! without a row (never acknowledged to any client), which [`sweep_orphans`] removes.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::blob_store::{BlobStore, StoreError};
use crate::catalog::{Catalog, CatalogError};

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Stored bytes no catalog row describes.
    pub blobs_without_rows: Vec<String>,
    /// Catalog rows whose bytes are missing or of the wrong size.
    pub rows_without_blobs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compares the store with the catalog in both directions.
pub async fn check(catalog: &dyn Catalog, store: &dyn BlobStore) -> Result<Report, CheckError> {
    let rows: HashSet<String> = catalog.all_blob_hashes().await?.into_iter().map(|h| h.to_string()).collect();
    let stored = store.list().await?;
    let stored_set: HashSet<String> = stored.iter().map(|(h, _)| h.to_string()).collect();
    let mut report =
        Report { blobs_without_rows: stored_set.difference(&rows).cloned().collect(), rows_without_blobs: Vec::new() };
    for hash in catalog.all_blob_hashes().await? {
        let record = catalog.blob(&hash).await?;
        let size = store.size_of(&hash).await?;
        if record.map(|r| r.size) != size {
            report.rows_without_blobs.push(hash.to_string());
        }
    }
    report.blobs_without_rows.sort();
    Ok(report)
}

/// Deletes stored bytes that no row describes and that are older than `min_age` (younger
/// ones may belong to a commit in progress on another process). Returns how many.
pub async fn sweep_orphans(
    catalog: &dyn Catalog,
    store: &dyn BlobStore,
    min_age: Duration,
) -> Result<usize, CheckError> {
    let rows: HashSet<String> = catalog.all_blob_hashes().await?.into_iter().map(|h| h.to_string()).collect();
    let now = SystemTime::now();
    let mut removed = 0;
    for (hash, modified) in store.list().await? {
        let old_enough = now.duration_since(modified).unwrap_or_default() >= min_age;
        if old_enough && !rows.contains(hash.as_str()) {
            store.delete(&hash).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
