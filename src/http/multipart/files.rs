//! Single-PUT uploads under a `file_id` (`uploads/:file_id`) and fetching completed files.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{CONTENT_TYPES, FAMILY, location, parse_file_id};
use crate::catalog::NewUpload;
use crate::clock::now_ms;
use crate::domain::{ErrorCode, Sha256Hex};
use crate::http::AppState;
use crate::http::blob_response::{DownloadHeaders, RangedAnswers, serve_blob};
use crate::http::error::ApiError;
use crate::http::extract::{Caller, FileDelete, MultipartUpload, OwnFile};
use crate::http::openapi::{Binary, tag};
use crate::http::upload_host::{check_announced, content_length, verify_signed};
use crate::ingest::Expectation;

/// The upload host's target for `upload_url`.
pub const SINGLE_PUT: &str = "/signed/file";

/// A signed single PUT for a `file_id`.
// fields in the order serde_json's maps give them, as the answer had when built with json!
#[derive(Serialize, ToSchema)]
pub struct MultipartUploadUrl {
    /// The normalised `file_id`.
    #[schema(example = "note")]
    id: String,
    /// The existing file's size (only when the `file_id` names a completed file).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    size: Option<u64>,
    /// The existing file's content type (only when the `file_id` names a completed file).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    content_type: Option<String>,
    /// PUT the file's bytes here (no other credential); it replaces an earlier file of that name.
    upload_url: String,
}

/// A signed single PUT for a `file_id`.
///
/// The PUT stores its body under that `file_id`, replacing an earlier file of that name; its
/// `Content-Type` becomes the file's when it is one of the family's types.
#[utoipa::path(get, path = "/api/users/uploads/{file_id}", tag = tag::MULTIPART,
    params(("file_id" = String, Path, description = "The caller's name for the file: a UUID, or 1-64 of `A-Z a-z 0-9 _ -`")),
    responses(
        (status = 200, body = MultipartUploadUrl),
        (status = 400, description = "A bad `file_id` (`invalid_file_id`)"),
    ))]
pub async fn upload_url(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<MultipartUpload>,
) -> Result<Json<MultipartUploadUrl>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let user = principal.user().user_id;
    let params = [("user", user.to_string()), ("file", file_id.to_string())];
    let url = state.signer.sign(&state.upload_url, "PUT", SINGLE_PUT, &params, state.signed_url_expiry());
    let mut answer =
        MultipartUploadUrl { id: file_id.as_str().to_owned(), size: None, content_type: None, upload_url: url };
    let existing = state.catalog.upload_by_file_key(user, file_id.as_str()).await?;
    if let Some(file) = existing.filter(|u| u.completed && u.family == FAMILY) {
        answer.content_type = file.content_type;
        answer.size = file.size;
    }
    Ok(Json(answer))
}

/// A file stored by the single PUT.
#[derive(Serialize, ToSchema)]
pub struct MultipartStored {
    /// SHA-256 of the file.
    #[schema(value_type = String, example = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    checksum: Sha256Hex,
    /// The SHA-256, quoted.
    #[schema(example = "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"")]
    etag: String,
    filesize: u64,
    #[schema(example = "note")]
    id: String,
    /// Where the file is fetched, with a token of its owner.
    #[schema(example = "http://127.0.0.1:8080/api/users/files/note")]
    location: String,
    /// The same as `filesize`.
    size: u64,
    /// The PUT's `Content-Type` when it is one of the family's types, else `application/octet-stream`.
    #[serde(rename = "type")]
    #[schema(example = "image/jpeg")]
    content_type: String,
}

/// The PUT behind `upload_url`: stores the body under the signed `file_id`, with the
/// PUT's Content-Type when it is one the family knows.
#[utoipa::path(put, path = SINGLE_PUT, tag = tag::MULTIPART, security(("signed_url" = [])),
    request_body(content = Binary, content_type = "application/octet-stream",
        description = "The file's bytes, under any Content-Type (one of the family's types is kept as the file's)"),
    responses(
        (status = 200, body = MultipartStored),
        (status = 403, description = "The signature is invalid, altered or expired (`invalid_signature`, `expired_signature`)"),
        (status = 409, description = "A multipart upload of this `file_id` is in progress (`upload_in_progress`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE (`too_large`) or the account's quota (`quota_exceeded`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn single_put(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let signed = verify_signed(&state, &method, &uri, &[])?;
    let (Some(user), Some(file_id)) = (signed.get("user").and_then(|u| u.parse().ok()), signed.get("file")) else {
        return Err(ApiError::forbidden("the signed URL names no file"));
    };
    let file_id = parse_file_id(file_id)?;
    let in_progress = state.catalog.upload_by_file_key(user, file_id.as_str()).await?.is_some_and(|u| !u.completed);
    if in_progress {
        return Err(ApiError::new(
            ErrorCode::UploadInProgress,
            format!("a multipart upload of '{file_id}' is in progress"),
        ));
    }
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type =
        CONTENT_TYPES.iter().find(|t| t.eq_ignore_ascii_case(declared.trim())).unwrap_or(&"application/octet-stream");
    let expect = Expectation {
        max_size: Some(state.config.max_upload_size),
        size_hint: content_length(&headers),
        ..Expectation::default()
    };
    check_announced(&expect)?;
    let ingested = state.ingest.ingest(body.into_data_stream(), &expect, user).await?;
    let stored = MultipartStored {
        checksum: ingested.blob.sha256.clone(),
        etag: format!("\"{}\"", ingested.blob.sha256),
        filesize: ingested.blob.size,
        id: file_id.as_str().to_owned(),
        location: location(&state, &file_id),
        size: ingested.blob.size,
        content_type: content_type.to_string(),
    };
    // stored as the file's answer, hence a JSON value
    let answer = serde_json::to_value(stored).expect("an answer serialises");
    let file = NewUpload {
        upload_id: ulid::Ulid::new().to_string(),
        family: FAMILY,
        user_id: user,
        grant_id: None,
        file_key: Some(file_id.to_string()),
        file_size: None,
        file_hash: None,
        part_count: Some(1),
        content_type: Some(content_type.to_string()),
        expires_ms: now_ms(),
    };
    state.catalog.put_file(&file, &answer, &ingested.blob).await?;
    Ok(Json(answer))
}

/// `{}`: what deleting a file answers.
#[derive(Serialize, ToSchema)]
pub struct MultipartDeleted {}

/// Deletes a completed file (API.md §5): gone from `location` at once, its bytes after the
/// retention (and collection) like every delete.
///
/// Needs a token with the `delete` scope; the `file_id` is free again at once.
#[utoipa::path(delete, path = "/api/users/files/{file_id}", tag = tag::MULTIPART,
    params(("file_id" = String, Path, description = "The caller's name for the file")),
    responses(
        (status = 200, body = MultipartDeleted, example = json!({})),
        (status = 400, description = "A bad `file_id` (`invalid_file_id`)"),
        (status = 404, description = "The account has no such file (`not_found`)"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<FileDelete>,
) -> Result<Json<MultipartDeleted>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    match state.uploads.delete_file(principal.user().user_id, file_id.as_str()).await? {
        true => Ok(Json(MultipartDeleted {})),
        false => Err(ApiError::not_found(format!("no file '{file_id}'"))),
    }
}

/// `location`: the completed file, for its owner.
///
/// Streams the file with its content type, `ETag` and `Accept-Ranges: bytes`; supports `Range`
/// and `If-None-Match`. Any token of the owner.
#[utoipa::path(get, path = "/api/users/files/{file_id}", tag = tag::MULTIPART,
    params(
        ("file_id" = String, Path, description = "The caller's name for the file"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, description = "The file, as its content type (one of the family's types)",
            content((Binary = "application/octet-stream"), (Binary = "image/*"), (Binary = "video/*")),
            headers(("ETag" = String, description = "The SHA-256, quoted"), ("Accept-Ranges" = String, description = "`bytes`"))),
        RangedAnswers,
        (status = 400, description = "A bad `file_id` (`invalid_file_id`)"),
        (status = 404, description = "The account has no such file (`not_found`)"),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<OwnFile>,
) -> Result<Response, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let file = state
        .catalog
        .upload_by_file_key(principal.user().user_id, file_id.as_str())
        .await?
        .filter(|u| u.completed && u.family == FAMILY)
        .ok_or_else(|| ApiError::not_found(format!("no file '{file_id}'")))?;
    let (Some(sha256), Some(size)) = (file.sha256, file.size) else {
        return Err(ApiError::internal("a completed file has no content"));
    };
    let content_type = file.content_type.unwrap_or_else(|| "application/octet-stream".into());
    serve_blob(&state, &sha256, size, &content_type, &headers).await
}
