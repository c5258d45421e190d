//! Importing into the library without an upload: from a remote URL (a job, 202 + status)
//! or from an object already in a configured bucket.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::form::Fields;
use crate::catalog::JobStatus;
use crate::domain::{ErrorCode, JobKind};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, SessionUpload};
use crate::import_buckets::ImportError;
use crate::ingest::Expectation;
use crate::library::RemoteFetch;
use crate::library::{Folder, NewFile};
use crate::remote::FetchError;

fn folder_key(fields: &Fields) -> Result<String, ApiError> {
    fields.folder_key()?.ok_or_else(|| ApiError::new(ErrorCode::MissingFolderId, "folder_id is required"))
}

pub async fn remote(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job_id.to_string(), "status": "queued"}))))
}

pub async fn remote_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Caller(principal, ..): Caller<SessionUpload>,
) -> Result<Json<Value>, ApiError> {
    let missing = || ApiError::new(ErrorCode::NoSuchJob, format!("no remote import {job_id}"));
    let id: i64 = job_id.parse().map_err(|_| missing())?;
    let job = state.catalog.job(id).await?.filter(|j| j.kind == JobKind::RemoteFetch).ok_or_else(missing)?;
    let owner = job.payload.get("user_id").and_then(Value::as_i64);
    if owner != Some(principal.user().user_id.0) {
        return Err(missing());
    }
    let status = match job.status {
        JobStatus::Pending => "queued",
        JobStatus::Running => "running",
        JobStatus::Done => "done",
        JobStatus::Failed => "failed",
    };
    let mut answer = json!({"job_id": job_id, "status": status});
    if job.status == JobStatus::Failed {
        answer["error"] = json!(job.last_error.as_deref().map(crate::redact::url_passwords));
    }
    if let Some(file) = state.library.of_import(id).await? {
        answer["file_id"] = json!(file.file_id);
    }
    Ok(Json(answer))
}

pub async fn blob(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!({"file_id": stored.file_id}))))
}
