//! `GET /api/me`: who a token belongs to and what it may do (Ferry's own addition; handy
//! for checking a token with curl).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{AccountInfo, Caller};
use crate::auth::Principal;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me))
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
