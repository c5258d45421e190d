//! Registering a session and finishing it.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::DIRECT_PREFIX;
use super::form::Fields;
use crate::auth::Principal;
use crate::catalog::{LibraryFile, SessionLimits};
use crate::clock::{now_ms, now_secs};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, SessionUpload};

pub async fn register(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let folder_key =
        fields.folder_key()?.ok_or_else(|| ApiError::new(ErrorCode::MissingFolderId, "folder_id is required"))?;
    let extensions = fields.text("file_extensions", ErrorCode::InvalidOption)?.map(|list| {
        list.split(',')
            .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect()
    });
    let limits = SessionLimits {
        max_filesize: fields.limit("max_filesize")?,
        max_files: fields.limit("max_files")?,
        max_size: fields.limit("max_size")?,
        file_extensions: extensions,
        no_transcode: fields.flag("no_transcode", false)?,
        hide_response: fields.flag("hide_response", false)?,
        autofinish: fields.flag("autofinish", true)?,
    };
    let user = principal.user();
    let folder = state.catalog.folder(user.user_id, &folder_key).await?;
    let ulid = ulid::Ulid::new().to_string();
    let ttl = state.config.upload_expiry.as_secs() as i64;
    let expires = now_secs() + ttl;
    state.catalog.create_session(&ulid, user.user_id, &folder, &limits, now_ms() + ttl * 1000).await?;
    let direct = state.signer.sign(
        &state.upload_url,
        "POST",
        &format!("{DIRECT_PREFIX}{ulid}"),
        &[("user", user.user_id.to_string())],
        expires,
    );
    Ok(Json(json!({
        "ulid": ulid,
        "expires": expires,
        "expires_in": ttl,
        "url_upload_direct": direct,
        "api": {
            "rel": format!("upload/id/{ulid}"),
            "upload": format!("{}/api/file/{ulid}", state.public_url),
            "finish": format!("{}/api/upload/id/{ulid}", state.public_url),
        },
    })))
}

/// `urls.file` of a library file: fetchable with the uploading credential.
pub fn file_url(state: &AppState, file: &LibraryFile) -> String {
    format!("{}/api/files/{}", state.public_url, file.file_id)
}

async fn finish_session(state: &AppState, principal: &Principal, ulid: &str) -> Result<Json<Value>, ApiError> {
    let missing = || ApiError::new(ErrorCode::NoSuchSession, format!("no upload session {ulid}"));
    let session = state.catalog.session(ulid).await?.ok_or_else(missing)?;
    if session.user_id != principal.user().user_id {
        return Err(missing());
    }
    let files = state.catalog.finish_session(ulid).await?;
    let list: Vec<Value> = files
        .iter()
        .map(|f| json!({"file_id": f.file_id, "title": f.title, "urls": {"file": file_url(state, f)}}))
        .collect();
    Ok(Json(json!({"status": "finished", "files": list})))
}

pub async fn finish(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    Caller(principal, ..): Caller<SessionUpload>,
) -> Result<Json<Value>, ApiError> {
    finish_session(&state, &principal, &ulid).await
}

/// `DELETE /api/upload/id` with `ulid` in the query string or body.
pub async fn finish_by_body(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let ulid = fields
        .text("ulid", ErrorCode::InvalidRequest)?
        .ok_or_else(|| ApiError::new(ErrorCode::MissingUlid, "ulid is required"))?
        .to_owned();
    finish_session(&state, &principal, &ulid).await
}
