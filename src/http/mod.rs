//! HTTP: the router, shared state, errors and extractors, and one module per API family.
//! Handlers parse input, call a service, render output — nothing else. [`serve`] runs the
//! router on a listener.

mod account;
mod blob_response;
pub mod body_idle;
mod device;
pub mod error;
pub mod extract;
mod gallery;
mod health;
mod media_info;
mod metrics;
mod multipart;
pub mod openapi;
mod serve;
mod sessions;
mod timeline;
mod tus;
pub(crate) mod upload_host;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::blob_store::BlobStore;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::ingest::Ingest;
use crate::jobs::JobRunner;
use crate::signing::Signer;
use error::{ApiError, Family};
pub use serve::serve;

/// Everything a handler may use, behind one `Arc`: axum clones the state for every extractor
/// and middleware of every request, and a clone of the services themselves — a few dozen
/// reference counts and two strings — was a fifth of a small request's time (issue 19, P5).
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl AppState {
    pub fn new(services: AppServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct AppServices {
    pub config: Arc<Config>,
    pub catalog: Arc<dyn Catalog>,
    pub store: Arc<dyn BlobStore>,
    pub ingest: Ingest,
    /// Uploads in parts (both families).
    pub uploads: crate::ingest::multipart::MultipartUploads,
    /// tus resumable uploads.
    pub tus: crate::resumable::ResumableUploads,
    /// Gallery events, created and changed the same way by every path.
    pub events: crate::gallery::GalleryEvents,
    /// Library files, created and changed the same way by every path.
    pub library: crate::library::LibraryFiles,
    pub signer: Signer,
    /// Principals resolved within the last moment (see `auth::PrincipalCache`).
    pub principals: Arc<crate::auth::PrincipalCache>,
    pub jobs: JobRunner,
    /// Retention, hold release and collection (tests run a pass as if time had passed).
    pub lifecycle: crate::jobs::StorageLifecycle,
    /// Where remote import may reach.
    pub remote: Arc<crate::remote::RemotePolicy>,
    /// Where blob import reads objects.
    pub import_buckets: Arc<crate::import_buckets::ImportBuckets>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Base of links Ferry hands out (no trailing `/`).
    pub public_url: String,
    /// Base of signed upload/download URLs (no trailing `/`).
    pub upload_url: String,
}

impl AppServices {
    /// Expiry (Unix seconds) of a signed URL issued now.
    pub fn signed_url_expiry(&self) -> i64 {
        crate::clock::now_secs() + self.config.signed_url_ttl.as_secs() as i64
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let body_idle = state.config.body_idle_timeout + body_idle::MARGIN;
    let routes = openapi::serve_document(api_routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track));
    // the families' routes have their own shape and 405 already; the rest get the plain ones
    let app = Family::Plain
        .layer(routes)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(body_idle, body_idle::guard))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                "the server hit a bug handling this request",
            ))
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    // the path only: query strings carry signatures and keys
                    // user and device are recorded once the credentials are resolved
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                        user = tracing::field::Empty,
                        device = tracing::field::Empty,
                    )
                })
                .on_response(log_response)
                // log_response already logged a failed request, with its reason
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid));
    // the CORS layer answers every OPTIONS itself; only a preflight (a browser asking with
    // Access-Control-Request-Method) is its to answer, any other OPTIONS (tus discovery) is
    // the route's
    app.clone().layer(cors).layer(axum::middleware::from_fn_with_state(app, options_past_cors))
}

/// Every route Ferry serves, each with its description.
pub fn api_routes() -> openapi::ApiRouter {
    openapi::ApiRouter::new()
        .merge(health::router())
        .merge(account::router())
        .merge(upload_host::router())
        .nest("/device/1", device::router())
        .merge(multipart::router())
        .merge(sessions::router())
        .merge(gallery::router())
        .merge(tus::router())
        .merge(metrics::router())
        .merge(timeline::router())
        .merge(web::router())
}

async fn options_past_cors(
    axum::extract::State(app): axum::extract::State<Router>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let preflight = request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if request.method() == Method::OPTIONS && !preflight {
        use tower::ServiceExt;
        return app.oneshot(request).await.unwrap_or_else(|never| match never {});
    }
    next.run(request).await
}

/// Logs each response once: a refusal with its error code, a failure with its message and
/// what went wrong inside.
fn log_response(response: &axum::response::Response, latency: Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    match response.extensions().get::<ApiError>() {
        Some(err) if status >= 500 => {
            let cause = err.cause.as_deref().unwrap_or("-");
            tracing::error!(status, code = err.code.as_str(), answer = %err.message, cause, ?latency, "request failed")
        }
        Some(err) => tracing::info!(status, code = err.code.as_str(), ?latency, "request refused"),
        None => tracing::info!(status, ?latency, "request done"),
    }
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        // the request's own list, not `*`: browsers never let `*` cover Authorization, so a
        // browser tus client sending a bearer token would fail its preflight
        .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
        // browsers upload straight to Ferry (signed PUTs, tus): they must see these answers
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-expires"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-concat"),
            HeaderName::from_static("upload-defer-length"),
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("tus-version"),
            HeaderName::from_static("tus-extension"),
            HeaderName::from_static("tus-max-size"),
            HeaderName::from_static("tus-checksum-algorithm"),
            HeaderName::from_static("ferry-location"),
        ])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return base.allow_origin(AllowOrigin::any());
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    base.allow_origin(AllowOrigin::list(list))
}
