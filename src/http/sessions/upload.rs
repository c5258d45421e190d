//! Uploading a file into a session: multipart field `file` (streamed through the pipeline
//! under the session's limits), optional `folder_id` and `title` in any order. A `folder_id`
//! may also come in the query string (appended to the direct URL, or on the token route);
//! the form field wins over it.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::form::parse_folder_key;
use super::requests::SessionUploadForm;
use super::{DIRECT_PATH, DIRECT_UNSIGNED};
use crate::auth::Principal;
use crate::catalog::{LibraryFile, Session, SlotRefusal};
use crate::domain::{ErrorCode, Sha256Hex};
use crate::http::AppState;
use crate::http::blob_response::{DownloadHeaders, RangedAnswers};
use crate::http::blob_response::{serve_blob, serve_rendition};
use crate::http::body_idle::unreadable_form;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, FileDelete, OwnFile, QueryParams, SessionUpload};
use crate::http::openapi::{Binary, tag};
use crate::http::upload_host::verify_signed;
use crate::ingest::{Expectation, IngestError, Received};
use crate::library::{Folder, LibraryError, NewFile};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Another folder for the file, unless the form's `folder_id` names one.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    folder_id: Option<String>,
}

// The answers' fields are declared in alphabetical order: the order `json!` wrote them in.

/// A stored upload.
#[derive(Serialize, ToSchema)]
pub struct SessionFileStored {
    /// The new library file (a ULID); left out when the session has `hide_response`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    file_id: Option<String>,
    /// SHA-256 of the bytes.
    #[schema(value_type = String, example = "1b48e21282963dfba2ffff3a4c331471242fe42fd0a51161e56df72085c445c9")]
    sha256: Sha256Hex,
    size: u64,
    /// Always `success`.
    #[schema(example = "success")]
    status: &'static str,
    /// The form's `title`, else the file name.
    title: String,
}

/// A deleted library file.
#[derive(Serialize, ToSchema)]
pub struct SessionFileDeleted {
    /// Always `success`.
    #[schema(example = "success")]
    status: &'static str,
}

/// Uploads one file into a session, with the token (`api.upload` of the registration).
///
/// The session's limits hold when uploads run concurrently; a refused upload keeps none of
/// its bytes.
#[utoipa::path(post, path = "/file/{ulid}", tag = tag::SESSION,
    params(("ulid" = String, Path, description = "The session's `ulid`"), UploadQuery),
    request_body(content = SessionUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = SessionFileStored),
        (status = 400, description = "No `file` field (`missing_file`), two files or a malformed form \
            (`invalid_form`), or a malformed `folder_id` (`invalid_folder_id`)"),
        (status = 404, description = "No such session of this user (`no_such_session`)"),
        (status = 410, description = "The session is finished (`session_finished`) or expired (`session_expired`)"),
        (status = 413, description = "Over `max_filesize` or FERRY_MAX_UPLOAD_SIZE (`too_large`), over `max_size` \
            (`too_large` or `session_full`), `max_files` reached (`too_many_files`), or over the account's quota \
            (`quota_exceeded`)"),
        (status = 415, description = "The file's extension is not among the session's `file_extensions` \
            (`extension_not_allowed`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn with_token(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    Caller(principal, ..): Caller<SessionUpload>,
    request: Request,
) -> Result<Json<SessionFileStored>, ApiError> {
    let query_folder = query_folder_key(query.folder_id.as_deref())?;
    let session = own_session(&state, &ulid, principal.user().user_id).await?;
    upload(&state, session, request, query_folder).await
}

/// Uploads one file into a session through its signed `url_upload_direct`.
///
/// The signature is the credential: use the URL as registration handed it out; `folder_id`
/// is the one parameter that may follow its signature. Answers and refusals are those of
/// `POST …/file/{ulid}`.
#[utoipa::path(post, path = DIRECT_PATH, tag = tag::SESSION, security(("signed_url" = [])),
    params(("ulid" = String, Path, description = "The session's `ulid` (part of the signed URL)"), UploadQuery),
    request_body(content = SessionUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = SessionFileStored),
        (status = 400, description = "No `file` field (`missing_file`), two files or a malformed form \
            (`invalid_form`), or a malformed `folder_id` (`invalid_folder_id`)"),
        (status = 403, description = "The signature is invalid or the URL altered (`invalid_signature`), or it \
            expired (`expired_signature`)"),
        (status = 404, description = "The session is gone (`no_such_session`)"),
        (status = 410, description = "The session is finished (`session_finished`) or expired (`session_expired`)"),
        (status = 413, description = "Over `max_filesize` or FERRY_MAX_UPLOAD_SIZE (`too_large`), over `max_size` \
            (`too_large` or `session_full`), `max_files` reached (`too_many_files`), or over the account's quota \
            (`quota_exceeded`)"),
        (status = 415, description = "The file's extension is not among the session's `file_extensions` \
            (`extension_not_allowed`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn direct(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    request: Request,
) -> Result<Json<SessionFileStored>, ApiError> {
    let signed = verify_signed(&state, request.method(), request.uri(), DIRECT_UNSIGNED)?;
    let query_folder = query_folder_key(signed.unsigned("folder_id"))?;
    let user =
        signed.get("user").and_then(|u| u.parse().ok()).ok_or_else(|| ApiError::forbidden("the URL names no user"))?;
    let session = own_session(&state, &ulid, user).await?;
    upload(&state, session, request, query_folder).await
}

/// A `folder_id` from the query string, checked before a byte of the body is read; blank
/// counts as absent, as for the form field.
fn query_folder_key(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(str::trim).filter(|k| !k.is_empty()).map(parse_folder_key).transpose()
}

async fn own_session(state: &AppState, ulid: &str, user: crate::domain::UserId) -> Result<Session, ApiError> {
    state
        .catalog
        .session(ulid)
        .await?
        .filter(|s| s.user_id == user)
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchSession, format!("no upload session {ulid}")))
}

/// Stores the request's file in `session`, in `query_folder` unless the form names a folder.
async fn upload(
    state: &AppState,
    session: Session,
    request: Request,
    query_folder: Option<String>,
) -> Result<Json<SessionFileStored>, ApiError> {
    match state.catalog.reserve_file_slot(&session.ulid).await? {
        Ok(()) => {}
        Err(SlotRefusal::Missing) => {
            return Err(ApiError::new(ErrorCode::NoSuchSession, "no such upload session"));
        }
        Err(SlotRefusal::Finished) => {
            return Err(ApiError::new(ErrorCode::SessionFinished, "this upload session is finished"));
        }
        Err(SlotRefusal::Expired) => {
            return Err(ApiError::new(ErrorCode::SessionExpired, "this upload session has expired"));
        }
        Err(SlotRefusal::TooManyFiles) => {
            return Err(ApiError::new(ErrorCode::TooManyFiles, "this upload session has received its max_files"));
        }
    }
    // The rest runs as its own task: if the client goes away mid-request the task still
    // ends — storing the file, or giving the reservation back — instead of being dropped
    // with the slot taken.
    let state = state.clone();
    let task = tokio::spawn(crate::metrics::in_family(async move {
        let mut reserved_bytes = 0;
        let outcome = store_file(&state, &session, request, query_folder, &mut reserved_bytes).await;
        if outcome.is_err() {
            // a refused or failed upload gives its reservation back
            state.catalog.release_reservation(&session.ulid, reserved_bytes).await?;
        }
        outcome
    }));
    task.await.map_err(|e| ApiError::internal(format!("the upload task failed: {e}")))?
}

/// What the form said besides the file.
struct FormFile {
    received: Received,
    file_name: Option<String>,
    content_type: Option<String>,
}

async fn store_file(
    state: &AppState,
    session: &Session,
    request: Request,
    query_folder: Option<String>,
    reserved: &mut u64,
) -> Result<Json<SessionFileStored>, ApiError> {
    let mut form = Multipart::from_request(request, state).await.map_err(|e| {
        ApiError::new(ErrorCode::InvalidForm, format!("expected a multipart form with a file field: {e}"))
    })?;
    let limits = &session.limits;
    let room_left = limits.max_size.map(|max| max.saturating_sub(session.reserved_bytes));
    let max_size = [limits.max_filesize, room_left, Some(state.config.max_upload_size)].into_iter().flatten().min();
    let (mut file, mut folder_key, mut title) = (None::<FormFile>, None, None);
    let result = async {
        while let Some(field) = form.next_field().await.map_err(|e| unreadable_form(&e))? {
            match field.name().unwrap_or_default() {
                "file" if file.is_some() => {
                    return Err(ApiError::new(ErrorCode::InvalidForm, "send one file per request"));
                }
                "file" => {
                    let file_name = field.file_name().map(str::to_owned);
                    check_extension(limits.file_extensions.as_deref(), file_name.as_deref())?;
                    let content_type = field.content_type().map(str::to_owned);
                    let expect = Expectation { max_size, ..Expectation::default() };
                    let received = state.ingest.receive(Box::pin(field), &expect).await.map_err(|e| match e {
                        IngestError::TooLarge { limit } => ApiError::new(
                            ErrorCode::TooLarge,
                            format!("the file exceeds this session's limit of {limit} bytes"),
                        ),
                        other => other.into(),
                    })?;
                    file = Some(FormFile { received, file_name, content_type });
                }
                "folder_id" => {
                    folder_key =
                        Some(field.text().await.map_err(|e| ApiError::new(ErrorCode::InvalidForm, e.to_string()))?)
                }
                "title" => {
                    title = Some(field.text().await.map_err(|e| ApiError::new(ErrorCode::InvalidForm, e.to_string()))?)
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    result?; // a refused upload's staged file goes with it
    let Some(file) = file else { return Err(ApiError::new(ErrorCode::MissingFile, "the form has no file field")) };
    let size = file.received.blob.size;
    let checked = async {
        let form_folder = folder_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(parse_folder_key);
        let folder = match form_folder.transpose()?.or(query_folder) {
            Some(key) => state.catalog.folder(session.user_id, &key).await?,
            None => session.folder.clone(),
        };
        if !state.catalog.reserve_bytes(&session.ulid, size).await? {
            return Err(ApiError::new(ErrorCode::SessionFull, "this file would exceed the session's max_size"));
        }
        *reserved = size;
        Ok(folder)
    }
    .await;
    let folder = checked?;
    let new = NewFile {
        title,
        file_name: file.file_name,
        content_type: file.content_type,
        session: Some(session.ulid.clone()),
        ..NewFile::in_folder(session.user_id, Folder::Id(folder.id))
    };
    // `no_transcode`: this arrival asks for no rendition (another arrival of the content may)
    let received = if limits.no_transcode { file.received.waiving_rendition() } else { file.received };
    let stored = state.library.add(new, received).await.map_err(|e| match e {
        // finished while this file was streaming in: the finish did not list it
        LibraryError::SessionFinished(why) => ApiError::new(ErrorCode::SessionFinished, why),
        other => other.into(),
    })?;
    Ok(Json(SessionFileStored {
        file_id: if limits.hide_response { None } else { Some(stored.file_id) },
        sha256: stored.sha256,
        size: stored.size,
        status: "success",
        title: stored.title,
    }))
}

fn check_extension(allowed: Option<&[String]>, file_name: Option<&str>) -> Result<(), ApiError> {
    let Some(allowed) = allowed else { return Ok(()) };
    let extension = file_name.and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase());
    match extension {
        Some(ext) if allowed.contains(&ext) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::ExtensionNotAllowed,
            format!("this session accepts only {}", allowed.join(", ")),
        )),
    }
}

/// Deletes a library file (API.md §5).
///
/// It is gone from `urls.file` and listings at once; its bytes follow after the retention
/// (and collection), like every delete. Needs the `delete` scope.
#[utoipa::path(delete, path = "/api/files/{file_id}", tag = tag::SESSION,
    params(("file_id" = String, Path, description = "A library file of this account")),
    responses(
        (status = 200, body = SessionFileDeleted),
        (status = 404, description = "No such file in this account (`not_found`)"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<FileDelete>,
) -> Result<Json<SessionFileDeleted>, ApiError> {
    match state.library.delete(Some(principal.user().user_id), &file_id).await? {
        true => Ok(Json(SessionFileDeleted { status: "success" })),
        false => Err(ApiError::not_found(format!("no file {file_id}"))),
    }
}

/// Fetches a library file (`urls.file`).
///
/// Any library file of the account: session uploads, imports, tus uploads with a folder,
/// watch folders. Streamed with its content type; supports `Range` and `If-None-Match`.
#[utoipa::path(get, path = "/api/files/{file_id}", tag = tag::SESSION,
    params(("file_id" = String, Path, description = "A library file of this account"), DownloadHeaders),
    responses(
        (status = 200, description = "The file, with its own content type", body = Binary, content_type = "*/*",
            headers(("ETag" = String, description = "The SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such file in this account (`not_found`)"),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<OwnFile>,
) -> Result<Response, ApiError> {
    let file = own_file(&state, &principal, &file_id).await?;
    serve_blob(&state, &file.sha256, file.size, &file.content_type, &headers).await
}

/// Fetches a library file's playable rendition (an H.264/AAC MP4 of a video a browser cannot
/// play, a JPEG of a HEIF photo).
///
/// Supports `Range` and `If-None-Match`, as the file itself.
#[utoipa::path(get, path = "/api/files/{file_id}/rendition", tag = tag::SESSION,
    params(("file_id" = String, Path, description = "A library file of this account"), DownloadHeaders),
    responses(
        (status = 200, description = "The rendition (`video/mp4` or `image/jpeg`)", body = Binary,
            content_type = "*/*", headers(("ETag" = String, description = "The rendition's SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such file in this account (`not_found`), or the file has no rendition \
            (`no_rendition`: not needed, not made yet, or it could not be made)"),
    ))]
pub async fn rendition(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<OwnFile>,
) -> Result<Response, ApiError> {
    let file = own_file(&state, &principal, &file_id).await?;
    serve_rendition(&state, Some(&file.sha256), &headers).await
}

/// A library file of the caller's account; 404 `not_found` for any other.
async fn own_file(state: &AppState, principal: &Principal, file_id: &str) -> Result<LibraryFile, ApiError> {
    let found = state.library.get(principal.user().user_id, file_id).await?;
    found.ok_or_else(|| ApiError::not_found(format!("no file {file_id}")))
}
