//! tus 1.0.0 resumable uploads (API.md §5) at `/files/`: core (OPTIONS, HEAD, PATCH) and the
//! creation, creation-with-upload, creation-defer-length, termination, checksum, expiration
//! and concatenation extensions. Handlers read the protocol's headers into a request for
//! `resumable` and render its answer as headers; errors are JSON in the plain shape
//! with the protocol's statuses (412, 409, 423, 410, 404, 460, 413, 400).
//!
//! Every request but OPTIONS must say `Tus-Resumable: 1.0.0` (else 412 with `Tus-Version`),
//! and every answer says it.

mod create;
mod headers;
mod upload;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Family};
use super::openapi::{ApiRouter, family_router, tag};
use crate::domain::ErrorCode;
use headers::{TUS_RESUMABLE, TUS_VERSION};

/// The one protocol version spoken.
const VERSION: &str = "1.0.0";
/// The extensions offered (`Tus-Extension`).
const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";

pub fn router() -> ApiRouter {
    // paths are in the handlers' descriptions: `/files`, `/files/` and `/files/{id}`
    let routes = ApiRouter::new()
        .routes(routes!(create::create_files, discover_files))
        .routes(routes!(create::create, discover))
        .routes(routes!(discover_upload, upload::head, upload::patch, upload::terminate, upload::overridden))
        // PATCH bodies and creation-with-upload stream through the pipeline, unbounded here
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(speaks_tus));
    family_router(Family::Plain, routes)
}

/// Refuses requests without `Tus-Resumable: 1.0.0` (OPTIONS needs none), and says the
/// version on every answer.
async fn speaks_tus(request: Request, next: Next) -> Response {
    let resumable = request.headers().get(TUS_RESUMABLE).map(HeaderValue::as_bytes);
    let mut response = if request.method() != Method::OPTIONS && resumable != Some(VERSION.as_bytes()) {
        let why = match resumable {
            None => "Tus-Resumable is missing: this server speaks tus 1.0.0".to_owned(),
            Some(other) => format!(
                "Tus-Resumable {} is not supported: this server speaks tus 1.0.0",
                String::from_utf8_lossy(other)
            ),
        };
        let mut refused = ApiError::new(ErrorCode::UnsupportedVersion, why).into_response();
        refused.headers_mut().insert(TUS_VERSION, HeaderValue::from_static(VERSION));
        refused
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    response
}

/// What this server offers (tus discovery): version, extensions, maximum size, checksums.
///
/// No credential and no `Tus-Resumable` needed. A browser's CORS preflight (an OPTIONS with
/// `Access-Control-Request-Method`) is answered by the CORS layer instead.
#[utoipa::path(options, path = "/files/", tag = tag::TUS, security(()), responses(
    (status = 204, description = "What this server offers", headers(
        ("Tus-Version" = String, description = "`1.0.0`"),
        ("Tus-Extension" = String, description = "`creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation`"),
        ("Tus-Max-Size" = u64, description = "The largest upload (FERRY_MAX_UPLOAD_SIZE)"),
        ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
        ("Tus-Resumable" = String, description = "`1.0.0`"),
    )),
))]
async fn discover(State(state): State<AppState>) -> Response {
    let algorithms: Vec<&str> = crate::domain::ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
    let mut response = StatusCode::NO_CONTENT.into_response();
    let offered = response.headers_mut();
    offered.insert(TUS_VERSION, HeaderValue::from_static(VERSION));
    offered.insert(headers::TUS_EXTENSION, HeaderValue::from_static(EXTENSIONS));
    offered.insert(headers::TUS_MAX_SIZE, HeaderValue::from(state.tus.max_size()));
    offered.insert(
        headers::TUS_CHECKSUM_ALGORITHM,
        HeaderValue::from_str(&algorithms.join(",")).expect("algorithm names are ASCII"),
    );
    response
}

/// What this server offers (tus discovery), as on `/files/`.
#[utoipa::path(options, path = "/files", tag = tag::TUS, security(()), responses(
    (status = 204, description = "What this server offers", headers(
        ("Tus-Version" = String, description = "`1.0.0`"),
        ("Tus-Extension" = String, description = "The extensions offered, comma-separated"),
        ("Tus-Max-Size" = u64, description = "The largest upload (FERRY_MAX_UPLOAD_SIZE)"),
        ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
        ("Tus-Resumable" = String, description = "`1.0.0`"),
    )),
))]
async fn discover_files(state: State<AppState>) -> Response {
    discover(state).await
}

/// What this server offers (tus discovery), as on `/files/`; the upload id is not looked at.
#[utoipa::path(options, path = "/files/{id}", tag = tag::TUS, security(()),
    params(("id" = String, Path, description = "An upload id (32 lowercase hex characters)")),
    responses(
        (status = 204, description = "What this server offers", headers(
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "The extensions offered, comma-separated"),
            ("Tus-Max-Size" = u64, description = "The largest upload (FERRY_MAX_UPLOAD_SIZE)"),
            ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
    ))]
async fn discover_upload(state: State<AppState>) -> Response {
    discover(state).await
}
