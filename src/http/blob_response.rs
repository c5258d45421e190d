//! Serving blob bytes: whole, or one `Range` (206), with `ETag` and `Content-Length`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::collections::BTreeMap;

use utoipa::openapi::{self, ContentBuilder, HeaderBuilder, RefOr, ResponseBuilder};

use super::AppState;
use super::error::ApiError;
use super::openapi::Binary;
use crate::domain::{ByteRange, ErrorCode, RangeRequest, Sha256Hex};

/// The request headers [`serve_blob`] reads, for the description of every route serving a
/// blob (`params(DownloadHeaders, …)`); the handler reads them from the `HeaderMap`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct DownloadHeaders {
    /// One byte range, e.g. `bytes=0-1023` (answered 206, or 416 outside the content).
    #[param(rename = "Range", nullable = false)]
    range: Option<String>,
    /// The content's `ETag`: answered 304 without a body.
    #[param(rename = "If-None-Match", nullable = false)]
    if_none_match: Option<String>,
}

/// The answers [`serve_blob`] gives besides the whole content, for the description of every
/// route serving a blob (`responses((status = 200, …), RangedAnswers, …)`): written once here,
/// as `serve_blob` is the one place that gives them.
pub struct RangedAnswers;

impl utoipa::IntoResponses for RangedAnswers {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        use utoipa::PartialSchema;
        let text = || Some(String::schema());
        let header = |description: &str| HeaderBuilder::new().schema(text()).description(Some(description)).build();
        let etag = || header("The content's SHA-256, quoted");
        let partial = ResponseBuilder::new()
            .description("The requested range")
            .content("*/*", ContentBuilder::new().schema(Some(Binary::schema())).build())
            .header("Content-Range", header("`bytes <start>-<end>/<size>`"))
            .header("ETag", etag());
        let unchanged =
            ResponseBuilder::new().description("`If-None-Match` names the current ETag").header("ETag", etag());
        let outside = ResponseBuilder::new()
            .description("The range lies outside the content (`range_not_satisfiable`)")
            .header("Content-Range", header("`bytes */<size>`"));
        [("206", partial), ("304", unchanged), ("416", outside)]
            .into_iter()
            .map(|(status, answer)| (status.to_owned(), answer.build().into()))
            .collect()
    }
}

/// Streams blob `sha256` of `size` bytes as `content_type`, honouring `Range` and `If-None-Match`.
pub async fn serve_blob(
    state: &AppState,
    sha256: &Sha256Hex,
    size: u64,
    content_type: &str,
    request_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"{sha256}\"");
    let etag_value = HeaderValue::from_str(&etag).expect("hex is a valid header");
    if request_headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let range_header = request_headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match ByteRange::resolve(range_header, size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            let mut err =
                ApiError::new(ErrorCode::RangeNotSatisfiable, format!("the blob has {size} bytes")).into_response();
            let value = HeaderValue::from_str(&format!("bytes */{size}")).expect("valid header");
            err.headers_mut().insert(header::CONTENT_RANGE, value);
            return Ok(err);
        }
    };
    let stream = state.store.read(sha256, range).await.map_err(|e| {
        let cause = format!("blob {sha256} listed in the catalog cannot be read: {e}");
        match e.is_unavailable() {
            true => ApiError::new(ErrorCode::Unavailable, "the blob store cannot be reached; try again shortly"),
            false => ApiError::internal("the stored file cannot be read"),
        }
        .because(cause)
    })?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag_value);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // stored files are whatever their uploader declared: opened in a tab on Ferry's origin an
    // HTML or SVG file must not run as script (it could act with the web gallery's session)
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let length = range.map_or(size, |r| r.len());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(r) = range {
        let value = format!("bytes {}-{}/{size}", r.start, r.end);
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("valid header"));
    }
    Ok(response)
}

/// Streams thumbnail `sha256` as `serve_blob` does, typed by its first bytes (a device may
/// have sent a PNG; the ones Ferry makes are JPEGs).
pub async fn serve_thumbnail(
    state: &AppState,
    sha256: &Sha256Hex,
    request_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let blob =
        state.catalog.blob(sha256).await?.ok_or_else(|| ApiError::internal("a thumbnail's bytes are missing"))?;
    let head = match state
        .store
        .read(sha256, Some(crate::domain::ByteRange { start: 0, end: blob.size.saturating_sub(1).min(511) }))
        .await
    {
        Ok(mut stream) => {
            use futures_util::StreamExt;
            stream.next().await.and_then(Result::ok).unwrap_or_default()
        }
        Err(_) => Default::default(),
    };
    let content_type = crate::media::sniff(&head, None).content_type;
    serve_blob(state, sha256, blob.size, &content_type, request_headers).await
}

/// Streams the playable rendition of content `sha256` as `serve_blob` does; 404
/// `no_rendition` when there is none (not needed, not made yet, or it could not be made).
pub async fn serve_rendition(
    state: &AppState,
    sha256: Option<&Sha256Hex>,
    request_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let rendition = match sha256 {
        Some(content) => state.catalog.media_info(std::slice::from_ref(content)).await?.pop().and_then(|i| i.rendition),
        None => None,
    };
    let Some(rendition) = rendition else {
        return Err(ApiError::new(ErrorCode::NoRendition, "this file has no playable rendition"));
    };
    serve_blob(state, &rendition.sha256, rendition.size, &rendition.content_type, request_headers).await
}
