//! Single-PUT uploads under a `file_id` (`uploads/:file_id`) and fetching completed files.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{CONTENT_TYPES, FAMILY, location, parse_file_id};
use crate::catalog::NewUpload;
use crate::clock::now_ms;
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::blob_response::serve_blob;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, FileDelete, MultipartUpload, OwnFile};
use crate::http::upload_host::{check_announced, content_length, verify_signed};
use crate::ingest::Expectation;

/// The upload host's target for `upload_url`.
pub const SINGLE_PUT: &str = "/signed/file";

pub async fn upload_url(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<MultipartUpload>,
) -> Result<Json<Value>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let user = principal.user().user_id;
    let params = [("user", user.to_string()), ("file", file_id.to_string())];
    let url = state.signer.sign(&state.upload_url, "PUT", SINGLE_PUT, &params, state.signed_url_expiry());
    let mut answer = json!({"id": file_id.as_str(), "upload_url": url});
    let existing = state.catalog.upload_by_file_key(user, file_id.as_str()).await?;
    if let Some(file) = existing.filter(|u| u.completed && u.family == FAMILY) {
        answer["type"] = json!(file.content_type);
        answer["size"] = json!(file.size);
    }
    Ok(Json(answer))
}

/// The PUT behind `upload_url`: stores the body under the signed `file_id`, with the
/// PUT's Content-Type when it is one the family knows.
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
    let answer = json!({
        "id": file_id.as_str(),
        "location": location(&state, &file_id),
        "etag": format!("\"{}\"", ingested.blob.sha256),
        "filesize": ingested.blob.size,
        "checksum": ingested.blob.sha256,
        "type": content_type,
        "size": ingested.blob.size,
    });
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

/// Deletes a completed file (API.md §5): gone from `location` at once, its bytes after the
/// retention (and collection) like every delete.
pub async fn delete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<FileDelete>,
) -> Result<Json<Value>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    match state.uploads.delete_file(principal.user().user_id, file_id.as_str()).await? {
        true => Ok(Json(json!({}))),
        false => Err(ApiError::not_found(format!("no file '{file_id}'"))),
    }
}

/// `location`: the completed file, for its owner.
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
