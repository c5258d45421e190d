//! `GET /api/me`: who a token belongs to and what it may do (Ferry's own addition; handy
//! for checking a token with curl). `GET /api/usage`: what the caller's account stores and
//! may store (API.md §5).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AccountInfo, Caller, UsageRead};
use crate::auth::Principal;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me)).route("/api/usage", get(usage))
}

async fn me(Caller(principal, ..): Caller<AccountInfo>) -> Json<Value> {
    let Principal::Token { user, token } = principal else { unreachable!("the table admits tokens only") };
    Json(json!({
        "user_id": user.user_id,
        "name": user.name,
        "level": user.level,
        "token_id": token.token_id,
        "scopes": token.scopes,
    }))
}

async fn usage(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<UsageRead>,
) -> Result<Json<Value>, ApiError> {
    let account = state.catalog.usage(Some(principal.user().user_id)).await?.pop();
    let account = account.ok_or_else(|| ApiError::not_found("the account is gone"))?;
    Ok(Json(json!({
        "media_items": account.media_items,
        "logical_bytes": account.logical_bytes,
        "held_bytes": account.held_bytes,
        "deleted_bytes_pending": account.deleted_bytes_pending,
        "quota_bytes": account.quota_bytes,
    })))
}
