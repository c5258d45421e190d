//! `upload` (batch dedup check + signed PUTs) and `s3_object` (registration).

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::DeviceCall;
use super::mount::{FileRef, held_content, mounted, parse_hash};
use crate::domain::Sha256Hex;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::signing::targets;

/// The local store's bucket as API.md names it.
pub const LOCAL_BUCKET_ID: i64 = 1;

#[derive(Deserialize)]
pub struct UploadRequest {
    file_list: Vec<FileRef>,
}

pub async fn upload(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<UploadRequest>,
) -> Result<Json<Value>, ApiError> {
    mounted(&state, &call.principal, &grant_id).await?;
    if call.calling_device().is_upload_disabled {
        return Ok(Json(json!({"upload_list": [], "upload_disabled": true})));
    }
    let files = &call.body.file_list;
    let hashes = files.iter().map(|f| parse_hash(&f.file_hash)).collect::<Result<Vec<Sha256Hex>, _>>()?;
    let held: HashSet<(Sha256Hex, u64)> = state
        .catalog
        .held_by_device_hash(call.owner().user_id, &hashes)
        .await?
        .into_iter()
        .map(|b| (b.chunked_hash.unwrap_or(b.sha256), b.size))
        .collect();
    let expires = state.signed_url_expiry();
    let host = state.upload_url.split_once("://").map_or(state.upload_url.as_str(), |(_, rest)| rest);
    let list: Vec<Value> = files
        .iter()
        .zip(hashes)
        .map(|(file, hash)| {
            if held.contains(&(hash.clone(), file.file_size)) {
                return json!({"file_hash": hash, "file_size": file.file_size, "skip_upload": true});
            }
            let url = targets::device_blob_put(
                &state.signer,
                &state.upload_url,
                call.owner().user_id,
                file.file_size,
                &hash,
                expires,
            );
            let path = &url[state.upload_url.len()..];
            json!({
                "file_hash": hash,
                "file_size": file.file_size,
                "skip_upload": false,
                "signed_opts": {"host": host, "method": "PUT", "path": path, "url": url, "headers": {}},
                "s3_bucket_id": LOCAL_BUCKET_ID,
            })
        })
        .collect();
    Ok(Json(json!({"upload_list": list})))
}

#[derive(Deserialize)]
pub struct S3ObjectRequest {
    s3_bucket_id: i64,
    #[serde(flatten)]
    file: FileRef,
}

/// Registers an uploaded object. Ferry verified the bytes as they arrived (the signed PUT
/// was bound to this size and hash), so the object exists for this account exactly when
/// the account holds that content.
pub async fn s3_object(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<S3ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    mounted(&state, &call.principal, &grant_id).await?;
    if call.body.s3_bucket_id != LOCAL_BUCKET_ID {
        return Err(ApiError::bad_request("unknown_bucket", format!("no bucket {}", call.body.s3_bucket_id)));
    }
    held_content(&state, &call.principal, &call.body.file).await.map_err(|_| {
        ApiError::bad_request(
            "object_missing",
            "no object with that file_hash and file_size was uploaded by this account",
        )
    })?;
    Ok(Json(json!({})))
}
