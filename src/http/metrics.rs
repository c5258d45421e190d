//! `GET /metrics` (Prometheus text; a bearer token when `FERRY_METRICS_TOKEN` is set) and the
//! layer that counts every request by family, route template and status, and lets the upload
//! pipeline know which family it is serving.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::openapi::{ApiRouter, tag};
use crate::catalog::JobStatus;
use crate::domain::{ErrorCode, JobKind};
use crate::metrics::{Gauges, serve_in_family};

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(metrics))
}

/// The API family a request path belongs to (a part PUT is relabelled by the upload it is
/// for: see `metrics::now_serving`).
pub fn family_of(path: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 14] = [
        ("/device/", "device"),
        ("/signed/blob", "device"),
        ("/api/users/", "multipart"),
        ("/signed/part", "multipart"),
        ("/signed/file", "multipart"),
        ("/api/gallery/", "gallery"),
        ("/signed/gallery", "gallery"),
        ("/files", "tus"),
        ("/api/upload/", "session"),
        ("/api/file/", "session"),
        ("/api/files/", "session"),
        ("/upload/", "session"),
        ("/file/", "session"),
        ("/signed/session/", "session"),
    ];
    PREFIXES.iter().find(|(prefix, _)| path.starts_with(prefix)).map_or("ferry", |(_, family)| family)
}

/// Counts the request and serves it with its family known to the upload pipeline.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let family = family_of(request.uri().path());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let started = Instant::now();
    let (response, family) = serve_in_family(family, next.run(request)).await;
    state.metrics.request(family, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Prometheus text: requests, upload bytes and dedup, uploads, jobs, the store.
#[utoipa::path(get, path = "/metrics", tag = tag::SERVER, security((), ("metrics_token" = [])), responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"),
    (status = 401, description = "FERRY_METRICS_TOKEN is set and the request lacks it (`unauthorized`)"),
    (status = 503, description = "The catalog does not answer (`unavailable`)"),
))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let bearer =
            presented.and_then(|v| v.split_once(' ')).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        if !bearer.is_some_and(|(_, secret)| crate::auth::secrets::same(secret.trim(), &token.0)) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "GET /metrics needs the bearer token FERRY_METRICS_TOKEN names",
            ));
        }
    }
    let stored = state.catalog.server_usage().await?;
    let pending = state.catalog.list_jobs(Some(JobStatus::Pending)).await?;
    let queue_depth = JobKind::ALL
        .iter()
        .map(|kind| (kind.as_str().to_owned(), pending.iter().filter(|j| j.kind == *kind).count() as i64))
        .collect();
    let waits = state.catalog.connection_waits();
    let gauges = Gauges {
        blobs: stored.blobs,
        blob_bytes: stored.physical_bytes,
        catalog_backend: if state.config.database_url.starts_with("sqlite:") { "sqlite" } else { "postgres" },
        catalog_reads: waits.reads.totals(),
        catalog_writes: waits.writes.totals(),
        queue_depth,
        gallery_pages: state.events.page_totals(),
    };
    let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut response = state.metrics.render(&gauges, &kinds).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
