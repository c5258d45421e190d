//! Device gallery family (API.md §4) under `/api/gallery/:device`: a device's events
//! (its media, newest first), uploads, signed upload URLs, stats, watched folders and pull.

mod answers;
mod events;

pub use answers::GalleryStats;
pub use events::device_stats;
mod pull;
mod upload;

use axum::extract::DefaultBodyLimit;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Family};
use super::openapi::{ApiRouter, MediaTypeName, family_router};
use crate::auth::Principal;
use crate::catalog::{Device, Event, MediaInfo};
use crate::clock::iso;
use crate::domain::ErrorCode;

/// The upload host's target for `upload-url` (file and thumbnail).
pub const SIGNED_PUT: &str = "/signed/gallery";

pub fn router() -> ApiRouter {
    // paths are in the handlers' descriptions: `/api/gallery/{device}/…` and SIGNED_PUT
    let routes = ApiRouter::new()
        .routes(routes!(events::paths))
        .routes(routes!(events::list))
        .routes(routes!(events::remove))
        .routes(routes!(events::file))
        .routes(routes!(events::thumbnail))
        .routes(routes!(events::rendition))
        .routes(routes!(events::stats))
        .routes(routes!(upload::upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(upload::upload_url))
        .routes(routes!(pull::harvest))
        .routes(routes!(pull::pull))
        .routes(routes!(upload::signed_put).layer(DefaultBodyLimit::disable()));
    family_router(Family::Gallery, routes)
}

/// `:device`: the exact device name within the caller's account, else a device id of
/// theirs. Never created; anything else is 404 (another user's device too).
pub async fn resolve_device(state: &AppState, principal: &Principal, raw: &str) -> Result<Device, ApiError> {
    crate::gallery::find_device(state.catalog.as_ref(), principal.user(), raw)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchDevice, format!("no device '{raw}' in this account")))
}

// Schema only: `event_json` below builds this JSON, and `media_info::add_media_fields` adds
// the media fields, copied from what media processing stored; keep the three in step.
/// A device's event, as `GET …/events` lists it (more fields may come).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GalleryEvent {
    /// `evt_` and a ULID.
    #[schema(example = "evt_01J9ZQ4W5X8K3M2N7P6R4T1V0A")]
    id: String,
    /// The name it was sent with.
    #[schema(example = "doorbell")]
    name: String,
    #[schema(value_type = MediaTypeName, inline)]
    media_type: String,
    /// Bytes of the event's file.
    size: u64,
    /// A thumbnail was sent, or media processing made one.
    has_thumbnail: bool,
    /// ISO 8601, UTC, milliseconds (for a harvested event, the `created` of the device's index).
    #[schema(example = "2026-01-01T00:00:00.000Z")]
    created: String,
    /// Ferry has the file (`false` for a harvested event not pulled yet).
    pulled: bool,
    /// As sent, or sniffed from the bytes.
    #[schema(example = "image/jpeg")]
    content_type: String,
    /// The upload's `metadata` field, when it was sent: any JSON value.
    #[schema(required = false)]
    metadata: Value,
    /// Media processing results: only for pulled events.
    #[serde(flatten)]
    media: crate::http::media_info::MediaFields,
}

// Schema only: `crate::domain::MediaType` as it serialises.
/// An event as the family lists it (extra fields allowed), with what media processing
/// learnt about its file (`info`): a generated thumbnail counts for `has_thumbnail`.
/// Described by [`GalleryEvent`].
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
    match event.sha256 {
        Some(_) => crate::http::media_info::add_media_fields(&mut item, info),
        None => item["has_rendition"] = json!(false),
    }
    item
}
