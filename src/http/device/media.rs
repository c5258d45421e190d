//! Path-based media items: create, update (undeletes), delete (soft).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{DeviceCall, MediaDelete};
use super::mount::{FileRef, held_content, media_json_of, mounted, parse_ms, parse_time, path_in_grant, visible};
use crate::catalog::{Grant, MediaContent, MediaCreated, MediaUpdated, Updater};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;

#[derive(Deserialize)]
pub struct CreateRequest {
    media_path: String,
    #[serde(flatten)]
    file: FileRef,
    #[serde(default)]
    ctime: Value,
    #[serde(default)]
    mtime: Value,
}

fn conflict(code: ErrorCode, message: &str, state: Value) -> ApiError {
    ApiError::new(code, message).with_state(state)
}

pub async fn create(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<CreateRequest>,
) -> Result<Json<Value>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let path = path_in_grant(&grant, &call.body.media_path)?;
    let content = MediaContent {
        blob: held_content(&state, &call.principal, &call.body.file).await?,
        ctime: parse_time("ctime", &call.body.ctime)?,
        mtime: parse_time("mtime", &call.body.mtime)?,
    };
    let by = Updater { user_id: call.owner().user_id, device_id: call.device_id() };
    match state.catalog.create_media(grant.volume_id, path.as_str(), &content, by).await? {
        MediaCreated::Created(id) | MediaCreated::Existing(id) => Ok(Json(json!({"media_id": id}))),
        MediaCreated::Conflict(current) => Err(conflict(
            ErrorCode::PathConflict,
            "the path holds other content",
            media_json_of(&state, &current).await?,
        )),
    }
}

#[derive(Deserialize)]
pub struct UpdateRequest {
    #[serde(flatten)]
    file: FileRef,
    #[serde(default)]
    ctime: Value,
    #[serde(default)]
    mtime: Value,
    expected_last_updated: Option<String>,
}

fn parse_media_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found(format!("no media {raw}")))
}

/// The item `media_id` as the grant sees it (other volumes and paths outside the prefix
/// do not exist for it).
async fn item_in_grant(state: &AppState, grant: &Grant, media_id: i64) -> Result<crate::catalog::MediaItem, ApiError> {
    state
        .catalog
        .media_item(grant.volume_id, media_id)
        .await?
        .filter(|item| visible(grant, item))
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchMedia, format!("no media {media_id} in this grant")))
}

pub async fn update(
    State(state): State<AppState>,
    Path((grant_id, media_id)): Path<(String, String)>,
    call: DeviceCall<UpdateRequest>,
) -> Result<Json<Value>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let media_id = parse_media_id(&media_id)?;
    item_in_grant(&state, &grant, media_id).await?;
    let content = MediaContent {
        blob: held_content(&state, &call.principal, &call.body.file).await?,
        ctime: parse_time("ctime", &call.body.ctime)?,
        mtime: parse_time("mtime", &call.body.mtime)?,
    };
    let expected =
        call.body.expected_last_updated.as_deref().map(|t| parse_ms("expected_last_updated", t)).transpose()?;
    let by = Updater { user_id: call.owner().user_id, device_id: call.device_id() };
    match state.catalog.update_media(grant.volume_id, media_id, &content, expected, by).await? {
        MediaUpdated::Updated => Ok(Json(json!({}))),
        MediaUpdated::NotFound => Err(ApiError::new(ErrorCode::NoSuchMedia, format!("no media {media_id}"))),
        MediaUpdated::Stale(current) => {
            let current = media_json_of(&state, &current).await?;
            Err(conflict(ErrorCode::StaleUpdate, "the item changed since expected_last_updated", current))
        }
    }
}

#[derive(Deserialize)]
pub struct DeleteRequest {}

pub async fn delete(
    State(state): State<AppState>,
    Path((grant_id, media_id)): Path<(String, String)>,
    call: DeviceCall<DeleteRequest, MediaDelete>,
) -> Result<Json<Value>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let media_id = parse_media_id(&media_id)?;
    item_in_grant(&state, &grant, media_id).await?;
    let by = Updater { user_id: call.owner().user_id, device_id: call.device_id() };
    state.catalog.delete_media(grant.volume_id, media_id, by).await?;
    Ok(Json(json!({})))
}
