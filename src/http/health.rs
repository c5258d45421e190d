//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::openapi::{ApiRouter, tag};

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(example = "ok")]
    status: &'static str,
}

/// Whether the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = tag::SERVER, responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready when the catalog answers.
#[utoipa::path(get, path = "/readyz", tag = tag::SERVER, responses(
    (status = 200, body = Health),
    (status = 503, description = "The catalog does not answer (`not_ready`)"),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .catalog
        .ping()
        .await
        .map_err(|e| ApiError::new(ErrorCode::NotReady, format!("the catalog does not answer: {e}")))?;
    Ok(Json(Health { status: "ready" }))
}
