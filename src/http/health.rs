//! Liveness and readiness.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorCode};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the catalog answers.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .catalog
        .ping()
        .await
        .map_err(|e| ApiError::new(ErrorCode::NotReady, format!("the catalog does not answer: {e}")))?;
    Ok(Json(json!({"status": "ready"})))
}
