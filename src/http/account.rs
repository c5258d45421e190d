//! `GET /api/me`: who a token belongs to and what it may do (Ferry's own addition; handy
//! for checking a token with curl). `GET /api/usage`: what the caller's account stores and
//! may store (API.md §5).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::{AccountInfo, Caller, DevicesRead, UsageRead};
use super::openapi::{ApiRouter, LevelName, tag};
use crate::auth::Principal;
use crate::domain::{Level, ScopeSet};

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(me)).routes(routes!(usage)).routes(routes!(devices))
}

// fields in sorted order, the order these answers have always had (README shows them)
#[derive(Serialize, ToSchema)]
struct TokenOwner {
    #[schema(value_type = LevelName, inline, example = "uploader")]
    level: Level,
    name: String,
    #[schema(value_type = Vec<String>, example = json!(["upload", "read"]))]
    scopes: ScopeSet,
    /// The token asked with; absent when the web page asks (signed in, no token).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<i64>,
    user_id: i64,
    /// The web gallery's session, when the page asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    web_session_id: Option<i64>,
}

/// Who the token belongs to and what it may do.
#[utoipa::path(get, path = "/api/me", tag = tag::ACCOUNT, responses((status = 200, body = TokenOwner)))]
async fn me(Caller(principal, ..): Caller<AccountInfo>) -> Json<TokenOwner> {
    let scopes = principal.scopes().cloned().unwrap_or_default();
    let (token_id, web_session_id) = match &principal {
        Principal::Token { token, .. } => (Some(token.token_id.0), None),
        Principal::Web { session, .. } => (None, Some(session.session_id.0)),
        Principal::Device { .. } => unreachable!("the table admits tokens and web sessions only"),
    };
    let user = principal.user();
    Json(TokenOwner {
        user_id: user.user_id.0,
        name: user.name.clone(),
        level: user.level,
        token_id,
        scopes,
        web_session_id,
    })
}

#[derive(Serialize, ToSchema)]
struct AccountUsage {
    /// Held bytes of deleted items, freed when their retention ends.
    deleted_bytes_pending: i64,
    /// Bytes of distinct content the account holds (what the quota counts).
    held_bytes: i64,
    /// Bytes those items name (each item counted).
    logical_bytes: i64,
    /// Live items of every family.
    media_items: i64,
    /// `null`: no quota.
    #[schema(required = true)]
    quota_bytes: Option<i64>,
}

/// What the caller's account stores and may store.
#[utoipa::path(get, path = "/api/usage", tag = tag::ACCOUNT, responses(
    (status = 200, body = AccountUsage),
    (status = 404, description = "The account is gone"),
))]
async fn usage(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<UsageRead>,
) -> Result<Json<AccountUsage>, ApiError> {
    let account = state.catalog.usage(Some(principal.user().user_id)).await?.pop();
    let account = account.ok_or_else(|| ApiError::not_found("the account is gone"))?;
    Ok(Json(AccountUsage {
        media_items: account.media_items,
        logical_bytes: account.logical_bytes,
        held_bytes: account.held_bytes,
        deleted_bytes_pending: account.deleted_bytes_pending,
        quota_bytes: account.quota_bytes,
    }))
}

/// One of the account's devices, with its gallery stats.
#[derive(Serialize, ToSchema)]
struct AccountDevice {
    device_id: i64,
    name: String,
    is_disabled: bool,
    is_upload_disabled: bool,
    is_download_disabled: bool,
    stats: super::gallery::GalleryStats,
}

#[derive(Serialize, ToSchema)]
struct AccountDevices {
    devices: Vec<AccountDevice>,
}

/// The caller's devices, oldest first, each with its gallery stats (what the web gallery's
/// Devices page shows).
#[utoipa::path(get, path = "/api/devices", tag = tag::ACCOUNT, responses((status = 200, body = AccountDevices)))]
async fn devices(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<DevicesRead>,
) -> Result<Json<AccountDevices>, ApiError> {
    let mut devices = Vec::new();
    for device in state.catalog.devices_of(principal.user().user_id).await? {
        devices.push(AccountDevice {
            stats: super::gallery::device_stats(&state, device.device_id).await?,
            device_id: device.device_id.0,
            name: device.device_name,
            is_disabled: device.is_disabled,
            is_upload_disabled: device.is_upload_disabled,
            is_download_disabled: device.is_download_disabled,
        });
    }
    Ok(Json(AccountDevices { devices }))
}
