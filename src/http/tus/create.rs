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
use crate::http::openapi::tag;
use crate::resumable::{ConcatRequest, Creation, PatchRequest};

/// Creates an upload (creation, creation-defer-length, concatenation); with a body, that body
/// is its first PATCH (creation-with-upload).
///
/// `Upload-Length` or `Upload-Defer-Length: 1`, not both (a final upload of a concatenation
/// takes neither: its length is its partial uploads'). The creation of a final upload, or of
/// an empty one, answers once the file is stored, with `Ferry-Location`.
#[utoipa::path(post, path = "/files/", tag = tag::TUS,
    params(
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
        ("Upload-Length" = Option<u64>, Header, nullable = false, example = 3000000, description = "The upload's size in bytes"),
        ("Upload-Defer-Length" = Option<u64>, Header, nullable = false, minimum = 1, maximum = 1,
            description = "`1`: the length comes with a later PATCH"),
        ("Upload-Metadata" = Option<String>, Header, nullable = false, example = "filename bW92aWUubXA0,folder_id cGhvbmU=",
            description = "`key base64(value)` pairs, comma-separated (at most 16 KiB). Ferry reads `filename`, `filetype`, \
                `folder_id` (a library file in that folder; default `tus`), `device` (a gallery event of that device instead) \
                and `sha256` (lowercase hex of the whole file, checked)"),
        ("Upload-Concat" = Option<String>, Header, nullable = false,
            description = "`partial`, or `final;<upload URL> <upload URL>…` naming completed partial uploads in order"),
        ("Upload-Checksum" = Option<String>, Header, nullable = false,
            description = "With a body: `<algorithm> <base64 digest>` of that body (`sha1`, `sha256`)"),
    ),
    request_body(content = ref("#/components/schemas/Binary"), content_type = "application/offset+octet-stream",
        description = "Optional (creation-with-upload): the upload's first bytes"),
    responses(
        (status = 201, description = "Created (with a body: its bytes received)", headers(
            ("Location" = String, description = "The upload's URL, `<public>/files/<id>`"),
            ("Upload-Offset" = u64, description = "The bytes received"),
            ("Upload-Expires" = String, description = "HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "Once the file is stored: its URL, fetched with the same token"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 400, description = "A bad or missing length (`invalid_length`), metadata (`invalid_metadata`), \
            `Upload-Checksum` (`invalid_checksum`) or `Upload-Concat` (`invalid_concat`); both `folder_id` and `device` \
            (`conflicting_target`); an unknown `device` (`unknown_device`); bytes other than the metadata's `sha256` \
            (`hash_mismatch`)"),
        (status = 410, description = "A partial upload a final one names has expired (`upload_expired`)"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
        (status = 413, description = "Over `Tus-Max-Size` (`too_large`), or an `Upload-Length` over the quota (`quota_exceeded`)"),
        (status = 423, description = "A partial upload a final one names is being written (`upload_locked`)"),
        (status = 460, description = "The body does not match `Upload-Checksum` (`checksum_mismatch`); the upload exists, \
            at the answer's `Location`"),
        (status = 507, description = "No space left (`insufficient_storage`)"),
    ))]
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

/// Creates an upload, as `POST /files/`.
#[utoipa::path(post, path = "/files", tag = tag::TUS,
    params(
        ("Tus-Resumable" = String, Header, example = "1.0.0", description = "`1.0.0`; anything else is refused 412"),
        ("Upload-Length" = Option<u64>, Header, nullable = false, example = 3000000, description = "The upload's size in bytes"),
        ("Upload-Defer-Length" = Option<u64>, Header, nullable = false, minimum = 1, maximum = 1,
            description = "`1`: the length comes with a later PATCH"),
        ("Upload-Metadata" = Option<String>, Header, nullable = false, example = "filename bW92aWUubXA0,folder_id cGhvbmU=",
            description = "`key base64(value)` pairs, comma-separated: `filename`, `filetype`, `folder_id`, `device`, `sha256`"),
        ("Upload-Concat" = Option<String>, Header, nullable = false,
            description = "`partial`, or `final;<upload URL> <upload URL>…`"),
        ("Upload-Checksum" = Option<String>, Header, nullable = false,
            description = "With a body: `<algorithm> <base64 digest>` of that body (`sha1`, `sha256`)"),
    ),
    request_body(content = ref("#/components/schemas/Binary"), content_type = "application/offset+octet-stream",
        description = "Optional (creation-with-upload): the upload's first bytes"),
    responses(
        (status = 201, description = "Created (with a body: its bytes received)", headers(
            ("Location" = String, description = "The upload's URL, `<public>/files/<id>`"),
            ("Upload-Offset" = u64, description = "The bytes received"),
            ("Upload-Expires" = String, description = "HTTP date when the unfinished upload expires unless continued"),
            ("Ferry-Location" = String, description = "Once the file is stored: its URL, fetched with the same token"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 400, description = "Malformed tus headers or metadata (see `POST /files/`)"),
        (status = 410, description = "A partial upload a final one names has expired (`upload_expired`)"),
        (status = 412, description = "`Tus-Resumable` is missing or another version (`unsupported_version`), with `Tus-Version`"),
        (status = 413, description = "Over `Tus-Max-Size` (`too_large`), or an `Upload-Length` over the quota (`quota_exceeded`)"),
        (status = 423, description = "A partial upload a final one names is being written (`upload_locked`)"),
        (status = 460, description = "The body does not match `Upload-Checksum` (`checksum_mismatch`); the upload exists"),
        (status = 507, description = "No space left (`insufficient_storage`)"),
    ))]
pub async fn create_files(
    state: State<AppState>,
    caller: Caller<TusUpload>,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    create(state, caller, request_headers, body).await
}
