//! Importing into the library without an upload: from a remote URL (a job, 202 + status)
//! or from an object already in a configured bucket.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::form::Fields;
use super::requests::{BlobImportRequest, RemoteImportRequest};
use crate::catalog::JobStatus;
use crate::domain::{ErrorCode, JobKind};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, SessionUpload};
use crate::http::openapi::tag;
use crate::import_buckets::ImportError;
use crate::ingest::Expectation;
use crate::library::RemoteFetch;
use crate::library::{Folder, NewFile};
use crate::remote::FetchError;

// The answers' fields are declared in alphabetical order: the order `json!` wrote them in.

/// Where a remote import is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemoteImportState {
    Queued,
    Running,
    Done,
    Failed,
}

/// A remote import, queued.
#[derive(Serialize, ToSchema)]
pub struct RemoteImportQueued {
    /// The job's id, as a string.
    #[schema(example = "9")]
    job_id: String,
    /// `queued`.
    status: RemoteImportState,
}

/// A remote import's state.
#[derive(Serialize, ToSchema)]
pub struct RemoteImport {
    /// Why the job failed (a password in a URL shows as `***`): present only when `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    error: Option<Option<String>>,
    /// The stored file, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    file_id: Option<String>,
    /// As the path gave it.
    #[schema(example = "9")]
    job_id: String,
    status: RemoteImportState,
}

/// An object imported from a bucket.
#[derive(Serialize, ToSchema)]
pub struct BlobImported {
    /// The new library file (a ULID).
    file_id: String,
}

fn folder_key(fields: &Fields) -> Result<String, ApiError> {
    fields.folder_key()?.ok_or_else(|| ApiError::new(ErrorCode::MissingFolderId, "folder_id is required"))
}

/// Imports a file from a URL into a folder, in the background.
///
/// Every redirect is checked again (at most 5); a refusal found while the job runs fails
/// the job. Fields as a URL-encoded form, a multipart form or a JSON object.
#[utoipa::path(post, path = "/upload/remote", tag = tag::SESSION,
    request_body(content(
        (Option<RemoteImportRequest> = "application/x-www-form-urlencoded",
            example = json!({"url": "https://example.org/photo.jpg", "folder_id": "web"})),
        (Option<RemoteImportRequest> = "multipart/form-data"),
        (Option<RemoteImportRequest> = "application/json",
            example = json!({"url": "https://example.org/photo.jpg", "folder_id": "web"})),
    )),
    responses(
        (status = 202, body = RemoteImportQueued),
        (status = 400, description = "No `url` (`missing_url`) or not a URL (`invalid_url`); another scheme, a host \
            that does not resolve, or a loopback, private, link-local or other special address unless \
            FERRY_REMOTE_ALLOW lists it (`forbidden_target`); no or a malformed `folder_id` \
            (`missing_folder_id`, `invalid_folder_id`); a malformed body"),
        (status = 413, description = "A JSON body over 1 MiB (`too_large`)"),
    ))]
pub async fn remote(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<(StatusCode, Json<RemoteImportQueued>), ApiError> {
    let raw = fields
        .text("url", ErrorCode::InvalidUrl)?
        .ok_or_else(|| ApiError::new(ErrorCode::MissingUrl, "url is required"))?;
    let url = reqwest::Url::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::InvalidUrl, format!("'{raw}' is not a URL: {e}")))?;
    let folder = state.catalog.folder(principal.user().user_id, &folder_key(&fields)?).await?;
    // refuse what can be refused now; redirects are checked again when the job runs
    state.remote.check(&url).await.map_err(|e| match e {
        FetchError::Refused(why) => ApiError::new(ErrorCode::ForbiddenTarget, why),
        other => ApiError::new(ErrorCode::ForbiddenTarget, other.to_string()),
    })?;
    let task = RemoteFetch {
        url: url.to_string(),
        user_id: principal.user().user_id,
        folder_id: folder.id,
        title: fields.text("title", ErrorCode::InvalidRequest)?.map(str::to_owned),
    };
    let payload = serde_json::to_value(&task).expect("payload serialises");
    let job_id = state.jobs.enqueue(JobKind::RemoteFetch, &payload, None, Some(principal.user().user_id)).await?;
    let queued = RemoteImportQueued { job_id: job_id.to_string(), status: RemoteImportState::Queued };
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// A remote import's state, and its file once stored.
#[utoipa::path(get, path = "/upload/remote/{job_id}", tag = tag::SESSION,
    params(("job_id" = String, Path, description = "`job_id` of the import's answer")),
    responses(
        (status = 200, body = RemoteImport),
        (status = 404, description = "No such remote import of this user (`no_such_job`)"),
    ))]
pub async fn remote_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Caller(principal, ..): Caller<SessionUpload>,
) -> Result<Json<RemoteImport>, ApiError> {
    let missing = || ApiError::new(ErrorCode::NoSuchJob, format!("no remote import {job_id}"));
    let id: i64 = job_id.parse().map_err(|_| missing())?;
    let job = state.catalog.job(id).await?.filter(|j| j.kind == JobKind::RemoteFetch).ok_or_else(missing)?;
    let owner = job.payload.get("user_id").and_then(Value::as_i64);
    if owner != Some(principal.user().user_id.0) {
        return Err(missing());
    }
    let status = match job.status {
        JobStatus::Pending => RemoteImportState::Queued,
        JobStatus::Running => RemoteImportState::Running,
        JobStatus::Done => RemoteImportState::Done,
        JobStatus::Failed => RemoteImportState::Failed,
    };
    // a failed job says why (null when nothing was recorded)
    let error = (job.status == JobStatus::Failed)
        .then(|| job.last_error.as_deref().map(|e| crate::redact::url_passwords(e).into_owned()));
    let file_id = state.library.of_import(id).await?.map(|file| file.file_id);
    Ok(Json(RemoteImport { error, file_id, job_id, status }))
}

/// Imports an object that is already in a bucket into a folder.
///
/// Ferry reads and hashes the object and stores a copy; the object stays where it was.
/// Fields as a URL-encoded form, a multipart form or a JSON object.
#[utoipa::path(post, path = "/upload/blob", tag = tag::SESSION,
    request_body(content(
        (Option<BlobImportRequest> = "application/json",
            example = json!({"bucket": "local", "key": "beach.jpg", "folder_id": "imported"})),
        (Option<BlobImportRequest> = "application/x-www-form-urlencoded"),
        (Option<BlobImportRequest> = "multipart/form-data"),
    )),
    responses(
        (status = 201, body = BlobImported),
        (status = 400, description = "No `bucket` (`missing_bucket`), no `key` (`missing_key`), a bucket that is not \
            configured (`unknown_bucket`), a key with `..`, `//` or a leading `/` (`invalid_key`), no or a malformed \
            `folder_id` (`missing_folder_id`, `invalid_folder_id`), or a malformed body"),
        (status = 404, description = "No such object in the bucket (`no_such_object`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE (`too_large`) or the account's quota \
            (`quota_exceeded`); a JSON body over 1 MiB (`too_large`)"),
        (status = 502, description = "The server cannot read the bucket (`bucket_unreadable`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn blob(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<(StatusCode, Json<BlobImported>), ApiError> {
    let bucket = fields
        .text("bucket", ErrorCode::UnknownBucket)?
        .ok_or_else(|| ApiError::new(ErrorCode::MissingBucket, "bucket is required"))?;
    let key = fields
        .text("key", ErrorCode::InvalidKey)?
        .ok_or_else(|| ApiError::new(ErrorCode::MissingKey, "key is required"))?;
    let user = principal.user().user_id;
    let folder = state.catalog.folder(user, &folder_key(&fields)?).await?;
    let object = state.import_buckets.open_object(bucket, key).await.map_err(|e| {
        let message = e.to_string();
        match e {
            ImportError::UnknownBucket(_) => ApiError::new(ErrorCode::UnknownBucket, message),
            ImportError::InvalidKey => ApiError::new(ErrorCode::InvalidKey, message),
            ImportError::NoSuchObject { .. } => ApiError::new(ErrorCode::NoSuchObject, message),
            ImportError::Unreadable { .. } => ApiError::new(ErrorCode::BucketUnreadable, message),
        }
    })?;
    let expect =
        Expectation { max_size: Some(state.config.max_upload_size), size_hint: object.size, ..Expectation::default() };
    let received = state.ingest.receive(object.body, &expect).await?;
    let new = NewFile {
        title: Some(object.title),
        content_type: object.content_type,
        ..NewFile::in_folder(user, Folder::Id(folder.id))
    };
    let stored = state.library.add(new, received).await?;
    Ok((StatusCode::CREATED, Json(BlobImported { file_id: stored.file_id })))
}
