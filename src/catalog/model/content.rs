//! Stored content and the device family's media items that name it, with what media
//! processing learnt about it.

use serde::Serialize;

use crate::domain::{DeviceId, Sha256Hex, UserId, VolumeId, chunk_size_for};

/// A stored blob: content keyed by SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRecord {
    pub sha256: Sha256Hex,
    pub size: u64,
    /// The chunked top-hash of API.md §1 for blobs over 16 MiB; `None` when it equals
    /// `sha256` (16 MiB or less) or is not known yet: content over 16 MiB that did not come
    /// through the device family gets it from a background job (API.md §5).
    pub chunked_hash: Option<Sha256Hex>,
}

impl BlobRecord {
    /// The hash device clients name this content by (API.md §1 `file_hash`): the chunked
    /// top-hash above 16 MiB, else the SHA-256; `None` while a top-hash is not computed yet.
    /// The one place that rule is applied to a blob.
    pub fn device_hash(&self) -> Option<&Sha256Hex> {
        match &self.chunked_hash {
            Some(top) => Some(top),
            None => (chunk_size_for(self.size) == 0).then_some(&self.sha256),
        }
    }

    /// Content over 16 MiB whose device top-hash is still to be computed.
    pub fn lacks_device_hash(&self) -> bool {
        self.device_hash().is_none()
    }
}

/// A media item as stored (device family: a path in a volume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaItem {
    pub media_id: i64,
    pub volume_id: VolumeId,
    pub media_path: String,
    pub sha256: Sha256Hex,
    pub file_hash: Sha256Hex,
    pub file_size: u64,
    pub ctime: Option<String>,
    pub mtime: Option<String>,
    pub is_deleted: bool,
    pub last_updated_ms: i64,
    pub last_updated_user_id: UserId,
    pub last_updated_device_id: Option<DeviceId>,
    pub change_seq: i64,
}

/// Who made a change.
#[derive(Debug, Clone, Copy)]
pub struct Updater {
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
}

/// The content and times a media write sets.
#[derive(Debug, Clone)]
pub struct MediaContent {
    pub blob: BlobRecord,
    pub ctime: Option<String>,
    pub mtime: Option<String>,
}

impl MediaContent {
    /// The `file_hash` the item is recorded with. Devices name content by it, so content
    /// found for a media write always has it; content without one is refused, not recorded
    /// under a hash no device would name.
    pub fn file_hash(&self) -> Result<&Sha256Hex, crate::catalog::CatalogError> {
        self.blob.device_hash().ok_or_else(|| {
            crate::catalog::CatalogError::NotFound(format!("the device hash of content {}", self.blob.sha256))
        })
    }
}

/// What creating a media item at a path did.
#[derive(Debug, Clone)]
pub enum MediaCreated {
    /// A new item, or a deleted one revived with this content.
    Created(i64),
    /// The path already holds this content.
    Existing(i64),
    /// The path holds other content: the current state.
    Conflict(MediaItem),
}

/// What updating a media item did.
#[derive(Debug, Clone)]
pub enum MediaUpdated {
    Updated,
    NotFound,
    /// `expected_last_updated` did not match: the current state.
    Stale(MediaItem),
}

/// Whether processing a blob's media worked (`blob_media.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaStatus {
    Done,
    /// The bytes could not be understood (broken, hostile, too large); `error` says why.
    Failed,
}

impl MediaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaStatus::Done => "done",
            MediaStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [MediaStatus::Done, MediaStatus::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// What media processing learnt about one blob, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMediaInfo {
    pub sha256: Sha256Hex,
    pub status: MediaStatus,
    /// A JSON object (see `media::Metadata`).
    pub metadata: Option<serde_json::Value>,
    /// Why processing failed, or why there is no thumbnail.
    pub error: Option<String>,
}

/// What media processing learnt about one blob, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaInfo {
    pub sha256: Sha256Hex,
    pub status: MediaStatus,
    pub metadata: Option<serde_json::Value>,
    /// The generated thumbnail (a JPEG blob), if one could be made.
    pub thumbnail_sha256: Option<Sha256Hex>,
    pub error: Option<String>,
    pub updated_ms: i64,
    /// The playable rendition made of the blob, once there is one.
    pub rendition: Option<Rendition>,
}

/// A playable rendition of content (an H.264/AAC MP4 of a video, a JPEG of a HEIF photo):
/// itself a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendition {
    pub sha256: Sha256Hex,
    pub content_type: String,
    pub size: u64,
}

/// A content's rendition job result, to be recorded: `Done` with the rendition's content
/// type (its blob goes beside), or `Failed` with why.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRendition {
    pub sha256: Sha256Hex,
    pub status: MediaStatus,
    pub content_type: Option<String>,
    pub error: Option<String>,
}

/// A content's rendition job result, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenditionResult {
    pub status: MediaStatus,
    pub rendition: Option<Rendition>,
    pub error: Option<String>,
}
