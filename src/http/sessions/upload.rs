//! Uploading a file into a session: multipart field `file` (streamed through the pipeline
//! under the session's limits), optional `folder_id` and `title` in any order. A `folder_id`
//! may also come in the query string (appended to the direct URL, or on the token route);
//! the form field wins over it.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::DIRECT_UNSIGNED;
use super::form::parse_folder_key;
use crate::catalog::{Session, SlotRefusal};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::blob_response::serve_blob;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, FileDelete, OwnFile, QueryParams, SessionUpload};
use crate::http::upload_host::verify_signed;
use crate::ingest::{Expectation, IngestError, Received};
use crate::library::{Folder, LibraryError, NewFile};

#[derive(Deserialize)]
pub struct UploadQuery {
    folder_id: Option<String>,
}

/// `POST /api/file/:ulid` with the token.
pub async fn with_token(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    Caller(principal, ..): Caller<SessionUpload>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let query_folder = query_folder_key(query.folder_id.as_deref())?;
    let session = own_session(&state, &ulid, principal.user().user_id).await?;
    upload(&state, session, request, query_folder).await
}

/// `POST <url_upload_direct>`: the signature is the credential.
pub async fn direct(
    State(state): State<AppState>,
    Path(ulid): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
    let mut form = Multipart::from_request(request, state).await.map_err(|e| {
        ApiError::new(ErrorCode::InvalidForm, format!("expected a multipart form with a file field: {e}"))
    })?;
    let limits = &session.limits;
    let room_left = limits.max_size.map(|max| max.saturating_sub(session.reserved_bytes));
    let max_size = [limits.max_filesize, room_left, Some(state.config.max_upload_size)].into_iter().flatten().min();
    let (mut file, mut folder_key, mut title) = (None::<FormFile>, None, None);
    let result = async {
        while let Some(field) =
            form.next_field().await.map_err(|e| ApiError::new(ErrorCode::InvalidForm, e.to_string()))?
        {
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
    let stored = state.library.add(new, file.received).await.map_err(|e| match e {
        // finished while this file was streaming in: the finish did not list it
        LibraryError::SessionFinished(why) => ApiError::new(ErrorCode::SessionFinished, why),
        other => other.into(),
    })?;
    let mut answer = json!({"status": "success", "title": stored.title, "size": stored.size, "sha256": stored.sha256});
    if !limits.hide_response {
        answer["file_id"] = json!(stored.file_id);
    }
    Ok(Json(answer))
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

/// `urls.file`: a library file for its owner (Range supported).
/// Deletes a library file (API.md §5): gone from `urls.file` and listings at once, its
/// bytes after the retention (and collection) like every delete.
pub async fn delete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<FileDelete>,
) -> Result<Json<Value>, ApiError> {
    match state.library.delete(Some(principal.user().user_id), &file_id).await? {
        true => Ok(Json(json!({"status": "success"}))),
        false => Err(ApiError::not_found(format!("no file {file_id}"))),
    }
}

pub async fn download(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<OwnFile>,
) -> Result<Response, ApiError> {
    let file = state
        .library
        .get(principal.user().user_id, &file_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no file {file_id}")))?;
    serve_blob(&state, &file.sha256, file.size, &file.content_type, &headers).await
}
