//! Large files in parts (API.md §1, "multipart"): the parts are exactly the chunks of the
//! file-hashing rule, so each part's digest is checked as it arrives and the file hash is
//! known to be consistent before a byte is sent. Starting the same content again resumes
//! the caller's unfinished upload (API.md §5): each URL says whether its part was received.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::call::DeviceCall;
use super::mount::{Empty, FileRef, mounted, parse_hash};
use super::upload::LOCAL_BUCKET_ID;
use crate::catalog::{Upload, UploadFamily};
use crate::domain::{ErrorCode, Sha256Hex, chunk_size_for};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::tag;
use crate::ingest::multipart::{Completion, NewMultipart, PartRule, UploadError};
use crate::ingest::{Expectation, ExpectedHash};

/// One chunk of the file-hashing rule.
#[derive(Deserialize, ToSchema)]
#[schema(as = DevicePlannedPart)]
pub struct PlannedPart {
    /// 1..N.
    part_num: u32,
    part_size: u64,
    /// The chunk's SHA-256 (64 lowercase hex characters).
    part_hash: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceStartRequest)]
pub struct StartRequest {
    #[serde(flatten)]
    file: FileRef,
    /// Every part once: exactly the chunks of the hashing rule.
    part_list: Vec<PlannedPart>,
}

// fields in the order the former `json!` wrote them (sorted): the answer stays byte for byte
/// A part's signed PUT.
#[derive(Serialize, ToSchema)]
#[schema(as = DevicePartUrl)]
pub struct PartUrl {
    /// The staged part's ETag, quoted (only when `received`): list it at completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    etag: Option<String>,
    part_num: u32,
    /// Ferry already holds this part (a resumed upload): do not send it again.
    received: bool,
    /// PUT the part's bytes here; the answer carries its `ETag`.
    url: String,
}

// fields sorted, as with `PartUrl`
/// A started (or resumed) upload.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceStarted)]
pub struct Started {
    /// Always 1.
    #[schema(example = 1)]
    s3_bucket_id: i64,
    signed_url_list: Vec<PartUrl>,
    upload_id: String,
}

// fields sorted, as with `PartUrl`
/// The account already holds the content: nothing to send.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceAlreadyUploaded)]
pub struct AlreadyUploaded {
    error: &'static str,
    message: &'static str,
    skip_upload: bool,
}

fn invalid_parts(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPartList, message)
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
        return Err(ApiError::new(ErrorCode::HashMismatch, "the part hashes do not combine to file_hash"));
    }
    Ok(plan)
}

/// Starts (or resumes) an upload in parts, for files over 16 MiB.
///
/// The plan is checked against the hashing rule: the part count, each size, and that the
/// part hashes combine to `file_hash`. Each URL takes a PUT of its part. Starting again for
/// content whose upload is unfinished (same account, same grant) resumes it: the same
/// `upload_id`, fresh URLs, and `received: true` with the `etag` for parts Ferry holds.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/multipart", tag = tag::DEVICE,
    operation_id = "device_multipart_start",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body = StartRequest,
    responses(
        (status = 200, body = Started),
        (status = 400, description = "`invalid_part_list` (a file of at most 16 MiB, or a plan that does not fit \
            the rule), `hash_mismatch` (the part hashes do not combine to `file_hash`), `invalid_hash`"),
        (status = 403, description = "Uploads are disabled for the device (`upload_disabled`), or as for every call"),
        (status = 409, body = AlreadyUploaded,
            description = "The account already holds this content (`already_uploaded`)"),
        (status = 413, description = "No room in the account's quota (`quota_exceeded`), or a size over the upload \
            limit (`too_large`)"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<StartRequest>,
) -> Result<Response, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    if call.calling_device().is_upload_disabled {
        return Err(ApiError::new(ErrorCode::UploadDisabled, "uploads are disabled for this device"));
    }
    let file_hash = parse_hash(&call.body.file.file_hash)?;
    let file_size = call.body.file.file_size;
    let plan = check_plan(file_size, &file_hash, &call.body.part_list)?;
    let held = state.catalog.held_by_device_hash(call.owner().user_id, std::slice::from_ref(&file_hash)).await?;
    if held.iter().any(|b| b.size == file_size) {
        let body = AlreadyUploaded {
            error: ErrorCode::AlreadyUploaded.as_str(),
            message: "this account already holds this file",
            skip_upload: true,
        };
        return Ok((StatusCode::CONFLICT, Json(body)).into_response());
    }
    // refused before a part is sent when the account's quota has no room for it
    if let Some(room) = state.catalog.quota_room(call.owner().user_id).await?
        && i64::try_from(file_size).map_or(true, |size| size > room)
    {
        return Err(super::mount::over_quota(room));
    }
    let new = NewMultipart {
        family: UploadFamily::Device,
        user: call.owner().user_id,
        grant: Some(grant.media_grant_id),
        file_key: None,
        file_size: Some(file_size),
        file_hash: Some(file_hash),
        part_count: plan.len() as u32,
        content_type: None,
    };
    let (upload, held) = state.uploads.start_or_resume(new, &plan).await?;
    let urls = state.uploads.part_urls(&upload, &state.upload_url, Some(&plan)).await?;
    // received (API.md §5): parts Ferry holds need not be sent again; their ETag completes
    let urls: Vec<PartUrl> = urls
        .into_iter()
        .zip(1..)
        .map(|(url, num): (String, u32)| match held.iter().find(|p| p.part_num == num) {
            Some(part) => PartUrl { etag: Some(format!("\"{}\"", part.etag)), part_num: num, received: true, url },
            None => PartUrl { etag: None, part_num: num, received: false, url },
        })
        .collect();
    let body = Started { s3_bucket_id: LOCAL_BUCKET_ID, signed_url_list: urls, upload_id: upload.upload_id };
    Ok(Json(body).into_response())
}

/// The caller's unfinished or completed device upload through this grant.
async fn own_upload(
    state: &AppState,
    call_user: crate::domain::UserId,
    grant: &crate::catalog::Grant,
    upload_id: &str,
) -> Result<Option<Upload>, ApiError> {
    let upload = state.catalog.upload(upload_id).await?;
    Ok(upload.filter(|u| {
        u.family == UploadFamily::Device && u.user_id == call_user && u.grant_id == Some(grant.media_grant_id)
    }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceCompletedPart)]
pub struct CompletedPart {
    part_num: u32,
    /// The part PUT's `ETag`, with or without its quotes.
    etag: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceCompleteRequest)]
pub struct CompleteRequest {
    #[serde(flatten)]
    file: FileRef,
    /// Always 1.
    #[schema(example = 1)]
    s3_bucket_id: i64,
    upload_id: String,
    /// Every part once.
    part_list: Vec<CompletedPart>,
}

/// Completes an upload in parts: the account then holds the content.
///
/// Create media with `…/media` next. Repeating it answers the same.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/multipart_complete", tag = tag::DEVICE,
    operation_id = "device_multipart_complete",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body = CompleteRequest,
    responses(
        (status = 201, body = Empty, description = "Completed (or completed before)"),
        (status = 400, description = "`unknown_bucket` (s3_bucket_id is not 1), `upload_mismatch` (a hash or size \
            other than the started upload's), `invalid_part_list` (parts not listed 1..N once each, or a part of \
            the wrong size), `etag_mismatch`, `missing_part` (a part never sent), `hash_mismatch` (the file \
            differs from `file_hash`), `invalid_hash`"),
        (status = 404, description = "No such upload, aborted or expired (`no_such_upload`), or as for every call"),
        (status = 409, description = "Another request is completing this upload (`upload_completing`); retry"),
        (status = 413, description = "No room in the account's quota (`quota_exceeded`), or over the upload limit \
            (`too_large`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<CompleteRequest>,
) -> Result<(StatusCode, Json<Empty>), ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let body = &call.body;
    if body.s3_bucket_id != LOCAL_BUCKET_ID {
        return Err(ApiError::new(ErrorCode::UnknownBucket, format!("no bucket {}", body.s3_bucket_id)));
    }
    let file_hash = parse_hash(&body.file.file_hash)?;
    let upload = own_upload(&state, call.owner().user_id, &grant, &body.upload_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchUpload, "no such upload (aborted or expired?)"))?;
    if upload.file_hash.as_ref() != Some(&file_hash) || upload.file_size != Some(body.file.file_size) {
        return Err(ApiError::new(ErrorCode::UploadMismatch, "file_hash and file_size differ from the started upload"));
    }
    let count = upload.part_count.unwrap_or(0) as usize;
    let mut listed: Vec<(u32, String)> = body.part_list.iter().map(|p| (p.part_num, p.etag.clone())).collect();
    listed.sort_by_key(|(num, _)| *num);
    if listed.len() != count || listed.iter().enumerate().any(|(i, (num, _))| *num as usize != i + 1) {
        return Err(invalid_parts(format!("part_list must name parts 1..{count} once each")));
    }
    let completion = Completion {
        upload_id: &upload.upload_id,
        parts: &listed,
        rule: PartRule::Planned { file_size: body.file.file_size },
        expect: Expectation {
            size: Some(body.file.file_size),
            hash: Some(ExpectedHash::Device(file_hash)),
            ..Expectation::default()
        },
        answer: &|_, _| json!({}),
    };
    match state.uploads.complete(completion).await {
        Ok(_) => Ok((StatusCode::CREATED, Json(Empty {}))),
        Err(UploadError::PartSize(why)) => Err(invalid_parts(why)),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceAbortRequest)]
pub struct AbortRequest {
    upload_id: String,
}

/// Aborts an upload in parts, freeing its parts.
///
/// Aborting one that is gone (or already aborted, or completed: its file stays) answers
/// the same.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/multipart_abort", tag = tag::DEVICE,
    operation_id = "device_multipart_abort",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body = AbortRequest,
    responses((status = 200, body = Empty, description = "Aborted (or already gone)")))]
pub async fn abort(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<AbortRequest>,
) -> Result<Json<Empty>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    if let Some(upload) = own_upload(&state, call.owner().user_id, &grant, &call.body.upload_id).await? {
        match state.uploads.abort(&upload.upload_id).await {
            Ok(()) | Err(UploadError::NoSuchUpload | UploadError::Completed) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Json(Empty {}))
}
