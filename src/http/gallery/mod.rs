//! Device gallery family (API.md §4) under `/api/gallery/:device`: a device's events
//! (its media, newest first), uploads, signed upload URLs, stats, watched folders and pull.

mod events;
mod pull;
mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, Family};
use crate::auth::Principal;
use crate::catalog::{Device, Event, MediaInfo};
use crate::clock::iso;
use crate::domain::ErrorCode;

/// The upload host's target for `upload-url` (file and thumbnail).
pub const SIGNED_PUT: &str = "/signed/gallery";

pub fn router() -> Router<AppState> {
    let base = "/api/gallery/{device}";
    let routes = Router::new()
        .route(&format!("{base}/paths"), get(events::paths))
        .route(&format!("{base}/events"), get(events::list))
        .route(&format!("{base}/events/{{event_id}}"), delete(events::remove))
        .route(&format!("{base}/events/{{event_id}}/file"), get(events::file))
        .route(&format!("{base}/events/{{event_id}}/thumbnail"), get(events::thumbnail))
        .route(&format!("{base}/stats"), get(events::stats))
        .route(&format!("{base}/upload"), post(upload::upload).layer(DefaultBodyLimit::disable()))
        .route(&format!("{base}/upload-url"), get(upload::upload_url))
        .route(&format!("{base}/harvest"), post(pull::harvest))
        .route(&format!("{base}/pull/{{event_id}}"), post(pull::pull))
        .route(SIGNED_PUT, put(upload::signed_put).layer(DefaultBodyLimit::disable()));
    Family::Gallery.layer(routes)
}

/// `:device`: the exact device name within the caller's account, else a device id of
/// theirs. Never created; anything else is 404 (another user's device too).
pub async fn resolve_device(state: &AppState, principal: &Principal, raw: &str) -> Result<Device, ApiError> {
    crate::gallery::find_device(state.catalog.as_ref(), principal.user(), raw)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchDevice, format!("no device '{raw}' in this account")))
}

/// An event as the family lists it (extra fields allowed), with what media processing
/// learnt about its file (`info`): a generated thumbnail counts for `has_thumbnail`.
pub fn event_json(event: &Event, info: Option<&MediaInfo>) -> Value {
    let generated = info.is_some_and(|i| i.thumbnail_sha256.is_some());
    let mut item = json!({
        "id": event.id,
        "name": event.name,
        "media_type": event.media_type,
        "size": event.size,
        "has_thumbnail": event.thumbnail_sha256.is_some() || generated,
        "created": iso(event.created_ms),
        "pulled": event.sha256.is_some(),
        "content_type": event.content_type,
    });
    if let Some(metadata) = &event.metadata {
        item["metadata"] = metadata.clone();
    }
    if event.sha256.is_some() {
        crate::http::media_info::add_media_fields(&mut item, info);
    }
    item
}
