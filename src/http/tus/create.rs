//! POST /files/: creation, creation-defer-length, creation-with-upload, and a final upload
//! of a concatenation.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::headers::{self, UPLOAD_DEFER_LENGTH, UPLOAD_LENGTH};
use super::upload::run_patch;
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, TusUpload};
use crate::resumable::{ConcatRequest, Creation, PatchRequest};

pub async fn create(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<TusUpload>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let length = headers::number(&request_headers, &UPLOAD_LENGTH, ErrorCode::InvalidLength)?;
    let deferred = match request_headers.get(&UPLOAD_DEFER_LENGTH).map(HeaderValue::as_bytes) {
        None => false,
        Some(b"1") => true,
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidLength, "Upload-Defer-Length must be 1")),
    };
    let concat = headers::concat(&request_headers)?;
    let is_final = matches!(concat, Some(ConcatRequest::Final(_)));
    match (length.is_some(), deferred, is_final) {
        (true, true, _) => {
            return Err(ApiError::new(ErrorCode::InvalidLength, "send Upload-Length or Upload-Defer-Length, not both"));
        }
        (true, _, true) | (_, true, true) => {
            return Err(ApiError::new(ErrorCode::InvalidLength, "a final upload's length is its partial uploads'"));
        }
        (false, false, false) => {
            return Err(ApiError::new(
                ErrorCode::InvalidLength,
                "Upload-Length (or Upload-Defer-Length: 1) is required",
            ));
        }
        _ => {}
    }
    let with_upload = headers::is_offset_stream(&request_headers);
    if with_upload && is_final {
        return Err(ApiError::new(ErrorCode::InvalidConcat, "a final upload takes no bytes of its own"));
    }
    // checked before anything is created
    let checksum = headers::checksum(&request_headers)?;
    let creation =
        Creation { user: principal.user().clone(), length, metadata: headers::metadata(&request_headers)?, concat };
    let user = creation.user.user_id;
    let mut status = state.tus.create(creation).await?;
    let location = format!("{}/files/{}", state.public_url, status.id);
    let located = |mut response: Response| {
        let value = HeaderValue::from_str(&location).expect("upload URLs are ASCII");
        response.headers_mut().insert(header::LOCATION, value);
        response
    };
    if with_upload {
        let request = PatchRequest { offset: 0, length: None, checksum };
        status = match run_patch(&state, user, &status.id, request, body).await {
            Ok(status) => status,
            // the upload exists: the client may resume it at its Location
            Err(err) => return Ok(located(err.into_response())),
        };
    }
    let mut response = located(StatusCode::CREATED.into_response());
    headers::render(&status, response.headers_mut(), false, &state.public_url);
    Ok(response)
}
