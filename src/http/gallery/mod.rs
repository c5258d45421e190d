//! Device gallery family (API.md §4) under `/api/gallery/:device`: a device's events
//! (its media, newest first), uploads, signed upload URLs, stats, watched folders and pull.

mod answers;
mod events;

pub use answers::GalleryStats;
pub use events::device_stats;
mod pull;
mod upload;

use axum::extract::DefaultBodyLimit;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Family};
use super::media_info::MediaFieldsOf;
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
    crate::gallery::find_device(state.catalog.as_ref(), principal.user(), raw).await?.ok_or_else(|| no_such_device(raw))
}

/// The answer for a `:device` the caller has not got.
fn no_such_device(raw: &str) -> ApiError {
    ApiError::new(ErrorCode::NoSuchDevice, format!("no device '{raw}' in this account"))
}

// Schema only: `EventAnswer` below writes this JSON, and `media_info::MediaFieldsOf` adds the
// media fields, copied from what media processing stored; keep the three in step.
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

/// An event as the family lists it (extra fields allowed), with what media processing
/// learnt about its file (`info`): a generated thumbnail counts for `has_thumbnail`.
/// Described by [`GalleryEvent`]; serialised straight into the answer.
pub struct EventAnswer<'a> {
    pub event: &'a Event,
    pub info: Option<&'a MediaInfo>,
}

impl Serialize for EventAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.event;
        let generated = self.info.is_some_and(|i| i.thumbnail_sha256.is_some());
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &event.id)?;
        map.serialize_entry("name", &event.name)?;
        map.serialize_entry("media_type", &event.media_type)?;
        map.serialize_entry("size", &event.size)?;
        map.serialize_entry("has_thumbnail", &(event.thumbnail_sha256.is_some() || generated))?;
        map.serialize_entry("created", &iso(event.created_ms))?;
        map.serialize_entry("pulled", &event.sha256.is_some())?;
        map.serialize_entry("content_type", &event.content_type)?;
        if let Some(metadata) = &event.metadata {
            map.serialize_entry("metadata", metadata)?;
        }
        match event.sha256 {
            Some(_) => MediaFieldsOf(self.info).write_into(&mut map)?,
            None => map.serialize_entry("has_rendition", &false)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::{MediaStatus, Rendition};
    use crate::domain::{DeviceId, MediaType, Sha256Hex, UserId};

    fn event(pulled: bool, metadata: Option<Value>) -> Event {
        Event {
            id: "evt_1".into(),
            user_id: UserId(1),
            device_id: DeviceId(2),
            name: "doorbell".into(),
            media_type: MediaType::Image,
            content_type: "image/jpeg".into(),
            sha256: pulled.then(|| Sha256Hex::of(b"photo")),
            size: 5,
            thumbnail_sha256: None,
            metadata,
            source_name: None,
            created_ms: 1_767_225_600_000,
        }
    }

    fn answer(event: &Event, info: Option<&MediaInfo>) -> Value {
        serde_json::to_value(EventAnswer { event, info }).unwrap()
    }

    #[test]
    fn events_are_written_with_exactly_the_fields_of_their_state() {
        let common = json!({"id": "evt_1", "name": "doorbell", "media_type": "image", "size": 5,
            "created": "2026-01-01T00:00:00.000Z", "content_type": "image/jpeg"});
        let with = |extra: Value| {
            let mut whole = common.clone();
            whole.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            whole
        };
        // not pulled: no media fields but has_rendition; metadata as sent, null included
        assert_eq!(
            answer(&event(false, Some(json!({"a": 1}))), None),
            with(json!({"has_thumbnail": false, "pulled": false, "metadata": {"a": 1}, "has_rendition": false}))
        );
        assert_eq!(answer(&event(false, Some(Value::Null)), None)["metadata"], Value::Null);
        assert!(answer(&event(false, None), None).get("metadata").is_none());
        // pulled, not processed yet
        assert_eq!(
            answer(&event(true, None), None),
            with(json!({"has_thumbnail": false, "pulled": true, "has_rendition": false, "media_status": "pending"}))
        );
        // processed: the facts, the camera ones also under exif, everything under media
        let meta = json!({"kind": "image", "width": 40, "height": 30, "captured": "2024-05-01T12:30:05",
            "make": "FerryCam", "orientation": 6});
        let done = MediaInfo {
            sha256: Sha256Hex::of(b"photo"),
            status: MediaStatus::Done,
            metadata: Some(meta.clone()),
            thumbnail_sha256: Some(Sha256Hex::of(b"thumb")),
            error: None,
            updated_ms: 0,
            rendition: Some(Rendition { sha256: Sha256Hex::of(b"r"), content_type: "image/jpeg".into(), size: 9 }),
        };
        assert_eq!(
            answer(&event(true, None), Some(&done)),
            with(json!({"has_thumbnail": true, "pulled": true, "has_rendition": true,
                "rendition": {"content_type": "image/jpeg", "size": 9}, "media_status": "done",
                "width": 40, "height": 30, "captured": "2024-05-01T12:30:05",
                "exif": {"make": "FerryCam", "orientation": 6}, "media": meta}))
        );
        // failed, without camera facts: no exif object
        let failed = MediaInfo {
            status: MediaStatus::Failed,
            error: Some("not a readable jpg".into()),
            metadata: Some(json!({"kind": "image"})),
            thumbnail_sha256: None,
            rendition: None,
            ..done
        };
        assert_eq!(
            answer(&event(true, None), Some(&failed)),
            with(json!({"has_thumbnail": false, "pulled": true, "has_rendition": false, "media_status": "failed",
                "media_error": "not a readable jpg", "media": {"kind": "image"}}))
        );
    }
}
