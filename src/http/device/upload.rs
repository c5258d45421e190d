//! `upload` (batch dedup check + signed PUTs) and `s3_object` (registration).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::call::DeviceCall;
use super::mount::{Empty, FileRef, held_blob, mounted, over_limit, over_quota, parse_hash};
use crate::blob_store::Presigned;
use crate::domain::{ErrorCode, Sha256Hex};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::tag;
use crate::ingest::direct::{RegisterError, presign_file, register_file};
use crate::ingest::{Expectation, ExpectedHash, IngestError};
use crate::signing::targets;

/// The blob store's bucket as API.md names it: the local store, or the configured S3 bucket.
pub const LOCAL_BUCKET_ID: i64 = 1;

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceUploadRequest)]
pub struct UploadRequest {
    /// The files to check, answered in the same order (10,000 entries fit the 16 MiB body).
    file_list: Vec<FileRef>,
}

// Typed rather than built as `serde_json::Value`: a 10,000-entry batch spent a fifth of its
// time building and dropping per-entry maps.
/// One answer entry: held (`skip_upload`), to send (`signed_opts`), or refused alone (`error`).
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceUploadEntry)]
pub struct UploadEntry<'a> {
    #[schema(value_type = String)]
    file_hash: Sha256Hex,
    file_size: u64,
    /// The account holds this content: nothing to send.
    skip_upload: bool,
    /// Where to PUT the bytes; absent when `skip_upload` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    signed_opts: Option<SignedOpts<'a>>,
    /// Always 1; absent when `skip_upload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = 1)]
    s3_bucket_id: Option<i64>,
    /// Why this entry cannot be uploaded (API.md §5 "Per-entry refusals"); then no `signed_opts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    message: Option<String>,
}

/// A signed PUT to Ferry's own upload host, or (`FERRY_S3_DIRECT`) one presigned straight to
/// the bucket.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceSignedOpts)]
pub struct SignedOpts<'a> {
    /// The authority of `url` (host and port).
    #[schema(value_type = String)]
    host: Cow<'a, str>,
    #[schema(example = "PUT")]
    method: &'static str,
    /// The path of `url`, its query included.
    path: String,
    /// PUT the file's bytes here.
    url: String,
    /// Headers to send with the PUT: none through Ferry's upload host.
    headers: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeviceUploadAnswer)]
pub struct UploadAnswer<'a> {
    /// Present (true) only when uploads are disabled for the device; the list is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    upload_disabled: Option<bool>,
    /// One entry per request entry, in the same order.
    upload_list: Vec<UploadEntry<'a>>,
}

/// The batch dedup check: which files to send, with a signed PUT for each.
///
/// Content the account holds answers `skip_upload: true`; other entries carry `signed_opts`
/// (bound to the hash and size), or an `error` for that entry alone (`too_large`,
/// `quota_exceeded`) while the rest of the batch is answered as usual.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/upload", tag = tag::DEVICE,
    operation_id = "device_upload",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body(content = UploadRequest, example = json!({"file_list": [
        {"file_hash": "cf82d2d961ff699eda330edfa1bc8ec368d42d901582a9534af98acfd1cde208", "file_size": 11}
    ]})),
    responses(
        (status = 200, body = UploadAnswer),
        (status = 400, description = "A malformed hash in any entry (`invalid_hash`) refuses the whole batch"),
        (status = 413, description = "The body is over 16 MiB (`too_large`)"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<UploadRequest>,
) -> Result<axum::response::Response, ApiError> {
    mounted(&state, &call.principal, &grant_id).await?;
    if call.calling_device().is_upload_disabled {
        let answer = UploadAnswer { upload_disabled: Some(true), upload_list: Vec::new() };
        return Ok(Json(answer).into_response());
    }
    let files = &call.body.file_list;
    let hashes = files.iter().map(|f| parse_hash(&f.file_hash)).collect::<Result<Vec<Sha256Hex>, _>>()?;
    let held: HashSet<(Sha256Hex, u64)> = state
        .catalog
        .held_by_device_hash(call.owner().user_id, &hashes)
        .await?
        .into_iter()
        .filter_map(|b| Some((b.device_hash()?.clone(), b.size)))
        .collect();
    // what the account may still hold (API.md §5): each entry is checked alone against it
    let room = state.catalog.quota_room(call.owner().user_id).await?;
    let expires = state.signed_url_expiry();
    // host = the authority only; path = everything after it (FERRY_UPLOAD_URL may carry a path)
    let after_scheme = state.upload_url.split_once("://").map_or(state.upload_url.as_str(), |(_, rest)| rest);
    let host = after_scheme.split('/').next().unwrap_or(after_scheme);
    let mut list = Vec::with_capacity(files.len());
    for (file, hash) in files.iter().zip(hashes) {
        let file_size = file.file_size;
        if held.contains(&(hash.clone(), file_size)) {
            state.metrics.upload_skipped(file_size); // bytes the device need not send
            list.push(UploadEntry {
                file_hash: hash,
                file_size,
                skip_upload: true,
                signed_opts: None,
                s3_bucket_id: None,
                error: None,
                message: None,
            });
            continue;
        }
        // refused alone: the rest of the batch is answered as usual
        let refusal = if file_size > state.config.max_upload_size {
            Some(over_limit(file_size, state.config.max_upload_size))
        } else if room.is_some_and(|room| i64::try_from(file_size).map_or(true, |size| size > room)) {
            Some(over_quota(room.unwrap_or_default()))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            list.push(UploadEntry {
                file_hash: hash,
                file_size,
                skip_upload: false,
                signed_opts: None,
                s3_bucket_id: Some(LOCAL_BUCKET_ID),
                error: Some(refusal.code.as_str()),
                message: Some(refusal.message),
            });
            continue;
        }
        let signed_opts = match state.store.direct() {
            Some(direct) => {
                let ttl = state.config.signed_url_ttl;
                let presigned = presign_file(direct, call.owner().user_id, &hash, file_size, ttl)
                    .await
                    .map_err(|e| ApiError::from(IngestError::Store(e)))?;
                direct_signed_opts(&presigned)
            }
            None => {
                let url = targets::device_blob_put(
                    &state.signer,
                    &state.upload_url,
                    call.owner().user_id,
                    file_size,
                    &hash,
                    expires,
                );
                let path = url.split_once("://").map_or("", |(_, rest)| &rest[host.len()..]).to_owned();
                SignedOpts { host: Cow::Borrowed(host), method: "PUT", path, url, headers: BTreeMap::new() }
            }
        };
        list.push(UploadEntry {
            file_hash: hash,
            file_size,
            skip_upload: false,
            signed_opts: Some(signed_opts),
            s3_bucket_id: Some(LOCAL_BUCKET_ID),
            error: None,
            message: None,
        });
    }
    Ok(Json(UploadAnswer { upload_disabled: None, upload_list: list }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceS3ObjectRequest)]
pub struct S3ObjectRequest {
    /// Always 1 (`s3_bucket_id` of the `upload` entry).
    #[schema(example = 1)]
    s3_bucket_id: i64,
    #[serde(flatten)]
    file: FileRef,
}

// Through Ferry's upload host the bytes were verified as they arrived (the signed PUT was
// bound to this size and hash), so the object exists for this account exactly when the
// account holds that content. In direct mode the object went straight to S3: Ferry takes a
// copy only it can write and verifies that before recording it.
/// Confirms that an upload landed: registers the uploaded object.
///
/// Answers `{}` once the account holds that content (in direct mode Ferry verifies the
/// object first); repeating it answers the same.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/s3_object", tag = tag::DEVICE,
    operation_id = "device_s3_object",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body(content = S3ObjectRequest, example = json!({
        "s3_bucket_id": 1,
        "file_hash": "cf82d2d961ff699eda330edfa1bc8ec368d42d901582a9534af98acfd1cde208",
        "file_size": 11
    })),
    responses(
        (status = 200, body = Empty, description = "The account holds the content"),
        (status = 400, description = "`unknown_bucket` (s3_bucket_id is not 1), `object_missing` (nothing uploaded \
            with that hash and size), `too_large` (a size over the upload limit), `invalid_size` (over 2^63 − 1), \
            `invalid_hash`; direct mode: `hash_mismatch` (the object differs from its hash or size)"),
        (status = 413, description = "Direct mode: no room in the account's quota for the object (`quota_exceeded`)"),
        (status = 507, description = "Direct mode: no space left to take the object in (`insufficient_storage`)"),
    ))]
pub async fn s3_object(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<S3ObjectRequest>,
) -> Result<Json<Empty>, ApiError> {
    mounted(&state, &call.principal, &grant_id).await?;
    if call.body.s3_bucket_id != LOCAL_BUCKET_ID {
        return Err(ApiError::new(ErrorCode::UnknownBucket, format!("no bucket {}", call.body.s3_bucket_id)));
    }
    let file = &call.body.file;
    let missing = || {
        ApiError::new(
            ErrorCode::ObjectMissing,
            "no object with that file_hash and file_size was uploaded by this account",
        )
    };
    // a size no upload can have is refused as such, not looked for
    if held_blob(&state, &call.principal, file).await?.is_some() {
        return Ok(Json(Empty {}));
    }
    let Some(direct) = state.store.direct() else { return Err(missing()) };
    let hash = parse_hash(&file.file_hash)?;
    let expect = Expectation {
        size: Some(file.file_size),
        hash: Some(ExpectedHash::Device(hash.clone())),
        max_size: None,
        size_hint: Some(file.file_size),
    };
    match register_file(&state.ingest, direct, call.owner().user_id, &hash, &expect).await {
        Ok(_) => Ok(Json(Empty {})),
        // a concurrent registration of the same object took it over first
        Err(RegisterError::ObjectMissing) if held_blob(&state, &call.principal, file).await?.is_some() => {
            Ok(Json(Empty {}))
        }
        Err(RegisterError::ObjectMissing) => Err(missing()),
        Err(RegisterError::Ingest(err)) => Err(err.into()),
    }
}

/// The device family's `signed_opts` for a PUT presigned straight to the S3 server.
fn direct_signed_opts(presigned: &Presigned) -> SignedOpts<'static> {
    let url = reqwest::Url::parse(&presigned.url).expect("presigned URLs parse");
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let headers = presigned.headers.iter().cloned().collect();
    SignedOpts { host: Cow::Owned(host), method: "PUT", path, url: presigned.url.clone(), headers }
}
