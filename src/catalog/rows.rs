//! Catalog rows as both backends read them: one `FromRow` struct per table and its
//! conversion into the model. The SQL differs per backend; the rows do not.

use crate::catalog::*;
use crate::clock::iso;
use crate::domain::{DeviceId, GrantId, Level, MediaPath, ScopeSet, Sha256Hex, TokenId, UserId, VolumeId};

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    name: String,
    level: String,
}
impl UserRow {
    pub(super) fn into_user(self) -> CatalogResult<User> {
        let level = self.level.parse::<Level>().map_err(|e| CatalogError::Schema(e.to_string()))?;
        Ok(User { user_id: UserId(self.id), name: self.name, level })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: i64,
    user_id: i64,
    scopes: String,
    revoked_ms: Option<i64>,
    created_ms: i64,
}
impl TokenRow {
    pub(super) fn into_record(self) -> CatalogResult<TokenRecord> {
        Ok(TokenRecord {
            token_id: TokenId(self.id),
            user_id: UserId(self.user_id),
            scopes: self.scopes.parse::<ScopeSet>().map_err(|e| CatalogError::Schema(e.to_string()))?,
            is_revoked: self.revoked_ms.is_some(),
            created: iso(self.created_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeviceRow {
    id: i64,
    user_id: i64,
    name: String,
    upload_priority: i64,
    is_disabled: bool,
    is_upload_disabled: bool,
    is_download_disabled: bool,
    pull_url: Option<String>,
}
impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Device {
            device_id: DeviceId(r.id),
            device_name: r.name,
            user_id: UserId(r.user_id),
            upload_priority: r.upload_priority,
            is_disabled: r.is_disabled,
            is_upload_disabled: r.is_upload_disabled,
            is_download_disabled: r.is_download_disabled,
            pull_url: r.pull_url,
        }
    }
}

/// The columns of a credential's owner, joined as `u` beside the credential: one round trip
/// authenticates a request instead of two.
pub(super) const OWNER_COLUMNS: &str = "u.name as owner_name, u.level as owner_level";

/// A token or device row with its owner's columns (`OWNER_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(super) struct WithOwner<T> {
    #[sqlx(flatten)]
    row: T,
    owner_name: String,
    owner_level: String,
}
impl<T> WithOwner<T> {
    fn owner(self, user_id: i64) -> CatalogResult<(T, User)> {
        let owner = UserRow { id: user_id, name: self.owner_name, level: self.owner_level }.into_user()?;
        Ok((self.row, owner))
    }
}
impl WithOwner<TokenRow> {
    pub(super) fn into_token(self) -> CatalogResult<(TokenRecord, User)> {
        let user_id = self.row.user_id;
        let (row, owner) = self.owner(user_id)?;
        Ok((row.into_record()?, owner))
    }
}
impl WithOwner<DeviceRow> {
    pub(super) fn into_device(self) -> CatalogResult<(Device, User)> {
        let user_id = self.row.user_id;
        let (row, owner) = self.owner(user_id)?;
        Ok((row.into(), owner))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    id: i64,
    device_id: i64,
    volume_id: i64,
    name: String,
    prefix_path: String,
    is_disabled: bool,
}
impl GrantRow {
    pub(super) fn into_grant(self) -> CatalogResult<Grant> {
        Ok(Grant {
            media_grant_id: GrantId(self.id),
            grant_name: self.name,
            device_id: DeviceId(self.device_id),
            volume_id: VolumeId(self.volume_id),
            prefix_path: MediaPath::parse_prefix(&self.prefix_path).map_err(|e| CatalogError::Schema(e.to_string()))?,
            is_disabled: self.is_disabled,
            volume_encryption_key: None,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    ulid: String,
    user_id: i64,
    folder_id: i64,
    folder_key: String,
    max_filesize: Option<i64>,
    max_files: Option<i64>,
    max_size: Option<i64>,
    file_extensions: Option<String>,
    no_transcode: bool,
    hide_response: bool,
    autofinish: bool,
    reserved_files: i64,
    reserved_bytes: i64,
    finished_ms: Option<i64>,
    expires_ms: i64,
}
impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            ulid: r.ulid,
            user_id: UserId(r.user_id),
            folder: Folder { id: r.folder_id, user_id: UserId(r.user_id), key: r.folder_key },
            limits: SessionLimits {
                max_filesize: r.max_filesize.map(|v| v as u64),
                max_files: r.max_files.map(|v| v as u64),
                max_size: r.max_size.map(|v| v as u64),
                file_extensions: r.file_extensions.map(|list| list.split(',').map(str::to_owned).collect()),
                no_transcode: r.no_transcode,
                hide_response: r.hide_response,
                autofinish: r.autofinish,
            },
            reserved_files: r.reserved_files as u64,
            reserved_bytes: r.reserved_bytes as u64,
            finished: r.finished_ms.is_some(),
            expires_ms: r.expires_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: String,
    user_id: i64,
    device_id: i64,
    name: String,
    media_type: String,
    content_type: String,
    sha256: Option<String>,
    size: i64,
    thumbnail_sha256: Option<String>,
    metadata: Option<String>,
    source_name: Option<String>,
    created_ms: i64,
}
impl EventRow {
    pub(super) fn into_event(self) -> CatalogResult<Event> {
        let schema = |e: String| CatalogError::Schema(e);
        let hash = |h: Option<String>| h.map(|h| Sha256Hex::parse(&h).map_err(|e| schema(e.to_string()))).transpose();
        Ok(Event {
            id: self.id,
            user_id: UserId(self.user_id),
            device_id: DeviceId(self.device_id),
            name: self.name,
            media_type: self.media_type,
            content_type: self.content_type,
            sha256: hash(self.sha256)?,
            size: self.size as u64,
            thumbnail_sha256: hash(self.thumbnail_sha256)?,
            metadata: self.metadata.map(|m| serde_json::from_str(&m)).transpose().map_err(|e| schema(e.to_string()))?,
            source_name: self.source_name,
            created_ms: self.created_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MediaRow {
    sha256: String,
    status: String,
    metadata: Option<String>,
    thumbnail_sha256: Option<String>,
    error: Option<String>,
    updated_ms: i64,
}
impl MediaRow {
    pub(super) fn into_info(self) -> CatalogResult<MediaInfo> {
        let schema = |e: String| CatalogError::Schema(e);
        let hash = |h: &str| Sha256Hex::parse(h).map_err(|e| schema(e.to_string()));
        Ok(MediaInfo {
            sha256: hash(&self.sha256)?,
            status: MediaStatus::parse(&self.status).ok_or_else(|| schema(format!("media status {}", self.status)))?,
            metadata: self.metadata.map(|m| serde_json::from_str(&m)).transpose().map_err(|e| schema(e.to_string()))?,
            thumbnail_sha256: self.thumbnail_sha256.as_deref().map(hash).transpose()?,
            error: self.error,
            updated_ms: self.updated_ms,
        })
    }
}

/// An event's columns (as `e`) and its file's media processing result (`blob_media` as `m`,
/// left-joined): the gallery listing reads both in one query.
pub(super) const EVENT_WITH_MEDIA_COLUMNS: &str = "e.id, e.user_id, e.device_id, e.name, e.media_type, e.content_type,
    e.sha256, e.size, e.thumbnail_sha256, e.metadata, e.source_name, e.created_ms,
    m.status as media_status, m.metadata as media_metadata, m.thumbnail_sha256 as media_thumbnail_sha256,
    m.error as media_error, m.updated_ms as media_updated_ms";

#[derive(sqlx::FromRow)]
pub(super) struct EventWithMediaRow {
    #[sqlx(flatten)]
    event: EventRow,
    media_status: Option<String>,
    media_metadata: Option<String>,
    media_thumbnail_sha256: Option<String>,
    media_error: Option<String>,
    media_updated_ms: Option<i64>,
}
/// [`EVENT_WITH_MEDIA_COLUMNS`] as one JSON array per event, in the same order: the SQLite
/// listing aggregates a whole page into one row of these (see `sqlite::gallery::list`).
pub(super) const EVENT_WITH_MEDIA_JSON_ARRAY: &str = "json_array(e.id, e.user_id, e.device_id, e.name, e.media_type,
    e.content_type, e.sha256, e.size, e.thumbnail_sha256, e.metadata, e.source_name, e.created_ms,
    m.status, m.metadata, m.thumbnail_sha256, m.error, m.updated_ms)";

/// One element of [`EVENT_WITH_MEDIA_JSON_ARRAY`].
#[derive(serde::Deserialize)]
#[allow(clippy::type_complexity, reason = "mirrors the column list one to one")]
pub(super) struct EventWithMediaArray(
    String,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

impl From<EventWithMediaArray> for EventWithMediaRow {
    fn from(a: EventWithMediaArray) -> Self {
        Self {
            event: EventRow {
                id: a.0,
                user_id: a.1,
                device_id: a.2,
                name: a.3,
                media_type: a.4,
                content_type: a.5,
                sha256: a.6,
                size: a.7,
                thumbnail_sha256: a.8,
                metadata: a.9,
                source_name: a.10,
                created_ms: a.11,
            },
            media_status: a.12,
            media_metadata: a.13,
            media_thumbnail_sha256: a.14,
            media_error: a.15,
            media_updated_ms: a.16,
        }
    }
}

impl EventWithMediaRow {
    pub(super) fn into_parts(self) -> CatalogResult<(Event, Option<MediaInfo>)> {
        let media = match (self.media_status, self.media_updated_ms, &self.event.sha256) {
            (Some(status), Some(updated_ms), Some(sha256)) => Some(
                MediaRow {
                    sha256: sha256.clone(),
                    status,
                    metadata: self.media_metadata,
                    thumbnail_sha256: self.media_thumbnail_sha256,
                    error: self.media_error,
                    updated_ms,
                }
                .into_info()?,
            ),
            _ => None,
        };
        Ok((self.event.into_event()?, media))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    run_after_ms: i64,
    updated_ms: i64,
}
impl JobRow {
    pub(super) fn into_job(self) -> CatalogResult<Job> {
        Ok(Job {
            job_id: self.id,
            kind: self.kind,
            payload: serde_json::from_str(&self.payload).map_err(|e| CatalogError::Schema(e.to_string()))?,
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| CatalogError::Schema(format!("job status {}", self.status)))?,
            attempts: self.attempts,
            last_error: self.last_error,
            run_after: iso(self.run_after_ms),
            updated: iso(self.updated_ms),
        })
    }
}
