//! How media processing results show in the families' JSON, as extra fields (every family
//! allows them): `captured`, `width`, `height`, `duration`, `codec`, camera facts under
//! `exif`, everything under `media`, `media_status` (`pending` until the job has run, then
//! `done` or `failed` with `media_error`), and `has_rendition` with the playable
//! `rendition`'s `content_type` and `size` when there is one.

use std::collections::HashMap;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::catalog::{CatalogError, MediaInfo, MediaResults, MediaStatus, Rendition};
use crate::domain::Sha256Hex;

/// Results for a batch of contents (one catalog query), by hash.
pub async fn media_infos<'a>(
    catalog: &dyn MediaResults,
    hashes: impl IntoIterator<Item = &'a Sha256Hex>,
) -> Result<HashMap<Sha256Hex, MediaInfo>, CatalogError> {
    let mut wanted: Vec<Sha256Hex> = hashes.into_iter().cloned().collect();
    wanted.sort();
    wanted.dedup();
    Ok(catalog.media_info(&wanted).await?.into_iter().map(|info| (info.sha256.clone(), info)).collect())
}

// Schema only: `add_media_fields` below writes these fields into an item's JSON from what
// media processing stored (`media::Metadata`); keep them in step. Flatten it into an item's
// schema (`#[serde(flatten)]`). None is required: a family adds them only to some items.
/// What media processing learnt about an item's file.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaFields {
    /// `pending` until the media job has run, then `done` or `failed`.
    #[schema(required = false)]
    media_status: MediaStatusName,
    /// Why processing failed, or why there is no thumbnail.
    #[schema(required = false)]
    media_error: String,
    /// Capture time, ISO 8601: with its offset when the file records one, else the camera's
    /// local time without a zone.
    #[schema(required = false, example = "2023-07-14T15:16:17+02:00")]
    captured: String,
    /// Pixels, as displayed (the orientation applied).
    #[schema(required = false)]
    width: u32,
    #[schema(required = false)]
    height: u32,
    /// Seconds (videos).
    #[schema(required = false)]
    duration: f64,
    /// The video stream's codec (videos).
    #[schema(required = false)]
    codec: String,
    /// Camera facts, when the file records any.
    #[schema(required = false)]
    exif: MediaExif,
    /// Everything media processing recorded (`kind`, `format`, the fields above, …).
    #[schema(required = false, value_type = Object)]
    media: Map<String, Value>,
    /// Ferry made a playable rendition of the file (a video a browser cannot play, a HEIF photo).
    #[schema(required = false)]
    has_rendition: bool,
    /// The rendition, when `has_rendition`.
    #[schema(required = false)]
    rendition: RenditionFacts,
}

/// A playable rendition: `video/mp4` (H.264/AAC) or `image/jpeg`.
#[derive(Serialize, ToSchema)]
pub struct RenditionFacts {
    #[schema(example = "video/mp4")]
    content_type: String,
    size: u64,
}

impl From<&Rendition> for RenditionFacts {
    fn from(rendition: &Rendition) -> Self {
        RenditionFacts { content_type: rendition.content_type.clone(), size: rendition.size }
    }
}

// Schema only, as `MediaFields`.
/// Where media processing has got with a file.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MediaStatusName {
    Pending,
    Done,
    Failed,
}

// Schema only, as `MediaFields`.
/// Camera facts from the file's EXIF.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaExif {
    #[schema(required = false, example = "FerryCam")]
    make: String,
    #[schema(required = false, example = "FC-1")]
    model: String,
    #[schema(required = false)]
    lens: String,
    /// EXIF orientation, 1–8 (1 = upright).
    #[schema(required = false, example = 6)]
    orientation: u16,
    #[schema(required = false)]
    gps: MediaGps,
}

// Schema only, as `MediaFields`.
/// A position: degrees (north and east positive) and metres above sea level.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaGps {
    #[schema(example = 48.8584)]
    lat: f64,
    #[schema(example = 2.2945)]
    lon: f64,
    #[schema(required = false)]
    alt: f64,
}

/// The media fields of `info` (or `media_status: pending` without one), serialised as a map:
/// written straight into an answer (flattened into it, or by [`MediaFieldsOf::write_into`]),
/// without a `serde_json::Value` built in between.
#[derive(Clone, Copy)]
pub struct MediaFieldsOf<'a>(pub Option<&'a MediaInfo>);

const TOP_LEVEL: [&str; 5] = ["captured", "width", "height", "duration", "codec"];
const CAMERA: [&str; 5] = ["make", "model", "lens", "orientation", "gps"];

impl MediaFieldsOf<'_> {
    /// Writes the fields into a map being serialised.
    pub fn write_into<M: SerializeMap>(self, map: &mut M) -> Result<(), M::Error> {
        let rendition = self.0.and_then(|i| i.rendition.as_ref());
        map.serialize_entry("has_rendition", &rendition.is_some())?;
        if let Some(rendition) = rendition {
            map.serialize_entry("rendition", &RenditionFacts::from(rendition))?;
        }
        let Some(info) = self.0 else { return map.serialize_entry("media_status", "pending") };
        let status = match info.status {
            MediaStatus::Done => "done",
            MediaStatus::Failed => "failed",
        };
        map.serialize_entry("media_status", status)?;
        if let Some(error) = &info.error {
            map.serialize_entry("media_error", error)?;
        }
        let Some(Value::Object(meta)) = &info.metadata else { return Ok(()) };
        for key in TOP_LEVEL {
            if let Some(value) = meta.get(key) {
                map.serialize_entry(key, value)?;
            }
        }
        if CAMERA.iter().any(|key| meta.contains_key(*key)) {
            map.serialize_entry("exif", &CameraFacts(meta))?;
        }
        map.serialize_entry("media", meta)
    }
}

impl Serialize for MediaFieldsOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.write_into(&mut map)?;
        map.end()
    }
}

/// The camera facts among what media processing recorded (`exif` in an answer).
struct CameraFacts<'a>(&'a Map<String, Value>);

impl Serialize for CameraFacts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for key in CAMERA {
            if let Some(value) = self.0.get(key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Adds the fields of `info` (or `media_status: pending` without one) to a JSON object.
pub fn add_media_fields(object: &mut Value, info: Option<&MediaInfo>) {
    let Some(object) = object.as_object_mut() else { return };
    if let Ok(Value::Object(fields)) = serde_json::to_value(MediaFieldsOf(info)) {
        object.extend(fields);
    }
}
