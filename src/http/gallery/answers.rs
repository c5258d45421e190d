//! What the gallery family answers and reads, as typed bodies described in `/openapi.json`.
//! The family's JSON is written with sorted keys (as `serde_json`'s maps write them), so the
//! fields of each answer are declared in that order: the bytes stay the same.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::MediaType;
use crate::http::openapi::Binary;

/// `{success: true}`.
#[derive(Serialize, ToSchema)]
pub struct GallerySuccess {
    /// Always `true` (a refusal carries `false`).
    pub success: bool,
}

/// An event was added, or its file is there: `{success: true, eventId}`.
#[derive(Serialize, ToSchema)]
pub struct GalleryEventAdded {
    /// The event's id: `evt_` and a ULID.
    #[serde(rename = "eventId")]
    #[schema(example = "evt_01J9ZQ4W5X8K3M2N7P6R4T1V0A")]
    pub event_id: String,
    /// Always `true`.
    pub success: bool,
}

impl GalleryEventAdded {
    pub fn new(event_id: impl Into<String>) -> Self {
        Self { event_id: event_id.into(), success: true }
    }
}

/// A pull still running after `FERRY_PULL_WAIT`: it continues in the background.
#[derive(Serialize, ToSchema)]
pub struct GalleryPullRunning {
    #[serde(rename = "eventId")]
    #[schema(example = "evt_01J9ZQ4W5X8K3M2N7P6R4T1V0A")]
    pub event_id: String,
    /// Always `running`.
    #[schema(example = "running")]
    pub status: &'static str,
    /// Always `true`.
    pub success: bool,
}

/// The server folders watched for a device.
#[derive(Serialize, ToSchema)]
pub struct GalleryPaths {
    pub paths: GalleryFolders,
    /// Always `true`.
    pub success: bool,
}

/// Absolute paths on the server, created when asked.
#[derive(Serialize, ToSchema)]
pub struct GalleryFolders {
    /// A file dropped here becomes an event once it stops changing.
    #[schema(example = "/srv/ferry-data/gallery/1/1/incoming")]
    pub incoming: String,
    /// `<name>.jpg` here becomes the thumbnail of the event named `<name>`.
    #[schema(example = "/srv/ferry-data/gallery/1/1/thumbnails")]
    pub thumbnails: String,
}

/// A device's events counted (deleted ones left out; sizes count the files, not thumbnails).
#[derive(Serialize, ToSchema)]
pub struct GalleryStats {
    pub by_type: GalleryByType,
    pub total_events: u64,
    pub total_size: u64,
}

/// Every media type, each present (zero when the device has none of it).
#[derive(Default, Serialize, ToSchema)]
pub struct GalleryByType {
    pub audio: GalleryTypeCount,
    pub document: GalleryTypeCount,
    pub image: GalleryTypeCount,
    pub other: GalleryTypeCount,
    pub video: GalleryTypeCount,
}

impl GalleryByType {
    pub fn of(&mut self, media_type: MediaType) -> &mut GalleryTypeCount {
        match media_type {
            MediaType::Audio => &mut self.audio,
            MediaType::Document => &mut self.document,
            MediaType::Image => &mut self.image,
            MediaType::Other => &mut self.other,
            MediaType::Video => &mut self.video,
        }
    }
}

#[derive(Default, Serialize, ToSchema)]
pub struct GalleryTypeCount {
    pub count: u64,
    /// Bytes of the events' files.
    pub size: u64,
}

/// Signed PUT URLs for a new event's file and, when asked, its thumbnail.
#[derive(Serialize, ToSchema)]
pub struct GalleryUploadUrls {
    /// Always `true`.
    pub success: bool,
    /// PUT the thumbnail here, after the file; only with `thumbnail=true` or `thumbnail=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub thumbnail_upload_url: Option<String>,
    /// PUT the file here: it creates the event, named `filename`, with the PUT's Content-Type.
    pub upload_url: String,
}

/// A harvest of the device's index.
#[derive(Serialize, ToSchema)]
pub struct GalleryHarvested {
    /// Events created for names not seen before (listed with `pulled: false`).
    pub created: usize,
    /// Always `true`.
    pub success: bool,
}

// Schema only: `upload::read_form` reads these parts, in any order, from the stream.
/// The form of `POST …/upload`; its fields may come in any order.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GalleryUploadForm {
    /// One line of text (a control character is refused with `invalid_name`).
    name: String,
    /// The media.
    event: Binary,
    /// A thumbnail of at most 8 MiB (or `FERRY_MAX_UPLOAD_SIZE` if smaller).
    #[schema(required = false)]
    thumbnail: Binary,
    /// `image`, `video`, `audio`, `document` or `other`; by default sniffed from the bytes.
    #[schema(required = false)]
    media_type: String,
    /// A JSON value, listed back as the event's `metadata`.
    #[schema(required = false, example = "{\"zone\":2}")]
    metadata: String,
    /// `true`, `false`, `1` or `0`; the thumbnail itself decides what listings say.
    #[schema(required = false)]
    has_thumbnail: String,
}
