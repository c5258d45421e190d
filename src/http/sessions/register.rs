//! Registering a session and finishing it.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::DIRECT_PREFIX;
use super::form::Fields;
use super::requests::{SessionFinishRequest, SessionRegisterRequest};
use crate::auth::Principal;
use crate::catalog::{LibraryFile, SessionLimits};
use crate::clock::{now_ms, now_secs};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, SessionUpload};
use crate::http::media_info::RenditionFacts;
use crate::http::openapi::tag;

// The answers' fields are declared in alphabetical order: the order `json!` wrote them in.

/// A registered session.
#[derive(Serialize, ToSchema)]
pub struct SessionRegistered {
    api: SessionLinks,
    /// When the session and its `url_upload_direct` expire, in Unix seconds.
    #[schema(example = 1796054160)]
    expires: i64,
    /// Seconds from now to `expires` (`FERRY_UPLOAD_EXPIRY`).
    #[schema(example = 86400)]
    expires_in: i64,
    /// The session's id (a ULID).
    #[schema(example = "01JQ8Z5X3N4W6Y7A8B9C0D1E2F")]
    ulid: String,
    /// A signed POST on `FERRY_UPLOAD_URL` taking the upload form with no other credential.
    url_upload_direct: String,
}

/// The session's routes on this server.
#[derive(Serialize, ToSchema)]
pub struct SessionLinks {
    /// `<public>/api/upload/id/<ulid>`: DELETE it to finish the session.
    finish: String,
    /// `upload/id/<ulid>`.
    rel: String,
    /// `<public>/api/file/<ulid>`: POST the upload form there with the token.
    upload: String,
}

/// A finished session and the files it received.
#[derive(Serialize, ToSchema)]
pub struct SessionFinished {
    files: Vec<SessionFile>,
    /// Always `finished`.
    #[schema(example = "finished")]
    status: &'static str,
}

/// A file a session received.
#[derive(Serialize, ToSchema)]
pub struct SessionFile {
    /// The library file (a ULID).
    file_id: String,
    /// Ferry made a playable rendition of it (unless the session said `no_transcode`, for a
    /// video a browser cannot play or a HEIF photo, once its job has run).
    has_rendition: bool,
    /// The rendition, when `has_rendition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rendition: Option<RenditionFacts>,
    title: String,
    urls: SessionFileUrls,
}

#[derive(Serialize, ToSchema)]
pub struct SessionFileUrls {
    /// `<public>/api/files/<file_id>`: fetches the file with the same token.
    file: String,
    /// `<public>/api/files/<file_id>/rendition`, when the file has a rendition.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rendition: Option<String>,
}

/// Registers an upload session: a folder to collect files into, optionally under limits.
///
/// The fields come as a URL-encoded form, a multipart form or a JSON object; query-string
/// values fill in those the body leaves out. A body over 1 MiB is refused (a form: 400
/// `invalid_form`; JSON: 413 `too_large`).
#[utoipa::path(post, path = "/upload/id", tag = tag::SESSION,
    request_body(content(
        (Option<SessionRegisterRequest> = "application/x-www-form-urlencoded", example = json!(
            {"folder_id": "holiday", "autofinish": false, "max_files": 10, "file_extensions": "jpg,png"})),
        (Option<SessionRegisterRequest> = "multipart/form-data"),
        (Option<SessionRegisterRequest> = "application/json", example = json!(
            {"folder_id": "holiday", "autofinish": false, "max_files": 10, "file_extensions": "jpg,png"})),
    )),
    responses(
        (status = 200, body = SessionRegistered),
        (status = 400, description = "No `folder_id` (`missing_folder_id`), a malformed one (`invalid_folder_id`), \
            an option of the wrong kind or range (`invalid_option`), or a malformed body (`invalid_form`, \
            `invalid_json`, `invalid_request`)"),
        (status = 413, description = "A JSON body over 1 MiB (`too_large`)"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<Json<SessionRegistered>, ApiError> {
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
    Ok(Json(SessionRegistered {
        api: SessionLinks {
            finish: format!("{}/api/upload/id/{ulid}", state.public_url),
            rel: format!("upload/id/{ulid}"),
            upload: format!("{}/api/file/{ulid}", state.public_url),
        },
        expires,
        expires_in: ttl,
        ulid,
        url_upload_direct: direct,
    }))
}

/// `urls.file` of a library file: fetchable with the uploading credential.
pub fn file_url(state: &AppState, file: &LibraryFile) -> String {
    format!("{}/api/files/{}", state.public_url, file.file_id)
}

async fn finish_session(
    state: &AppState,
    principal: &Principal,
    ulid: &str,
) -> Result<Json<SessionFinished>, ApiError> {
    let missing = || ApiError::new(ErrorCode::NoSuchSession, format!("no upload session {ulid}"));
    let session = state.catalog.session(ulid).await?.ok_or_else(missing)?;
    if session.user_id != principal.user().user_id {
        return Err(missing());
    }
    let files = state.catalog.finish_session(ulid).await?;
    let infos = crate::http::media_info::media_infos(state.catalog.as_ref(), files.iter().map(|f| &f.sha256)).await?;
    let files = files
        .iter()
        .map(|f| {
            let rendition = infos.get(&f.sha256).and_then(|i| i.rendition.as_ref());
            SessionFile {
                file_id: f.file_id.clone(),
                has_rendition: rendition.is_some(),
                rendition: rendition.map(RenditionFacts::from),
                title: f.title.clone(),
                urls: SessionFileUrls {
                    file: file_url(state, f),
                    rendition: rendition.map(|_| format!("{}/rendition", file_url(state, f))),
                },
            }
        })
        .collect();
    Ok(Json(SessionFinished { files, status: "finished" }))
}

/// Finishes an upload session, listing the files it received.
///
/// Finishing again answers the same. With `autofinish` the first stored file finishes it.
#[utoipa::path(delete, path = "/upload/id/{ulid}", tag = tag::SESSION,
    params(("ulid" = String, Path, description = "The session's `ulid`")),
    responses(
        (status = 200, body = SessionFinished),
        (status = 404, description = "No such session of this user (`no_such_session`)"),
    ))]
pub async fn finish(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    Caller(principal, ..): Caller<SessionUpload>,
) -> Result<Json<SessionFinished>, ApiError> {
    finish_session(&state, &principal, &ulid).await
}

/// Finishes an upload session named in the query string or the body.
///
/// The same as `DELETE …/upload/id/{ulid}`, for clients that send the `ulid` as a field.
#[utoipa::path(delete, path = "/upload/id", tag = tag::SESSION,
    params(("ulid" = Option<String>, Query, description = "The session's `ulid`, unless the body names it")),
    request_body(content(
        (Option<SessionFinishRequest> = "application/x-www-form-urlencoded"),
        (Option<SessionFinishRequest> = "multipart/form-data"),
        (Option<SessionFinishRequest> = "application/json"),
    )),
    responses(
        (status = 200, body = SessionFinished),
        (status = 400, description = "No `ulid` in the query string or the body (`missing_ulid`), \
            or a malformed body (`invalid_form`, `invalid_json`, `invalid_request`)"),
        (status = 404, description = "No such session of this user (`no_such_session`)"),
    ))]
pub async fn finish_by_body(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<SessionUpload>,
    fields: Fields,
) -> Result<Json<SessionFinished>, ApiError> {
    let ulid = fields
        .text("ulid", ErrorCode::InvalidRequest)?
        .ok_or_else(|| ApiError::new(ErrorCode::MissingUlid, "ulid is required"))?
        .to_owned();
    finish_session(&state, &principal, &ulid).await
}
