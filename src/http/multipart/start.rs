//! Starting (or resuming) a multipart upload, and aborting one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CONTENT_TYPES, parse_file_id};
use crate::catalog::{Upload, UploadFamily};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, MultipartUpload, QueryParams};
use crate::http::openapi::tag;
use crate::ingest::multipart::NewMultipart;

#[derive(Deserialize)]
pub struct StartQuery {
    part_count: Option<String>,
    content_type: Option<String>,
}

const MAX_PARTS: u32 = 20;

fn parse_part_count(raw: Option<&str>) -> Result<u32, ApiError> {
    raw.and_then(|r| r.parse::<u32>().ok()).filter(|n| (1..=MAX_PARTS).contains(n)).ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidPartCount, format!("part_count must be an integer from 1 to {MAX_PARTS}"))
    })
}

fn parse_content_type(raw: Option<&str>) -> Result<String, ApiError> {
    let Some(raw) = raw else { return Ok("application/octet-stream".into()) };
    CONTENT_TYPES.iter().find(|t| t.eq_ignore_ascii_case(raw.trim())).map(|t| t.to_string()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidContentType,
            format!("content_type '{raw}' is not one of {}", CONTENT_TYPES.join(", ")),
        )
    })
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Conflict, message)
}

/// An upload started (or resumed): where to PUT each part.
#[derive(Serialize, ToSchema)]
pub struct MultipartStarted {
    /// The normalised `file_id`.
    #[schema(example = "clip-1")]
    id: String,
    /// `users/<user_id>/<file_id>`.
    #[schema(example = "users/1/clip-1")]
    key: String,
    /// One signed URL per part, in order: PUT part N's bytes to the Nth; each answers 200
    /// with an `ETag` header to quote back at completion.
    presigned_urls: Vec<String>,
    /// Names this upload at completion and abort.
    upload_id: String,
}

/// Starts a multipart upload of `part_count` parts (or resumes an unfinished one).
///
/// Starting again while the upload is unfinished answers the same `upload_id` with fresh URLs
/// and renews its expiry (FERRY_UPLOAD_EXPIRY).
#[utoipa::path(get, path = "/api/users/multipart_upload_start/{file_id}", tag = tag::MULTIPART,
    params(
        ("file_id" = String, Path, description = "The caller's name for the file: a UUID, or 1-64 of `A-Z a-z 0-9 _ -`"),
        ("part_count" = u32, Query, minimum = 1, maximum = 20, description = "How many parts: 1 to 20"),
        ("content_type" = Option<String>, Query, example = "video/mp4", description = "The file's type, matched in any case: \
            image/jpeg, image/png, video/mp4, image/heif, image/heic, video/quicktime, image/webp, video/3gpp, video/webm, \
            image/gif, video/x-m4v, image/bmp or application/octet-stream (the default)"),
    ),
    responses(
        (status = 200, body = MultipartStarted),
        (status = 400, description = "A bad `file_id` (`invalid_file_id`), `part_count` (`invalid_part_count`) or \
            `content_type` (`invalid_content_type`)"),
        (status = 409, description = "The file is already complete, or its unfinished upload has another `part_count` (`conflict`)"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    QueryParams(query): QueryParams<StartQuery>,
    Caller(principal, ..): Caller<MultipartUpload>,
) -> Result<Json<MultipartStarted>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let part_count = parse_part_count(query.part_count.as_deref())?;
    let content_type = parse_content_type(query.content_type.as_deref())?;
    let user = principal.user();
    let upload = match state.catalog.upload_by_file_key(user.user_id, file_id.as_str()).await? {
        Some(existing) if existing.completed => return Err(conflict(format!("file '{file_id}' is already complete"))),
        Some(existing) if existing.part_count != Some(part_count) => {
            return Err(conflict(format!(
                "an upload of '{file_id}' with part_count {} is in progress",
                existing.part_count.unwrap_or(0)
            )));
        }
        Some(existing) => {
            state.uploads.renew(&existing).await?;
            existing
        }
        None => {
            let new = NewMultipart {
                family: UploadFamily::Multipart,
                user: user.user_id,
                grant: None,
                file_key: Some(file_id.to_string()),
                file_size: None,
                file_hash: None,
                part_count,
                content_type: Some(content_type),
            };
            state.uploads.start(new).await?
        }
    };
    let urls = state.uploads.part_urls(&upload, &state.upload_url, None).await?;
    Ok(Json(MultipartStarted {
        id: file_id.as_str().to_owned(),
        key: format!("users/{}/{file_id}", user.user_id),
        presigned_urls: urls,
        upload_id: upload.upload_id,
    }))
}

/// The caller's upload of `file_id` (another user's does not exist for them).
pub async fn own_upload(
    state: &AppState,
    user: crate::domain::UserId,
    file_id: &crate::domain::FileId,
) -> Result<Upload, ApiError> {
    state
        .catalog
        .upload_by_file_key(user, file_id.as_str())
        .await?
        .filter(|u| u.family == UploadFamily::Multipart)
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchUpload, format!("no upload of file '{file_id}'")))
}

#[derive(Deserialize)]
pub struct AbortQuery {
    upload_id: Option<String>,
}

/// Aborts an unfinished multipart upload: its parts are removed.
#[utoipa::path(delete, path = "/api/users/multipart_upload/{file_id}", tag = tag::MULTIPART,
    params(
        ("file_id" = String, Path, description = "The caller's name for the file"),
        ("upload_id" = String, Query, description = "The upload `multipart_upload_start` answered"),
    ),
    responses(
        (status = 204, description = "Aborted"),
        (status = 400, description = "No `upload_id` (`invalid_query`), or a bad `file_id` (`invalid_file_id`)"),
        (status = 404, description = "No such upload, or one aborted before (`no_such_upload`)"),
    ))]
pub async fn abort(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    QueryParams(query): QueryParams<AbortQuery>,
    Caller(principal, ..): Caller<MultipartUpload>,
) -> Result<StatusCode, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let upload_id = query.upload_id.ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "upload_id is required"))?;
    let upload = own_upload(&state, principal.user().user_id, &file_id).await?;
    if upload.upload_id != upload_id {
        return Err(ApiError::new(ErrorCode::NoSuchUpload, format!("no upload {upload_id} of file '{file_id}'")));
    }
    state.uploads.abort(&upload.upload_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
