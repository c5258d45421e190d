//! The upload-session family's library and the device gallery's events.

use serde::Serialize;

use super::BlobRecord;

use crate::domain::{DeviceId, MediaType, Sha256Hex, UserId};

/// A folder of a user's library (session family `folder_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub id: i64,
    pub user_id: UserId,
    pub key: String,
}

/// Options of a new upload session.
#[derive(Debug, Clone, Default)]
pub struct SessionLimits {
    pub max_filesize: Option<u64>,
    pub max_files: Option<u64>,
    pub max_size: Option<u64>,
    /// Lowercase extensions without dots; `None` = any.
    pub file_extensions: Option<Vec<String>>,
    pub no_transcode: bool,
    pub hide_response: bool,
    pub autofinish: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub ulid: String,
    pub user_id: UserId,
    pub folder: Folder,
    pub limits: SessionLimits,
    pub reserved_files: u64,
    pub reserved_bytes: u64,
    pub finished: bool,
    pub expires_ms: i64,
}

/// Why a session refused a file slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    Missing,
    Finished,
    Expired,
    TooManyFiles,
}

/// A file in a user's library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryFile {
    pub file_id: String,
    pub user_id: UserId,
    pub folder_key: String,
    pub session_ulid: Option<String>,
    pub title: String,
    pub sha256: Sha256Hex,
    pub size: u64,
    pub content_type: String,
    pub created_ms: i64,
}

/// What a new library file records.
#[derive(Debug, Clone)]
pub struct NewLibraryFile {
    pub user_id: UserId,
    pub folder_id: i64,
    pub session_ulid: Option<String>,
    pub job_id: Option<i64>,
    pub watch_key: Option<String>,
    pub title: String,
    pub blob: BlobRecord,
    pub content_type: String,
}

/// A device gallery event: one of a device's media, with or without its bytes yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub name: String,
    pub media_type: MediaType,
    pub content_type: String,
    /// `None` until the bytes are there (a harvested event waiting to be pulled).
    pub sha256: Option<Sha256Hex>,
    pub size: u64,
    pub thumbnail_sha256: Option<Sha256Hex>,
    pub metadata: Option<serde_json::Value>,
    pub source_name: Option<String>,
    pub created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub name: String,
    pub media_type: MediaType,
    pub content_type: String,
    pub blob: Option<BlobRecord>,
    /// The file's size: the blob's, or the size a device index declared.
    pub size: u64,
    pub thumbnail: Option<BlobRecord>,
    pub metadata: Option<serde_json::Value>,
    pub source_name: Option<String>,
    pub watch_key: Option<String>,
    pub created_ms: i64,
}

/// Events of one media type (not deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeStats {
    pub media_type: MediaType,
    pub count: u64,
    pub size: u64,
}
