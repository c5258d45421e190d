//! Rows of the catalog as the rest of Ferry sees them. Serialised field names are the
//! admin CLI's JSON contract.

use serde::Serialize;

use crate::domain::{
    DeviceId, GrantId, JobKind, Level, MediaPath, MediaType, Name, ScopeSet, Sha256Hex, TokenId, UserId, VolumeId,
};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub user_id: UserId,
    pub name: String,
    pub level: Level,
}

/// An API token's record; the secret itself is never stored, only its hash.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub token_id: TokenId,
    pub user_id: UserId,
    pub scopes: ScopeSet,
    pub is_revoked: bool,
    pub created: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub device_id: DeviceId,
    pub device_name: String,
    pub user_id: UserId,
    pub upload_priority: i64,
    pub is_disabled: bool,
    pub is_upload_disabled: bool,
    pub is_download_disabled: bool,
    /// Gallery pull source: an HTTP base serving `index.json` and the files.
    pub pull_url: Option<String>,
}

/// A device switch the admin CLI can flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFlag {
    Disabled,
    UploadDisabled,
    DownloadDisabled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub volume_id: VolumeId,
    pub name: String,
    pub user_id: UserId,
}

#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    #[serde(serialize_with = "id_as_string")]
    pub media_grant_id: GrantId,
    pub grant_name: String,
    pub device_id: DeviceId,
    pub volume_id: VolumeId,
    pub prefix_path: MediaPath,
    pub is_disabled: bool,
    pub volume_encryption_key: Option<String>,
}

fn id_as_string<S: serde::Serializer>(id: &GrantId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// How a command names a device: `USER/NAME`, an id, or a name unique across users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    Id(DeviceId),
    Qualified { user: String, device: String },
    Name(String),
}

impl DeviceRef {
    pub fn parse(raw: &str) -> Self {
        if let Ok(id) = raw.parse() {
            return DeviceRef::Id(id);
        }
        match raw.split_once('/') {
            Some((user, device)) => DeviceRef::Qualified { user: user.into(), device: device.into() },
            None => DeviceRef::Name(raw.into()),
        }
    }
}

/// What a new user, device, … is created with.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub user_id: UserId,
    pub name: Name,
    pub key_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewGrant {
    pub device_id: DeviceId,
    pub volume_id: VolumeId,
    pub prefix_path: MediaPath,
    pub name: String,
}

/// A stored blob: content keyed by SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRecord {
    pub sha256: Sha256Hex,
    pub size: u64,
    /// The chunked top-hash of API.md §1 for blobs over 16 MiB; `None` when it equals `sha256`.
    pub chunked_hash: Option<Sha256Hex>,
}

impl BlobRecord {
    /// The hash device clients name this content by (API.md §1 `file_hash`): the chunked
    /// top-hash above 16 MiB, else the SHA-256. The one place that rule is applied to a blob.
    pub fn device_hash(&self) -> &Sha256Hex {
        self.chunked_hash.as_ref().unwrap_or(&self.sha256)
    }
}

/// A queued background job. Its payload keeps what the job needs, secrets included (a
/// remote import's URL with its password); serialising or debug-printing a job shows URL
/// passwords as `***` ([`crate::redact`]), so no output path shows them.
#[derive(Clone, Serialize)]
pub struct Job {
    pub job_id: i64,
    pub kind: JobKind,
    #[serde(serialize_with = "crate::redact::serialize_json")]
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub attempts: i64,
    #[serde(serialize_with = "crate::redact::serialize_text")]
    pub last_error: Option<String>,
    /// A stable code for a failure callers act on (see [`JobOutcome::Refused`]).
    pub failure_code: Option<String>,
    /// The account the job works for (its fair share of a kind's workers).
    pub owner_id: Option<UserId>,
    pub run_after: String,
    pub updated: String,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("job_id", &self.job_id)
            .field("kind", &self.kind)
            .field("payload", &crate::redact::json_url_passwords(&self.payload))
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error.as_deref().map(crate::redact::url_passwords))
            .field("failure_code", &self.failure_code)
            .field("owner_id", &self.owner_id)
            .field("run_after", &self.run_after)
            .field("updated", &self.updated)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [JobStatus::Pending, JobStatus::Running, JobStatus::Done, JobStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// How a claimed job ended.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Done,
    /// Retry after the given delay, unless attempts are exhausted (then `Failed`).
    Retry {
        error: String,
        after: std::time::Duration,
    },
    Failed {
        error: String,
    },
    /// Failed for a reason callers act on: `code` is stable (e.g. `gone_from_device`).
    Refused {
        code: crate::domain::ErrorCode,
        error: String,
    },
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

/// Which API family a transfer in parts belongs to (`uploads.family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadFamily {
    /// The device family's chunked multipart (API.md §1).
    Device,
    /// The presigned multipart family (API.md §2), including its single-PUT files.
    Multipart,
}

impl UploadFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadFamily::Device => "device",
            UploadFamily::Multipart => "multipart",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [UploadFamily::Device, UploadFamily::Multipart].into_iter().find(|f| f.as_str() == raw)
    }
}

/// A new transfer in parts.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub upload_id: String,
    pub family: UploadFamily,
    pub user_id: UserId,
    pub grant_id: Option<GrantId>,
    pub file_key: Option<String>,
    pub file_size: Option<u64>,
    pub file_hash: Option<Sha256Hex>,
    pub part_count: Option<u32>,
    pub content_type: Option<String>,
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub upload_id: String,
    pub family: UploadFamily,
    pub user_id: UserId,
    pub grant_id: Option<GrantId>,
    pub file_key: Option<String>,
    pub file_size: Option<u64>,
    pub file_hash: Option<Sha256Hex>,
    pub part_count: Option<u32>,
    pub content_type: Option<String>,
    pub completed: bool,
    /// The completion's answer, replayed when completion is repeated.
    pub result: Option<serde_json::Value>,
    /// The completed file's content.
    pub sha256: Option<Sha256Hex>,
    pub size: Option<u64>,
    pub expires_ms: i64,
}

/// What claiming an upload for completion found.
#[derive(Debug, Clone)]
pub enum CompletionClaim {
    /// This caller completes it; `token` ends the claim (release or complete).
    Claimed { upload: Upload, token: String },
    /// Another completion holds it; wait for its outcome.
    Busy(Upload),
    /// It is completed: its stored answer is the answer.
    Completed(Upload),
    /// It is gone (aborted or expired).
    Missing,
}

/// What claiming a one-time signed target found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetClaim {
    Claimed,
    Used,
    InFlight,
}

/// One received part, staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub part_num: u32,
    pub staging_key: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub etag: String,
}

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
}
