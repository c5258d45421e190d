//! Large files in parts (API.md §1, "multipart"): the parts are exactly the chunks of the
//! file-hashing rule, so each part's digest is checked as it arrives and the file hash is
//! known to be consistent before a byte is sent.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::call::DeviceCall;
use super::mount::{FileRef, mounted, parse_hash};
use super::upload::LOCAL_BUCKET_ID;
use crate::blob_store::{DirectMultipart, Staged};
use crate::catalog::{NewUpload, Upload};
use crate::clock::now_ms;
use crate::domain::{Sha256Hex, chunk_size_for};
use crate::http::error::ApiError;
use crate::http::{AppState, direct_upload};
use crate::ingest::{Expectation, ExpectedHash, IngestError};
use crate::signing::targets;

const FAMILY: &str = "device";

#[derive(Deserialize)]
pub struct PlannedPart {
    part_num: u32,
    part_size: u64,
    part_hash: String,
}

#[derive(Deserialize)]
pub struct StartRequest {
    #[serde(flatten)]
    file: FileRef,
    part_list: Vec<PlannedPart>,
}

fn invalid_parts(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_part_list", message)
}

/// Checks a part plan against the hashing rule; returns `(size, digest)` per part in order.
fn check_plan(file_size: u64, file_hash: &Sha256Hex, parts: &[PlannedPart]) -> Result<Vec<(u64, Sha256Hex)>, ApiError> {
    let chunk = chunk_size_for(file_size);
    if chunk == 0 {
        return Err(invalid_parts("files up to 16 MiB are uploaded with one signed PUT (see upload)"));
    }
    let count = file_size.div_ceil(chunk);
    if parts.len() as u64 != count {
        return Err(invalid_parts(format!("a file of {file_size} bytes has {count} parts of {chunk} bytes")));
    }
    let mut plan: Vec<Option<(u64, Sha256Hex)>> = vec![None; count as usize];
    for part in parts {
        let index = (part.part_num as u64)
            .checked_sub(1)
            .filter(|i| *i < count)
            .ok_or_else(|| invalid_parts(format!("part_num {} is outside 1..{count}", part.part_num)))?;
        let expected = if index + 1 == count { file_size - chunk * (count - 1) } else { chunk };
        if part.part_size != expected {
            return Err(invalid_parts(format!("part {} must be {expected} bytes", part.part_num)));
        }
        if plan[index as usize].replace((expected, parse_hash(&part.part_hash)?)).is_some() {
            return Err(invalid_parts(format!("part {} is listed twice", part.part_num)));
        }
    }
    let plan: Vec<(u64, Sha256Hex)> = plan.into_iter().map(|p| p.expect("every slot filled")).collect();
    let mut top = Sha256::new();
    for (_, digest) in &plan {
        top.update(hex::decode(digest.as_str()).expect("parsed hex"));
    }
    if Sha256Hex::from_digest(&top.finalize()) != *file_hash {
        return Err(ApiError::bad_request("hash_mismatch", "the part hashes do not combine to file_hash"));
    }
    Ok(plan)
}

pub async fn start(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<StartRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    if call.calling_device().is_upload_disabled {
        return Err(ApiError::forbidden("uploads are disabled for this device").with_code("upload_disabled"));
    }
    let file_hash = parse_hash(&call.body.file.file_hash)?;
    let file_size = call.body.file.file_size;
    // the body limit of a single PUT holds for the sum of the parts as well
    if file_size > state.config.max_upload_size {
        return Err(IngestError::TooLarge { limit: state.config.max_upload_size }.into());
    }
    let plan = check_plan(file_size, &file_hash, &call.body.part_list)?;
    let held = state.catalog.held_by_device_hash(call.owner().user_id, std::slice::from_ref(&file_hash)).await?;
    if held.iter().any(|b| b.size == file_size) {
        let body = json!({"skip_upload": true, "error": "already_uploaded", "message": "this account already holds this file"});
        return Ok((StatusCode::CONFLICT, Json(body)));
    }
    // in direct mode S3 holds the parts; its upload id travels inside ours
    let direct = state.store.direct();
    let store_upload = match direct {
        Some(direct) => Some(direct.start_multipart().await.map_err(direct_upload::store_failed)?),
        None => None,
    };
    let upload = state
        .catalog
        .create_upload(&NewUpload {
            upload_id: store_upload.as_ref().map_or_else(|| ulid::Ulid::new().to_string(), |u| u.upload_id()),
            family: FAMILY,
            user_id: call.owner().user_id,
            grant_id: Some(grant.media_grant_id),
            file_key: None,
            file_size: Some(file_size),
            file_hash: Some(file_hash),
            part_count: Some(plan.len() as u32),
            content_type: None,
            expires_ms: now_ms() + state.config.upload_expiry.as_millis() as i64,
        })
        .await?;
    if let (Some(direct), Some(store_upload)) = (direct, &store_upload) {
        let urls = direct_upload::part_urls(&state, direct, store_upload, plan.len() as u32).await?;
        let urls: Vec<Value> = urls.iter().zip(1..).map(|(url, num)| json!({"part_num": num, "url": url})).collect();
        let body = json!({"upload_id": upload.upload_id, "s3_bucket_id": LOCAL_BUCKET_ID, "signed_url_list": urls});
        return Ok((StatusCode::OK, Json(body)));
    }
    let expires = state.signed_url_expiry();
    let urls: Vec<Value> = plan
        .iter()
        .enumerate()
        .map(|(i, (size, digest))| {
            let num = i as u32 + 1;
            let url = targets::part_put(
                &state.signer,
                &state.upload_url,
                &upload.upload_id,
                num,
                Some((*size, digest)),
                expires,
            );
            json!({"part_num": num, "url": url})
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({"upload_id": upload.upload_id, "s3_bucket_id": LOCAL_BUCKET_ID, "signed_url_list": urls})),
    ))
}

/// The caller's unfinished or completed device upload through this grant.
async fn own_upload(
    state: &AppState,
    call_user: crate::domain::UserId,
    grant: &crate::catalog::Grant,
    upload_id: &str,
) -> Result<Option<Upload>, ApiError> {
    let upload = state.catalog.upload(upload_id).await?;
    Ok(upload.filter(|u| u.family == FAMILY && u.user_id == call_user && u.grant_id == Some(grant.media_grant_id)))
}

#[derive(Deserialize)]
pub struct CompletedPart {
    part_num: u32,
    etag: String,
}

#[derive(Deserialize)]
pub struct CompleteRequest {
    #[serde(flatten)]
    file: FileRef,
    s3_bucket_id: i64,
    upload_id: String,
    part_list: Vec<CompletedPart>,
}

pub async fn complete(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<CompleteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let body = &call.body;
    if body.s3_bucket_id != LOCAL_BUCKET_ID {
        return Err(ApiError::bad_request("unknown_bucket", format!("no bucket {}", body.s3_bucket_id)));
    }
    let file_hash = parse_hash(&body.file.file_hash)?;
    let upload = own_upload(&state, call.owner().user_id, &grant, &body.upload_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such upload (aborted or expired?)").with_code("no_such_upload"))?;
    if upload.file_hash.as_ref() != Some(&file_hash) || upload.file_size != Some(body.file.file_size) {
        return Err(ApiError::bad_request("upload_mismatch", "file_hash and file_size differ from the started upload"));
    }
    if upload.completed {
        return Ok((StatusCode::CREATED, Json(json!({}))));
    }
    let stored = state.catalog.parts(&upload.upload_id).await?;
    let count = upload.part_count.unwrap_or(0) as usize;
    let mut listed: Vec<&CompletedPart> = body.part_list.iter().collect();
    listed.sort_by_key(|p| p.part_num);
    if listed.len() != count || listed.iter().enumerate().any(|(i, p)| p.part_num as usize != i + 1) {
        return Err(invalid_parts(format!("part_list must name parts 1..{count} once each")));
    }
    let expect = Expectation {
        size: Some(body.file.file_size),
        hash: Some(ExpectedHash::Device(file_hash)),
        max_size: None,
        size_hint: Some(body.file.file_size),
    };
    if let (Some(direct), Some(store_upload)) = (state.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
        let listed: Vec<(u32, &str)> = listed.iter().map(|p| (p.part_num, p.etag.as_str())).collect();
        let parts = direct_upload::checked_parts(direct, &store_upload, &listed).await?;
        let chunk = chunk_size_for(body.file.file_size);
        if let Some(odd) =
            parts.iter().find(|p| p.size != chunk.min(body.file.file_size - chunk * (p.part_num as u64 - 1)))
        {
            return Err(invalid_parts(format!("part {} has {} bytes, not its planned size", odd.part_num, odd.size)));
        }
        let received = match direct_upload::assemble(&state, direct, &store_upload, &parts, &expect).await {
            Ok(received) => received,
            Err(err) => {
                // S3 consumed the parts; the upload cannot be completed any more
                state.catalog.delete_upload(&upload.upload_id).await?;
                return Err(err);
            }
        };
        let ingested = state.ingest.commit(received, call.owner().user_id).await?;
        state.catalog.complete_upload(&upload.upload_id, &json!({}), &ingested.blob).await?;
        return Ok((StatusCode::CREATED, Json(json!({}))));
    }
    let by_num: std::collections::HashMap<u32, &crate::catalog::Part> =
        stored.iter().map(|p| (p.part_num, p)).collect();
    let mut staged = Vec::with_capacity(count);
    for part in listed {
        let Some(stored) = by_num.get(&part.part_num) else {
            return Err(ApiError::bad_request("missing_part", format!("part {} was never uploaded", part.part_num)));
        };
        if part.etag.trim_matches('"') != stored.etag {
            return Err(ApiError::bad_request(
                "etag_mismatch",
                format!("part {}: the ETag does not match", part.part_num),
            ));
        }
        staged.push(Staged { key: stored.staging_key.clone(), size: stored.size });
    }
    let received = state.ingest.assemble(&staged, &expect).await?;
    let ingested = state.ingest.commit(received, call.owner().user_id).await?;
    state.catalog.complete_upload(&upload.upload_id, &json!({}), &ingested.blob).await?;
    state.ingest.discard_staged(&staged).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

#[derive(Deserialize)]
pub struct AbortRequest {
    upload_id: String,
}

/// Frees an upload's parts; aborting one that is gone (or already aborted) is fine.
pub async fn abort(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<AbortRequest>,
) -> Result<Json<Value>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    if let Some(upload) =
        own_upload(&state, call.owner().user_id, &grant, &call.body.upload_id).await?.filter(|u| !u.completed)
    {
        if let (Some(direct), Some(store_upload)) = (state.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
            direct.abort_multipart(&store_upload).await.map_err(direct_upload::store_failed)?;
        }
        let parts = state.catalog.delete_upload(&upload.upload_id).await?;
        let staged: Vec<Staged> = parts.into_iter().map(|p| Staged { key: p.staging_key, size: p.size }).collect();
        state.ingest.discard_staged(&staged).await?;
    }
    Ok(Json(json!({})))
}
