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
use crate::resumable::{PatchRequest, Status};

const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

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

pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal, ..): Caller<TusUpload>,
) -> Result<StatusCode, ApiError> {
    state.tus.terminate(principal.user().user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST with `X-HTTP-Method-Override: PATCH | DELETE | HEAD`.
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
