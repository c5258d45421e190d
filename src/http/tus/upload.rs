//! HEAD, PATCH and DELETE of /files/:id (and POST with `X-HTTP-Method-Override`, for
//! clients behind proxies that pass only GET and POST).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use super::headers::{self, UPLOAD_LENGTH, UPLOAD_OFFSET};
use crate::domain::ErrorCode;
use crate::domain::UserId;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, TusUpload};
use crate::http::openapi::{Binary, tag};
use crate::resumable::{PatchRequest, Status};

const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// A 409 `offset_mismatch`: the plain error body and the upload's real offset.
// schema only: the body is built by `ApiError::from(TusError::OffsetMismatch)` (http/error.rs)
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TusOffsetMismatch {
    /// `offset_mismatch`.
    error: String,
    message: String,
    /// The upload's offset: continue from there.
    offset: u64,
}

/// Where an upload stands.
///
/// An upload whose last bytes arrived but whose file was not stored yet is stored now.
#[utoipa::path(head, path = "/files/{id}", tag = tag::TUS,
    params(
        ("id" = String, Path, description = "The upload id (32 lowercase hex characters)"),
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
    ),
    responses(
        (status = 200, description = "Where the upload stands (no body)", headers(
            ("Upload-Offset" = u64, description = "The bytes received"),
            ("Upload-Length" = u64, description = "The upload's size (absent while deferred)"),
            ("Upload-Defer-Length" = u64, description = "`1` while the length is deferred"),
            ("Upload-Metadata" = String, description = "The metadata it was created with"),
            ("Upload-Concat" = String, description = "`partial`, or `final;/files/<id> …`"),
            ("Upload-Expires" = String, description = "HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "Once the file is stored: its URL, fetched with the same token"),
            ("Cache-Control" = String, description = "`no-store`"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 404, description = "Unknown, terminated or another user's upload (`no_such_upload`)"),
        (status = 410, description = "Expired (`upload_expired`); 404 after one more expiry period"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
        (status = 423, description = "Its file is being stored by another request (`upload_locked`)"),
    ))]
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal, ..): Caller<TusUpload>,
) -> Result<Response, ApiError> {
    let status = state.tus.head(principal.user().user_id, &id).await?;
    let mut response = StatusCode::OK.into_response();
    headers::render(&status, response.headers_mut(), true, &state.public_url);
    Ok(response)
}

/// Appends bytes at `Upload-Offset` (the upload's offset).
///
/// The PATCH that sends the last byte answers once the file is stored (deduplicated, held by the
/// account, visible), with `Ferry-Location`. A PATCH whose connection breaks keeps every byte
/// that arrived: HEAD tells where to continue.
#[utoipa::path(patch, path = "/files/{id}", tag = tag::TUS,
    params(
        ("id" = String, Path, description = "The upload id (32 lowercase hex characters)"),
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
        ("Upload-Offset" = u64, Header, example = 0, description = "The upload's offset, where these bytes go"),
        ("Upload-Length" = Option<u64>, Header, nullable = false, description = "The upload's size, for a deferred length"),
        ("Upload-Checksum" = Option<String>, Header, nullable = false,
            description = "`<algorithm> <base64 digest>` of this PATCH's bytes (`sha1`, `sha256`)"),
    ),
    request_body(content = Binary, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "The bytes are received", headers(
            ("Upload-Offset" = u64, description = "The new offset"),
            ("Upload-Expires" = String, description = "HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "Once the file is stored (the last PATCH): its URL, fetched with the same token"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 400, description = "A bad `Upload-Offset` (`invalid_offset`), `Upload-Length` (`invalid_length`) or \
            `Upload-Checksum` (`invalid_checksum`); the whole file differs from the metadata's `sha256` (`hash_mismatch`: \
            nothing is committed)"),
        (status = 403, description = "The token's level or scopes do not allow this (`forbidden`), or the upload is the \
            final upload of a concatenation, which takes no PATCH (`final_upload`)"),
        (status = 404, description = "Unknown, terminated or another user's upload (`no_such_upload`)"),
        (status = 409, description = "`Upload-Offset` is not the upload's (`offset_mismatch`); `offset` says where it is", body = TusOffsetMismatch),
        (status = 410, description = "Expired (`upload_expired`); 404 after one more expiry period"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
        (status = 413, description = "Over `Tus-Max-Size` or past `Upload-Length` (`too_large`)"),
        (status = 415, description = "The Content-Type is not `application/offset+octet-stream` (`unsupported_media_type`)"),
        (status = 423, description = "Another PATCH is writing to it (`upload_locked`)"),
        (status = 460, description = "The bytes do not match `Upload-Checksum` (`checksum_mismatch`); they are discarded"),
        (status = 507, description = "No space left (`insufficient_storage`)"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal, ..): Caller<TusUpload>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !headers::is_offset_stream(&request_headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("a PATCH body must have Content-Type {}", headers::OFFSET_OCTET_STREAM),
        ));
    }
    let offset = headers::number(&request_headers, &UPLOAD_OFFSET, ErrorCode::InvalidOffset)?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidOffset, "Upload-Offset is required"))?;
    let request = PatchRequest {
        offset,
        length: headers::number(&request_headers, &UPLOAD_LENGTH, ErrorCode::InvalidLength)?,
        checksum: headers::checksum(&request_headers)?,
    };
    let status = run_patch(&state, principal.user().user_id, &id, request, body).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    headers::render(&status, response.headers_mut(), false, &state.public_url);
    Ok(response)
}

/// Runs a PATCH in a task of its own: when the client goes away, hyper drops this request's
/// future, but the PATCH must still keep the bytes that arrived and give its lease back.
pub async fn run_patch(
    state: &AppState,
    user: UserId,
    id: &str,
    request: PatchRequest,
    body: Body,
) -> Result<Status, ApiError> {
    use tracing::Instrument;
    let (service, id) = (state.tus.clone(), id.to_owned());
    let patch = async move { service.patch(user, &id, request, body.into_data_stream()).await };
    // the task keeps the request's span, so its log lines carry the request id
    let task = tokio::spawn(crate::metrics::in_family(patch).instrument(tracing::Span::current()));
    match task.await {
        Ok(outcome) => Ok(outcome?),
        Err(e) => Err(ApiError::internal(format!("the PATCH failed: {e}"))),
    }
}

/// Terminates an upload (termination): it and its bytes are gone.
///
/// A completed upload's file stays where it was stored.
#[utoipa::path(delete, path = "/files/{id}", tag = tag::TUS,
    params(
        ("id" = String, Path, description = "The upload id (32 lowercase hex characters)"),
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
    ),
    responses(
        (status = 204, description = "Terminated", headers(("Tus-Resumable" = String, description = "`1.0.0`"))),
        (status = 404, description = "Unknown, terminated or another user's upload (`no_such_upload`)"),
        (status = 423, description = "A request holds it (a PATCH writing, a concatenation using it: `upload_locked`): \
            nothing changed; try again when it ends"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
    ))]
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal, ..): Caller<TusUpload>,
) -> Result<StatusCode, ApiError> {
    state.tus.terminate(principal.user().user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// HEAD, PATCH or DELETE sent as a POST with `X-HTTP-Method-Override` (for clients behind
/// proxies that pass only GET and POST).
///
/// Takes and answers what that method does.
#[utoipa::path(post, path = "/files/{id}", tag = tag::TUS,
    params(
        ("id" = String, Path, description = "The upload id (32 lowercase hex characters)"),
        ("X-HTTP-Method-Override" = String, Header, example = "PATCH", description = "`PATCH`, `DELETE` or `HEAD` (any case)"),
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
        ("Upload-Offset" = Option<u64>, Header, nullable = false, description = "PATCH: the upload's offset, where these bytes go"),
        ("Upload-Length" = Option<u64>, Header, nullable = false, description = "PATCH: the upload's size, for a deferred length"),
        ("Upload-Checksum" = Option<String>, Header, nullable = false,
            description = "PATCH: `<algorithm> <base64 digest>` of the bytes (`sha1`, `sha256`)"),
    ),
    request_body(content = ref("#/components/schemas/Binary"), content_type = "application/offset+octet-stream",
        description = "PATCH: the bytes"),
    responses(
        (status = 200, description = "HEAD: where the upload stands (no body)", headers(
            ("Upload-Offset" = u64, description = "The bytes received"),
            ("Upload-Length" = u64, description = "The upload's size (absent while deferred)"),
            ("Upload-Defer-Length" = u64, description = "`1` while the length is deferred"),
            ("Upload-Metadata" = String, description = "The metadata it was created with"),
            ("Upload-Concat" = String, description = "`partial`, or `final;/files/<id> …`"),
            ("Upload-Expires" = String, description = "HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "Once the file is stored: its URL, fetched with the same token"),
            ("Cache-Control" = String, description = "`no-store`"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 204, description = "PATCH: the bytes are received; DELETE: terminated", headers(
            ("Upload-Offset" = u64, description = "PATCH: the new offset"),
            ("Upload-Expires" = String, description = "PATCH: HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "PATCH: once the file is stored, its URL"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 400, description = "Malformed tus headers (`invalid_offset`, `invalid_length`, `invalid_checksum`), or \
            the whole file differs from the metadata's `sha256` (`hash_mismatch`)"),
        (status = 403, description = "The token's level or scopes do not allow this (`forbidden`); PATCH: the upload is \
            the final upload of a concatenation, which takes no PATCH (`final_upload`)"),
        (status = 404, description = "Unknown, terminated or another user's upload (`no_such_upload`)"),
        (status = 405, description = "No `X-HTTP-Method-Override`, or another method (`method_not_allowed`)"),
        (status = 409, description = "PATCH: `Upload-Offset` is not the upload's (`offset_mismatch`)", body = TusOffsetMismatch),
        (status = 410, description = "Expired (`upload_expired`); 404 after one more expiry period"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
        (status = 413, description = "PATCH: over `Tus-Max-Size` or past `Upload-Length` (`too_large`)"),
        (status = 415, description = "PATCH: the Content-Type is not `application/offset+octet-stream` (`unsupported_media_type`)"),
        (status = 423, description = "Another request is writing to it (`upload_locked`)"),
        (status = 460, description = "PATCH: the bytes do not match `Upload-Checksum` (`checksum_mismatch`); they are discarded"),
        (status = 507, description = "No space left (`insufficient_storage`)"),
    ))]
pub async fn overridden(
    state: State<AppState>,
    id: Path<String>,
    caller: Caller<TusUpload>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let method = request_headers.get(METHOD_OVERRIDE).and_then(|v| v.to_str().ok()).map(str::to_ascii_uppercase);
    match method.as_deref() {
        Some("PATCH") => patch(state, id, caller, request_headers, body).await,
        Some("DELETE") => terminate(state, id, caller).await.map(IntoResponse::into_response),
        Some("HEAD") => head(state, id, caller).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
