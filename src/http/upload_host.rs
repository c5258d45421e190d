//! The signed upload host: URLs Ferry signed (see `signing`) need no other credential.
//! `PUT /signed/blob` streams its body into the ingest pipeline; `GET /signed/blob/:sha256`
//! serves a blob with Range. API families add their own signed targets beside these.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::blob_response::{DownloadHeaders, RangedAnswers, serve_blob};
use super::error::ApiError;
use super::openapi::{ApiRouter, Binary, tag};
use crate::blob_store::Placed;
use crate::domain::{ErrorCode, Sha256Hex, UserId};
use crate::ingest::{Expectation, ExpectedHash};
use crate::signing::{SignatureError, Verified, targets};

/// The route of signed downloads (`targets::BLOB_GET_PREFIX` and the hash).
const BLOB_GET_PATH: &str = "/signed/blob/{sha256}";

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(put_blob))
        .routes(routes!(put_part))
        .routes(routes!(get_blob))
        // the pipeline enforces its own limit while streaming
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Checks the signature of the request line itself; `unsigned` names the parameters the
/// target lets clients append after the signature (see [`crate::signing`]).
pub fn verify_signed(state: &AppState, method: &Method, uri: &Uri, unsigned: &[&str]) -> Result<Verified, ApiError> {
    state.signer.verify(method.as_str(), uri.path(), uri.query(), unsigned).map_err(|e| match e {
        SignatureError::Invalid => ApiError::new(ErrorCode::InvalidSignature, e.to_string()),
        SignatureError::Expired => ApiError::new(ErrorCode::ExpiredSignature, e.to_string()),
    })
}

/// Content-Length of a request, when announced.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Checks an announced length against the limits before a byte is read, so an oversized
/// body is refused at once.
pub fn check_announced(expect: &Expectation) -> Result<(), ApiError> {
    let Some(announced) = expect.size_hint else {
        return Ok(());
    };
    if let Some(limit) = expect.max_size.filter(|l| announced > *l) {
        return Err(crate::ingest::IngestError::TooLarge { limit }.into());
    }
    if let Some(size) = expect.size.filter(|s| announced != *s) {
        return Err(ApiError::new(
            ErrorCode::HashMismatch,
            format!("Content-Length {announced} differs from the bound size {size}"),
        ));
    }
    Ok(())
}

// fields in sorted order, the order this answer has always had (README shows it)
#[derive(Serialize, ToSchema)]
struct SignedBlobStored {
    /// The content was already stored (the bytes were checked and dropped).
    deduplicated: bool,
    /// The device family's hash of the bytes (API.md §1): present when the URL bound it or
    /// the file is 16 MiB or less; over 16 MiB without a bound `file_hash` it is computed
    /// later, in the background (API.md §5), and left out here.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    file_hash: Option<Sha256Hex>,
    /// SHA-256 of the bytes.
    #[schema(value_type = String, example = "08bb5e5d6eaac1049ede0893d30ed022b1a4d9b5b48db414871f51c9cb35283d")]
    sha256: Sha256Hex,
    size: u64,
}

/// A signed PUT (`signed_opts` of the device family's `upload`): the bytes it is bound to.
#[utoipa::path(put, path = targets::BLOB_PUT, tag = tag::SIGNED,
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = SignedBlobStored, headers(("ETag" = String, description = "The SHA-256, quoted"))),
        (status = 400, description = "The bytes differ from the bound size or hash (`hash_mismatch`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE (`too_large`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
async fn put_blob(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let signed = verify_signed(&state, &method, &uri, &[])?;
    let holder: UserId = signed
        .get("user")
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| ApiError::forbidden("the signed URL names no user"))?;
    if state.catalog.user(holder).await?.is_none() {
        return Err(ApiError::forbidden("the user this URL was signed for no longer exists"));
    }
    let expect = bound_expectation(&state, &signed, &headers)?;
    check_announced(&expect)?;
    let ingested = state.ingest.ingest(body.into_data_stream(), &expect, holder).await?;
    let etag = format!("\"{}\"", ingested.blob.sha256);
    let file_hash = match (ingested.device_hash(), ingested.placed) {
        (Some(hash), _) => Some(hash.clone()),
        // stored before: an earlier arrival or the device_hash job may have computed it
        (None, Placed::AlreadyPresent) => {
            state.catalog.blob(&ingested.blob.sha256).await?.and_then(|b| b.device_hash().cloned())
        }
        (None, Placed::Stored) => None,
    };
    let stored = SignedBlobStored {
        file_hash,
        sha256: ingested.blob.sha256,
        size: ingested.blob.size,
        deduplicated: ingested.placed == Placed::AlreadyPresent,
    };
    Ok(axum::response::IntoResponse::into_response((StatusCode::OK, [(header::ETAG, etag)], Json(stored))))
}

/// What a signed URL bound: size, and the plain SHA-256 (`sha256`) or the device
/// family's hash (`file_hash`).
fn bound_expectation(state: &AppState, signed: &Verified, headers: &HeaderMap) -> Result<Expectation, ApiError> {
    let hash = |name: &str| {
        signed.get(name).map(Sha256Hex::parse).transpose().map_err(|_| ApiError::forbidden("bad bound hash"))
    };
    let hash = match (hash("sha256")?, hash("file_hash")?) {
        (Some(h), _) => Some(ExpectedHash::Sha256(h)),
        (None, Some(h)) => Some(ExpectedHash::Device(h)),
        (None, None) => None,
    };
    let expect = Expectation {
        size: signed.get("size").and_then(|s| s.parse().ok()),
        hash,
        max_size: Some(state.config.max_upload_size),
        size_hint: content_length(headers),
    };
    check_announced(&expect)?;
    Ok(expect)
}

/// One part of a multipart upload (either family): staged until completion, answered
/// with an `ETag` derived from the SHA-256 computed while it streamed in.
#[utoipa::path(put, path = targets::PART_PUT, tag = tag::SIGNED,
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The part is staged", headers(("ETag" = String, description = "Quote it back at completion"))),
        (status = 400, description = "The bytes differ from the part's bound size or hash (`hash_mismatch`)"),
        (status = 404, description = "The upload is gone (completed, aborted or expired)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE (`too_large`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
async fn put_part(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let signed = verify_signed(&state, &method, &uri, &[])?;
    let (Some(upload_id), Some(part_num)) =
        (signed.get("upload"), signed.get("part").and_then(|p| p.parse::<u32>().ok()))
    else {
        return Err(ApiError::forbidden("the signed URL names no upload part"));
    };
    let expect = bound_expectation(&state, &signed, &headers)?;
    let etag = state.uploads.put_part(upload_id, part_num, body.into_data_stream(), &expect).await?;
    let etag = format!("\"{etag}\"");
    Ok(axum::response::IntoResponse::into_response((StatusCode::OK, [(header::ETAG, etag)])))
}

/// A signed download (the device family's `download`): the blob, with HTTP Range; HEAD
/// answers with the same signature.
#[utoipa::path(get, path = BLOB_GET_PATH, tag = tag::SIGNED,
    params(("sha256" = String, Path, description = "The content's SHA-256"), DownloadHeaders),
    responses(
        (status = 200, body = Binary, content_type = "application/octet-stream",
            headers(("ETag" = String, description = "The SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such blob"),
    ))]
async fn get_blob(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify_signed(&state, &method, &uri, &[])?;
    let sha256 = Sha256Hex::parse(&sha256).map_err(|e| ApiError::new(ErrorCode::InvalidHash, e.to_string()))?;
    let blob = state.catalog.blob(&sha256).await?.ok_or_else(|| ApiError::not_found("no such blob"))?;
    serve_blob(&state, &blob.sha256, blob.size, "application/octet-stream", &headers).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn signed_downloads_are_served_where_they_are_signed_for() {
        assert_eq!(super::BLOB_GET_PATH, format!("{}{{sha256}}", super::targets::BLOB_GET_PREFIX));
    }
}
