//! Path-based media items: create, update (undeletes), delete (soft).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::call::{DeviceCall, MediaDelete};
use super::mount::{
    Empty, FileRef, MediaConflict, held_content, media_json_of, mounted, parse_ms, parse_time, path_in_grant, visible,
};
use crate::catalog::{Grant, MediaContent, MediaCreated, MediaUpdated, Updater};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::tag;

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceCreateRequest)]
pub struct CreateRequest {
    /// Starts with `/` and lies under the grant's `prefix_path`; no empty segments, `.` or
    /// `..`, trailing `/` or control characters; at most 4096 bytes.
    #[schema(example = "/hello.txt")]
    media_path: String,
    #[serde(flatten)]
    file: FileRef,
    /// An ISO 8601 string, Unix seconds, Unix milliseconds, or null; stored in UTC.
    #[serde(default)]
    ctime: Value,
    /// As `ctime`.
    #[serde(default)]
    mtime: Value,
}

fn conflict(code: ErrorCode, message: &str, state: Value) -> ApiError {
    ApiError::new(code, message).with_state(state)
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeviceMediaId)]
pub struct MediaId {
    media_id: i64,
}

/// Creates a media item at a path of the grant, naming content the account holds.
///
/// The same path with the same content answers the existing `media_id`; creating a deleted
/// path again revives the item with its old id.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/media", tag = tag::DEVICE,
    operation_id = "device_media_create",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body(content = CreateRequest, example = json!({
        "media_path": "/hello.txt",
        "file_hash": "cf82d2d961ff699eda330edfa1bc8ec368d42d901582a9534af98acfd1cde208",
        "file_size": 11,
        "ctime": "2026-01-01T00:00:00Z",
        "mtime": "2026-01-01T00:00:00Z"
    })),
    responses(
        (status = 200, body = MediaId),
        (status = 400, description = "`invalid_path`, `unknown_content` (the account does not hold that content), \
            `invalid_time`, `too_large` (a size over the upload limit), `invalid_size`, `invalid_hash`"),
        (status = 403, description = "The path is outside the grant's prefix (`outside_grant`), or as for every call"),
        (status = 409, body = MediaConflict,
            description = "The path holds other content (`path_conflict`); the body carries the current item"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<CreateRequest>,
) -> Result<Json<MediaId>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let path = path_in_grant(&grant, &call.body.media_path)?;
    let content = MediaContent {
        blob: held_content(&state, &call.principal, &call.body.file).await?,
        ctime: parse_time("ctime", &call.body.ctime)?,
        mtime: parse_time("mtime", &call.body.mtime)?,
    };
    let by = Updater { user_id: call.owner().user_id, device_id: call.device_id() };
    match state.catalog.create_media(grant.volume_id, path.as_str(), &content, by).await? {
        MediaCreated::Created(id) | MediaCreated::Existing(id) => Ok(Json(MediaId { media_id: id })),
        MediaCreated::Conflict(current) => Err(conflict(
            ErrorCode::PathConflict,
            "the path holds other content",
            media_json_of(&state, &current).await?,
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceUpdateRequest)]
pub struct UpdateRequest {
    #[serde(flatten)]
    file: FileRef,
    /// As in create; omitted becomes null.
    #[serde(default)]
    ctime: Value,
    /// As in create; omitted becomes null.
    #[serde(default)]
    mtime: Value,
    /// The item's `last_updated` (ISO 8601) this update is based on: a change made since
    /// answers 409 `stale_update`.
    #[schema(example = "2026-01-01T00:00:00.000Z")]
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

/// Replaces an item's content and times; also undeletes it.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/media/{media_id}", tag = tag::DEVICE,
    operation_id = "device_media_update",
    params(
        ("media_grant_id" = String, Path, description = "A grant of this device"),
        ("media_id" = String, Path, description = "An item of the grant's view of the volume (decimal)"),
    ),
    request_body = UpdateRequest,
    responses(
        (status = 200, body = Empty, description = "Updated"),
        (status = 400, description = "`unknown_content` (the account does not hold that content), `invalid_time`, \
            `too_large`, `invalid_size`, `invalid_hash`"),
        (status = 404, description = "No such item in this grant's view of the volume (`no_such_media`), or no \
            such grant"),
        (status = 409, description = "The item changed since `expected_last_updated` (`stale_update`); the body \
            carries the current item", body = MediaConflict),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path((grant_id, media_id)): Path<(String, String)>,
    call: DeviceCall<UpdateRequest>,
) -> Result<Json<Empty>, ApiError> {
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
        MediaUpdated::Updated => Ok(Json(Empty {})),
        MediaUpdated::NotFound => Err(ApiError::new(ErrorCode::NoSuchMedia, format!("no media {media_id}"))),
        MediaUpdated::Stale(current) => {
            let current = media_json_of(&state, &current).await?;
            Err(conflict(ErrorCode::StaleUpdate, "the item changed since expected_last_updated", current))
        }
    }
}

/// Nothing needed: may carry the credential (`device_session_key` or `user_session_key`).
#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceDeleteRequest)]
pub struct DeleteRequest {}

/// Deletes an item: it becomes a tombstone in the change feed.
///
/// Takes the device key, or a token of the owner with the `delete` scope (`Authorization`
/// or `user_session_key`). Deleting again answers the same. The content stays for
/// `FERRY_TOMBSTONE_RETENTION`.
#[utoipa::path(delete, path = "/media_grant/{media_grant_id}/media/{media_id}", tag = tag::DEVICE,
    operation_id = "device_media_delete",
    params(
        ("media_grant_id" = String, Path, description = "A grant of one of the owner's devices"),
        ("media_id" = String, Path, description = "An item of the grant's view of the volume (decimal)"),
    ),
    request_body(content = Option<DeleteRequest>),
    security(("device_session_key" = []), ("user_session_key" = []), ("bearer" = []), ("token_header" = [])),
    responses(
        (status = 200, body = Empty, description = "Deleted (or deleted before)"),
        (status = 403, description = "No valid device key or token (`unauthorized`), a token without the `delete` \
            scope (`forbidden`), or a disabled grant (`grant_disabled`)"),
        (status = 404, description = "No such item in this grant's view of the volume (`no_such_media`), or no \
            such grant"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path((grant_id, media_id)): Path<(String, String)>,
    call: DeviceCall<DeleteRequest, MediaDelete>,
) -> Result<Json<Empty>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let media_id = parse_media_id(&media_id)?;
    item_in_grant(&state, &grant, media_id).await?;
    let by = Updater { user_id: call.owner().user_id, device_id: call.device_id() };
    state.catalog.delete_media(grant.volume_id, media_id, by).await?;
    Ok(Json(Empty {}))
}
