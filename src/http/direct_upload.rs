//! Direct-to-S3 mode, shared by the device and multipart families: presigned URLs straight to
//! the store, and completions that check the client's part list and ETags against the parts
//! the store holds before S3 assembles them and Ferry reads the object back to verify it.

use std::time::Duration;

use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::blob_store::{DirectMultipart, DirectUploads, Presigned, StoreError, StoredPart, composite_etag};
use crate::domain::{Sha256Hex, UserId};
use crate::ingest::{Expectation, IngestError, Ingested};

pub fn store_failed(err: StoreError) -> ApiError {
    IngestError::Store(err).into()
}

pub fn ttl(state: &AppState) -> Duration {
    state.config.signed_url_ttl
}

/// The device family's `signed_opts` for a presigned PUT.
pub fn signed_opts(presigned: &Presigned) -> Value {
    let url = reqwest::Url::parse(&presigned.url).expect("presigned URLs parse");
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let headers: serde_json::Map<String, Value> =
        presigned.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
    json!({"host": host, "method": "PUT", "path": path, "url": presigned.url, "headers": headers})
}

/// A presigned PUT for `user`'s file, bound to its SHA-256 when the file hash is that (≤ 16 MiB).
pub async fn presign_file(
    state: &AppState,
    direct: &dyn DirectUploads,
    user: UserId,
    file_hash: &Sha256Hex,
    size: u64,
) -> Result<Value, ApiError> {
    let key = direct.direct_key(user, file_hash, size);
    let plain = crate::domain::chunk_size_for(size) == 0;
    let presigned = direct.presign_put(&key, plain.then_some(file_hash), ttl(state)).await.map_err(store_failed)?;
    Ok(signed_opts(&presigned))
}

/// Registers `user`'s direct PUT of a file: the object must exist, and reading it back must
/// give exactly the bound size and file hash; then it is committed and held like any upload.
pub async fn register_file(
    state: &AppState,
    direct: &dyn DirectUploads,
    user: UserId,
    expect: Expectation,
    file_hash: &Sha256Hex,
) -> Result<Ingested, ApiError> {
    let size = expect.size.expect("a registration binds the size");
    let key = direct.direct_key(user, file_hash, size);
    let Some(actual) = direct.staged_size(&key).await.map_err(store_failed)? else {
        return Err(ApiError::bad_request(
            "object_missing",
            "no object with that file_hash and file_size was uploaded",
        ));
    };
    let staged = crate::blob_store::Staged { key, size: actual };
    let received = state.ingest.verify_staged(staged, &expect).await?;
    Ok(state.ingest.commit(received, user).await?)
}

/// The presigned part URLs 1..=count of a store-held upload.
pub async fn part_urls(
    state: &AppState,
    direct: &dyn DirectUploads,
    upload: &DirectMultipart,
    count: u32,
) -> Result<Vec<String>, ApiError> {
    let mut urls = Vec::with_capacity(count as usize);
    for part in 1..=count {
        urls.push(direct.presign_part(upload, part, ttl(state)).await.map_err(store_failed)?);
    }
    Ok(urls)
}

/// Checks the client's parts (numbers 1..N in order, already validated) against the store's:
/// each must be there, with the same ETag where the store lists them. Returns the parts in
/// order, with the client's ETags.
pub async fn checked_parts(
    direct: &dyn DirectUploads,
    upload: &DirectMultipart,
    listed: &[(u32, &str)],
) -> Result<Vec<StoredPart>, ApiError> {
    let stored = direct
        .list_parts(upload)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| ApiError::not_found("this upload was aborted or has expired").with_code("no_such_upload"))?;
    let mut parts = Vec::with_capacity(listed.len());
    for (num, etag) in listed {
        let found = stored
            .iter()
            .find(|p| p.part_num == *num)
            .ok_or_else(|| ApiError::bad_request("missing_part", format!("part {num} was never uploaded")))?;
        let etag = etag.trim().trim_matches('"');
        if found.etag.as_deref().is_some_and(|stored| stored != etag) {
            return Err(etag_mismatch(format!("part {num}: the ETag does not match")));
        }
        parts.push(StoredPart { etag: Some(etag.to_owned()), ..found.clone() });
    }
    Ok(parts)
}

fn etag_mismatch(message: String) -> ApiError {
    ApiError::bad_request("etag_mismatch", message)
}

/// Has the store assemble `parts`, checks the client's ETags against the assembled object's
/// (Ferry checks them itself: some stores, s3s-fs among them, neither list part ETags nor
/// check them on completion), then reads the object back against `expect`.
pub async fn assemble(
    state: &AppState,
    direct: &dyn DirectUploads,
    upload: &DirectMultipart,
    parts: &[StoredPart],
    expect: &Expectation,
) -> Result<crate::ingest::Received, ApiError> {
    let etags: Vec<String> = parts.iter().map(|p| p.etag.clone().unwrap_or_default()).collect();
    let size = parts.iter().map(|p| p.size).sum();
    let assembled = match direct.complete_multipart(upload, &etags, size).await {
        Ok(assembled) => assembled,
        Err(err) => {
            // callers forget the upload on any failure here: leave no parts behind in S3
            let _ = direct.abort_multipart(upload).await;
            return Err(store_failed(err));
        }
    };
    let expected = composite_etag(&etags.iter().map(String::as_str).collect::<Vec<_>>());
    if let (Some(expected), Some(actual)) = (expected, &assembled.etag)
        && actual.ends_with(&format!("-{}", parts.len()))
        && *actual != expected
    {
        state.ingest.discard_staged(&[assembled.staged]).await?;
        return Err(etag_mismatch("the part ETags do not match the uploaded parts".into()));
    }
    Ok(state.ingest.verify_staged(assembled.staged, expect).await?)
}
