//! Resolving `:media_grant_id` for a call, and the JSON shapes the family shares.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::catalog::{BlobRecord, DeviceRef, Grant, MediaInfo, MediaItem};
use crate::clock::iso;
use crate::domain::{ErrorCode, GrantId, MAX_BLOB_SIZE, MediaPath, Sha256Hex};
use crate::http::AppState;
use crate::http::error::ApiError;

/// The grant a call works through, checked: it is the calling device's (or, for a token,
/// one of the owner's devices') and it is enabled.
pub async fn mounted(state: &AppState, principal: &Principal, grant_id: &str) -> Result<Grant, ApiError> {
    let missing = || ApiError::new(ErrorCode::NoSuchGrant, format!("no media grant {grant_id} for this device"));
    let id: GrantId = grant_id.parse().map_err(|_| missing())?;
    let grant = state.catalog.grant(id).await?.ok_or_else(missing)?;
    let allowed = match principal {
        Principal::Device { device, .. } => grant.device_id == device.device_id,
        Principal::Token { user, .. } | Principal::Web { user, .. } => {
            let devices = state.catalog.find_devices(&DeviceRef::Id(grant.device_id)).await?;
            devices.first().is_some_and(|d| d.user_id == user.user_id)
        }
    };
    if !allowed {
        return Err(missing());
    }
    if grant.is_disabled {
        return Err(ApiError::new(ErrorCode::GrantDisabled, "this media grant is disabled"));
    }
    Ok(grant)
}

/// A `media_path` inside the grant: malformed → 400, outside `prefix_path` → 403.
pub fn path_in_grant(grant: &Grant, raw: &str) -> Result<MediaPath, ApiError> {
    let path = MediaPath::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.to_string()))?;
    if !path.is_under(&grant.prefix_path) {
        return Err(ApiError::new(
            ErrorCode::OutsideGrant,
            format!("{path} is outside this grant's prefix {}", grant.prefix_path),
        ));
    }
    Ok(path)
}

/// Whether an item is visible through the grant (its path is under the prefix).
pub fn visible(grant: &Grant, item: &MediaItem) -> bool {
    MediaPath::parse(&item.media_path).is_ok_and(|p| p.is_under(&grant.prefix_path))
}

pub fn parse_hash(raw: &str) -> Result<Sha256Hex, ApiError> {
    Sha256Hex::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidHash, e.to_string()))
}

/// `{file_hash, file_size}` as device clients send them.
#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceFileRef)]
pub struct FileRef {
    /// The family's hash of the file (API.md §1 "Hashing"): 64 lowercase hex characters.
    #[schema(example = "cf82d2d961ff699eda330edfa1bc8ec368d42d901582a9534af98acfd1cde208")]
    pub file_hash: String,
    #[schema(example = 11)]
    pub file_size: u64,
}

/// The family's `{}` answer.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceEmpty)]
pub struct Empty {}

impl FileRef {
    /// `file_size`, unless no file can have it: sizes are stored as i64 (API.md Conventions).
    pub fn size(&self) -> Result<u64, ApiError> {
        if self.file_size > MAX_BLOB_SIZE {
            return Err(ApiError::new(
                ErrorCode::InvalidSize,
                format!("file_size {} is larger than any file can be (at most {MAX_BLOB_SIZE})", self.file_size),
            ));
        }
        Ok(self.file_size)
    }
}

/// Content the account's quota has no room for (`room` bytes left): 413 `quota_exceeded`.
pub fn over_quota(room: i64) -> ApiError {
    let room = room.max(0);
    ApiError::new(ErrorCode::QuotaExceeded, format!("the account's quota has room for {room} more bytes"))
}

/// A declared size over the largest upload accepted (`FERRY_MAX_UPLOAD_SIZE`): no upload
/// can produce such content, so a reference to it is refused as such rather than as unknown.
pub fn over_limit(size: u64, limit: u64) -> ApiError {
    ApiError::new(ErrorCode::TooLarge, format!("file_size {size} exceeds the largest upload accepted ({limit} bytes)"))
        // a refused reference, not a refused body: 400 like the batch's other refusals
        .with_status(axum::http::StatusCode::BAD_REQUEST)
}

/// The content a file reference names, if the caller's account holds it (the dedup and
/// privacy rule of API.md: knowing a hash grants nothing); `None` when it does not. A size
/// no file can have, or one over the upload limit that the account does not hold, is a 400
/// saying so (content held from before the limit was lowered is still found).
pub async fn held_blob(
    state: &AppState,
    principal: &Principal,
    file: &FileRef,
) -> Result<Option<BlobRecord>, ApiError> {
    let size = file.size()?;
    let hash = parse_hash(&file.file_hash)?;
    let held = state.catalog.held_by_device_hash(principal.user().user_id, std::slice::from_ref(&hash)).await?;
    match held.into_iter().find(|b| b.size == size) {
        Some(blob) => Ok(Some(blob)),
        None if size > state.config.max_upload_size => Err(over_limit(size, state.config.max_upload_size)),
        None => Ok(None),
    }
}

/// [`held_blob`], answering content the account does not hold with 400 `unknown_content`.
pub async fn held_content(state: &AppState, principal: &Principal, file: &FileRef) -> Result<BlobRecord, ApiError> {
    held_blob(state, principal, file).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownContent,
            "this account holds no content with that file_hash and file_size; upload it first",
        )
    })
}

/// The full media object of the family, with what media processing learnt about its
/// content (`info`; extra fields).
pub fn media_json(item: &MediaItem, info: Option<&MediaInfo>) -> Value {
    let mut object = json!({
        "media_id": item.media_id,
        "media_path": item.media_path,
        "file_hash": item.file_hash,
        "file_size": item.file_size,
        "ctime": item.ctime,
        "mtime": item.mtime,
        "last_updated_user_id": item.last_updated_user_id,
        "last_updated_device_id": item.last_updated_device_id,
        "last_updated": iso(item.last_updated_ms),
        "is_deleted": item.is_deleted,
    });
    crate::http::media_info::add_media_fields(&mut object, info);
    object
}

// Schema only: `media_json` above builds this object as JSON (with
// `media_info::add_media_fields` adding what media processing learnt).
/// A media object: the item, plus what media processing learnt about its content.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DeviceMediaObject)]
pub struct MediaObject {
    media_id: i64,
    #[schema(example = "/hello.txt")]
    media_path: String,
    file_hash: String,
    file_size: u64,
    /// ISO 8601 UTC, or `null` when not given.
    #[schema(required = true)]
    ctime: Option<String>,
    /// ISO 8601 UTC, or `null` when not given.
    #[schema(required = true)]
    mtime: Option<String>,
    last_updated_user_id: i64,
    /// `null` when a token made the change.
    #[schema(required = true)]
    last_updated_device_id: Option<i64>,
    /// ISO 8601 UTC with milliseconds; `expected_last_updated` of an update.
    #[schema(example = "2026-01-01T00:00:00.000Z")]
    last_updated: String,
    is_deleted: bool,
    /// What media processing learnt (`media_status` always; the rest when known).
    #[serde(flatten)]
    processing: crate::http::media_info::MediaFields,
}

// Schema only: built by `ApiError::with_state` with the object `media_json_of` returns.
/// A refusal reporting the current item: the media object with `error` and `message`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = DeviceMediaConflict)]
pub struct MediaConflict {
    /// `path_conflict` or `stale_update`.
    error: String,
    message: String,
    #[serde(flatten)]
    current: MediaObject,
}

/// [`media_json`] of one item, looking its media result up.
pub async fn media_json_of(state: &AppState, item: &MediaItem) -> Result<Value, ApiError> {
    let info = state.catalog.media_info(std::slice::from_ref(&item.sha256)).await?.pop();
    Ok(media_json(item, info.as_ref()))
}

/// Client times: an ISO 8601 string (normalised to UTC), Unix seconds or milliseconds, or null.
pub fn parse_time(field: &str, value: &Value) -> Result<Option<String>, ApiError> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let bad = || ApiError::new(ErrorCode::InvalidTime, format!("{field} must be an ISO 8601 time or Unix seconds"));
    let ms = match value {
        Value::Null => return Ok(None),
        Value::String(s) => {
            let at = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?;
            (at.unix_timestamp_nanos() / 1_000_000) as i64
        }
        Value::Number(n) => {
            let n = n.as_i64().ok_or_else(bad)?;
            // values past year 33658 in seconds are taken as milliseconds
            if n.abs() >= 1_000_000_000_000 { n } else { n.checked_mul(1000).ok_or_else(bad)? }
        }
        _ => return Err(bad()),
    };
    Ok(Some(iso(ms)))
}

/// Parses an ISO 8601 time to Unix milliseconds.
pub fn parse_ms(field: &str, raw: &str) -> Result<i64, ApiError> {
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::new(ErrorCode::InvalidTime, format!("{field} must be an ISO 8601 time")))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}
