//! Store ↔ catalog consistency.
//!
//! - [`bind_store`]: a blob store belongs to one catalog. Their shared identity is written
//!   into both on first use; a store that belongs to another catalog (or holds blobs a fresh
//!   catalog knows nothing about) is refused, so pointing a data dir at another catalog can
//!   never make its blobs look like leftovers.
//! - [`sweep_intents`]: the commit and collection protocols write an intent before bytes
//!   move (see `Catalog::sweep_intents`); after a crash the sweep finishes what the intents
//!   name. Bytes the catalog knows nothing about are never removed by it.
//! - [`check`]: both directions, read-only; [`repair`] removes stored bytes no row and no
//!   intent accounts for, on request only (`ferry admin check --repair`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::blob_store::{BlobStore, StoreError};
use crate::catalog::{BoxError, ByteDeleter, Catalog, CatalogError};

/// The `settings` key holding the identity of the blob store bound to the catalog.
const STORE_ID: &str = "store_id";

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Stored bytes no catalog row describes and no intent names.
    pub blobs_without_rows: Vec<String>,
    /// Catalog rows whose bytes are missing or of the wrong size.
    pub rows_without_blobs: Vec<String>,
    /// Contents whose commit or collection is in progress or was interrupted (the intent
    /// sweep finishes them).
    pub pending_intents: Vec<String>,
    /// Staging objects nothing will ever use again: parts of uploads that are gone, direct
    /// PUTs never registered, request staging a crash left (older than `staging_age`).
    pub staging_leftovers: Vec<String>,
    /// Multipart uploads the S3 server holds open under staging that nothing will complete
    /// (a crashed replica's), as `key upload-id`.
    pub open_multipart_uploads: Vec<String>,
    /// With `--deep`: blobs whose bytes no longer hash to their name (or cannot be read).
    pub corrupt_blobs: Vec<String>,
    /// With `--repair`: what was removed (blobs without rows, leftovers, open uploads).
    pub removed: Vec<String>,
    /// What the check could not look at, and why.
    pub notes: Vec<String>,
}

/// What `check` looks at besides rows and blobs.
#[derive(Debug, Clone, Copy)]
pub struct CheckScope {
    /// Re-hash every stored blob.
    pub deep: bool,
    /// Staging older than this that no upload uses is a leftover (the upload expiry, and
    /// more: an upload in flight may be older than a request usually is).
    pub staging_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store belongs to another catalog; the message says what to do.
    #[error("{0}")]
    Mismatch(String),
}

/// Makes sure `store` belongs to `catalog`, binding a fresh pair; `catalog_name` names the
/// catalog in messages (never with a password).
pub async fn bind_store(catalog: &dyn Catalog, store: &dyn BlobStore, catalog_name: &str) -> Result<(), CheckError> {
    let recorded = catalog.setting(STORE_ID).await?.map(|id| String::from_utf8_lossy(&id).into_owned());
    let marked = store.identity().await?;
    let what_to_do = "Point Ferry at the catalog this store belongs to, or use a fresh data dir \
                      (--data-dir / FERRY_DATA_DIR) for this catalog; to move an embedded installation \
                      into PostgreSQL (and S3), run `ferry admin migrate-store --from-data-dir OLD_DIR`.";
    let mismatch = |why: String| CheckError::Mismatch(format!("{why}. {what_to_do}"));
    match (recorded, marked) {
        (Some(catalog_id), Some(store_id)) if catalog_id == store_id => Ok(()),
        (Some(catalog_id), Some(store_id)) => Err(mismatch(format!(
            "{} belongs to another catalog (store {store_id}; the catalog at {catalog_name} is bound to store {catalog_id})",
            store.describe()
        ))),
        (Some(catalog_id), None) => {
            // a store never bound: fine while empty (a new bucket or a wiped-clean directory
            // for a catalog that records no blobs yet)
            if store.has_blobs().await? || catalog.has_blobs().await? {
                return Err(mismatch(format!(
                    "{} has no identity, but the catalog at {catalog_name} was bound to store {catalog_id} \
                     (if this is that store and only its identity file was lost, write {catalog_id} into it)",
                    store.describe()
                )));
            }
            claim(store, &catalog_id).await
        }
        (None, Some(store_id)) => {
            if store.has_blobs().await? || catalog.has_blobs().await? {
                return Err(mismatch(format!(
                    "{} belongs to another catalog (store {store_id}), not to the catalog at {catalog_name}",
                    store.describe()
                )));
            }
            adopt(catalog, &store_id).await
        }
        (None, None) => {
            let (store_has, catalog_has) = (store.has_blobs().await?, catalog.has_blobs().await?);
            if store_has && !catalog_has {
                return Err(mismatch(format!(
                    "{} holds blobs the catalog at {catalog_name} knows nothing about: they belong to another catalog",
                    store.describe()
                )));
            }
            if catalog_has && !store_has {
                return Err(mismatch(format!(
                    "the catalog at {catalog_name} records blobs but {} is empty",
                    store.describe()
                )));
            }
            // a new installation, or one from before stores were bound: bind the pair
            let fresh = ulid::Ulid::new().to_string();
            let bound = adopt_returning(catalog, &fresh).await?;
            claim(store, &bound).await
        }
    }
}

async fn adopt(catalog: &dyn Catalog, store_id: &str) -> Result<(), CheckError> {
    let bound = adopt_returning(catalog, store_id).await?;
    if bound != store_id {
        return Err(CheckError::Mismatch(format!("another process bound this catalog to store {bound} meanwhile")));
    }
    Ok(())
}

async fn adopt_returning(catalog: &dyn Catalog, store_id: &str) -> Result<String, CheckError> {
    let bound = catalog.setting_once(STORE_ID, store_id.as_bytes()).await?;
    Ok(String::from_utf8_lossy(&bound).into_owned())
}

async fn claim(store: &dyn BlobStore, id: &str) -> Result<(), CheckError> {
    let bound = store.bind_identity(id).await?;
    if bound != id {
        return Err(CheckError::Mismatch(format!(
            "{} was bound to another catalog (store {bound}) meanwhile",
            store.describe()
        )));
    }
    Ok(())
}

/// A [`ByteDeleter`] over `store`.
pub fn deleter(store: Arc<dyn BlobStore>) -> ByteDeleter {
    Arc::new(move |sha256| {
        let store = store.clone();
        Box::pin(async move { store.delete(&sha256).await.map_err(|e| Box::new(e) as BoxError) })
    })
}

/// Finishes interrupted commits and collections whose intents are older than `older_than`.
pub async fn sweep_intents(
    catalog: &dyn Catalog,
    store: Arc<dyn BlobStore>,
    older_than: Duration,
) -> Result<usize, CheckError> {
    Ok(catalog.sweep_intents(older_than, deleter(store)).await?)
}

/// Compares the store with the catalog in both directions.
pub async fn check(catalog: &dyn Catalog, store: &dyn BlobStore, scope: CheckScope) -> Result<Report, CheckError> {
    let hashes = catalog.all_blob_hashes().await?;
    let rows: HashSet<String> = hashes.iter().map(|h| h.to_string()).collect();
    let pending: HashSet<String> = catalog.pending_intents().await?.into_iter().map(|h| h.to_string()).collect();
    let stored = store.list().await?;
    let mut report = Report {
        blobs_without_rows: stored
            .iter()
            .map(|(h, _)| h.to_string())
            .filter(|h| !rows.contains(h) && !pending.contains(h))
            .collect(),
        pending_intents: pending.into_iter().collect(),
        ..Report::default()
    };
    for hash in hashes {
        let record = catalog.blob(&hash).await?;
        let size = store.size_of(&hash).await?;
        if record.map(|r| r.size) != size {
            report.rows_without_blobs.push(hash.to_string());
        } else if scope.deep && !hashes_to_its_name(store, &hash).await {
            report.corrupt_blobs.push(hash.to_string());
        }
    }
    let mut in_use: HashSet<String> = catalog.staging_in_use().await?.into_iter().collect();
    // a tus upload's key may only have the S3 upload its state records open: another one
    // there was begun by an append that never recorded it
    let mut tus_uploads: HashMap<String, Option<String>> = HashMap::new();
    for (key, state) in catalog.tus_staging().await? {
        let resumable = crate::blob_store::Resumable { key: key.clone(), size: 0, state };
        in_use.extend(store.resumable_keys(&resumable));
        tus_uploads.insert(key, store.resumable_upload(&resumable));
    }
    report.staging_leftovers = staging_leftovers(store, &in_use, scope.staging_age).await?;
    if let Some(direct) = store.direct() {
        match direct.open_uploads(scope.staging_age).await? {
            Some(open) => {
                report.open_multipart_uploads = unaccounted_uploads(open, &in_use, &tus_uploads);
            }
            None => report.notes.push(
                "the S3 server cannot list multipart uploads: open ones are not checked \
                 (a bucket lifecycle rule that aborts incomplete uploads covers them)"
                    .into(),
            ),
        }
    }
    report.blobs_without_rows.sort();
    report.pending_intents.sort();
    Ok(report)
}

/// The open S3 uploads (`key id`) nothing will complete: under a key nothing uses, or under a
/// tus upload's key but not the upload its state records.
fn unaccounted_uploads(
    open: Vec<(String, String)>,
    in_use: &HashSet<String>,
    tus_uploads: &HashMap<String, Option<String>>,
) -> Vec<String> {
    open.into_iter()
        .filter(|(key, id)| match tus_uploads.get(key) {
            Some(recorded) => recorded.as_deref() != Some(id.as_str()),
            None => !in_use.contains(key),
        })
        .map(|(key, id)| format!("{key} {id}"))
        .collect()
}

async fn staging_leftovers(
    store: &dyn BlobStore,
    in_use: &HashSet<String>,
    older_than: Duration,
) -> Result<Vec<String>, CheckError> {
    let now = SystemTime::now();
    let mut leftovers: Vec<String> = store
        .list_staging()
        .await?
        .into_iter()
        .filter(|(key, at)| !in_use.contains(key) && now.duration_since(*at).unwrap_or_default() >= older_than)
        .map(|(key, _)| key)
        .collect();
    leftovers.sort();
    Ok(leftovers)
}

/// Streams a blob through SHA-256 and compares it with its name.
async fn hashes_to_its_name(store: &dyn BlobStore, sha256: &crate::domain::Sha256Hex) -> bool {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    let Ok(mut stream) = store.read(sha256, None).await else { return false };
    let mut digest = Sha256::new();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(bytes) => digest.update(&bytes),
            Err(_) => return false,
        }
    }
    crate::domain::Sha256Hex::from_digest(&digest.finalize()) == *sha256
}

/// Removes the stored bytes [`check`] found without a row, when they are at least `min_age`
/// old (a store shared by replicas may be between placing bytes and recording them).
pub async fn repair(
    catalog: &dyn Catalog,
    store: &dyn BlobStore,
    mut report: Report,
    min_age: Duration,
) -> Result<Report, CheckError> {
    let ages: std::collections::HashMap<String, SystemTime> =
        store.list().await?.into_iter().map(|(h, at)| (h.to_string(), at)).collect();
    let now = SystemTime::now();
    for hash in std::mem::take(&mut report.blobs_without_rows) {
        let old_enough = ages.get(&hash).is_some_and(|at| now.duration_since(*at).unwrap_or_default() >= min_age);
        // a row or an intent may have appeared since the check
        let parsed = crate::domain::Sha256Hex::parse(&hash).map_err(|e| CheckError::Mismatch(e.to_string()))?;
        let accounted = catalog.blob(&parsed).await?.is_some() || catalog.pending_intents().await?.contains(&parsed);
        if old_enough && !accounted {
            store.delete(&parsed).await?;
            report.removed.push(hash);
        } else {
            report.blobs_without_rows.push(hash);
        }
    }
    for key in std::mem::take(&mut report.staging_leftovers) {
        store.discard(&crate::blob_store::Staged { key: key.clone(), size: 0 }).await?;
        report.removed.push(format!("staging/{key}"));
    }
    if let Some(direct) = store.direct() {
        for entry in std::mem::take(&mut report.open_multipart_uploads) {
            let Some((key, id)) = entry.split_once(' ') else { continue };
            direct.abort_open_upload(key, id).await?;
            report.removed.push(format!("open upload {entry}"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    #[test]
    fn an_open_upload_no_record_names_is_unaccounted_even_under_a_live_key() {
        let pair = |key: &str, id: &str| (key.to_owned(), id.to_owned());
        let open = vec![
            pair("uploads/A", "recorded"),
            pair("uploads/A", "begun-by-a-crashed-append"),
            pair("uploads/B", "any"),
            pair("uploads/C", "begun-and-never-recorded"),
            pair("uploads/D", "direct-mode"),
        ];
        let in_use: HashSet<String> = ["uploads/A", "uploads/C", "uploads/D"].map(String::from).into();
        let tus =
            HashMap::from([("uploads/A".to_owned(), Some("recorded".to_owned())), ("uploads/C".to_owned(), None)]);
        assert_eq!(
            super::unaccounted_uploads(open, &in_use, &tus),
            ["uploads/A begun-by-a-crashed-append", "uploads/B any", "uploads/C begun-and-never-recorded"]
        );
    }
}
