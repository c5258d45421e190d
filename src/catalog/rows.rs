//! Catalog rows as the rest of Ferry sees them, decoded once for both backends: each kind of
//! row has its column list (with a table alias, so joins can put two side by side) and a
//! decoder reading those columns from a given position.

use super::db::Row;
use super::*;
use crate::clock::iso;
use crate::domain::{DeviceId, GrantId, JobKind, Level, MediaPath, ScopeSet, TokenId, UserId, VolumeId, WebSessionId};

fn schema(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Schema(e.to_string())
}

pub(super) const USER: &str = "u.id, u.name, u.level";

pub(super) fn user(row: &Row, at: usize) -> CatalogResult<User> {
    let level: String = row.get(at + 2)?;
    Ok(User { user_id: UserId(row.get(at)?), name: row.get(at + 1)?, level: level.parse::<Level>().map_err(schema)? })
}

pub(super) const TOKEN: &str = "t.id, t.user_id, t.scopes, t.revoked_ms, t.created_ms";

pub(super) fn token(row: &Row, at: usize) -> CatalogResult<TokenRecord> {
    let scopes: String = row.get(at + 2)?;
    Ok(TokenRecord {
        token_id: TokenId(row.get(at)?),
        user_id: UserId(row.get(at + 1)?),
        scopes: scopes.parse::<ScopeSet>().map_err(schema)?,
        is_revoked: row.get::<Option<i64>>(at + 3)?.is_some(),
        created: iso(row.get(at + 4)?),
    })
}

pub(super) const WEB_SESSION: &str = "w.id, w.user_id, w.scopes, w.via, w.created_ms, w.expires_ms, w.revoked_ms";
/// How many columns [`WEB_SESSION`] selects (a joined user's follow).
pub(super) const WEB_SESSION_COLUMNS: usize = 7;

pub(super) fn web_session(row: &Row, at: usize) -> CatalogResult<WebSession> {
    let scopes: String = row.get(at + 2)?;
    Ok(WebSession {
        session_id: WebSessionId(row.get(at)?),
        user_id: UserId(row.get(at + 1)?),
        scopes: scopes.parse::<ScopeSet>().map_err(schema)?,
        via: row.get(at + 3)?,
        created: iso(row.get(at + 4)?),
        expires: iso(row.get(at + 5)?),
        is_revoked: row.get::<Option<i64>>(at + 6)?.is_some(),
    })
}

pub(super) const DEVICE: &str = "d.id, d.user_id, d.name, d.upload_priority, d.is_disabled, d.is_upload_disabled, \
                                 d.is_download_disabled, d.pull_url";

pub(super) fn device(row: &Row, at: usize) -> CatalogResult<Device> {
    Ok(Device {
        device_id: DeviceId(row.get(at)?),
        user_id: UserId(row.get(at + 1)?),
        device_name: row.get(at + 2)?,
        upload_priority: row.get(at + 3)?,
        is_disabled: row.get(at + 4)?,
        is_upload_disabled: row.get(at + 5)?,
        is_download_disabled: row.get(at + 6)?,
        pull_url: row.get(at + 7)?,
    })
}

pub(super) const GRANT: &str = "g.id, g.device_id, g.volume_id, g.name, g.prefix_path, g.is_disabled";

pub(super) fn grant(row: &Row, at: usize) -> CatalogResult<Grant> {
    let prefix: String = row.get(at + 4)?;
    Ok(Grant {
        media_grant_id: GrantId(row.get(at)?),
        device_id: DeviceId(row.get(at + 1)?),
        volume_id: VolumeId(row.get(at + 2)?),
        grant_name: row.get(at + 3)?,
        prefix_path: MediaPath::parse_prefix(&prefix).map_err(schema)?,
        is_disabled: row.get(at + 5)?,
        volume_encryption_key: None,
    })
}

pub(super) const VOLUME: &str = "v.id, v.name, v.user_id";

pub(super) fn volume(row: &Row, at: usize) -> CatalogResult<Volume> {
    Ok(Volume { volume_id: VolumeId(row.get(at)?), name: row.get(at + 1)?, user_id: UserId(row.get(at + 2)?) })
}

pub(super) const BLOB: &str = "b.sha256, b.size, b.chunked_hash";

pub(super) fn blob(row: &Row, at: usize) -> CatalogResult<BlobRecord> {
    Ok(BlobRecord { sha256: row.get(at)?, size: row.get(at + 1)?, chunked_hash: row.get(at + 2)? })
}

pub(super) const MEDIA: &str = "m.id, m.volume_id, m.path, m.sha256, m.file_hash, m.size, m.ctime, m.mtime, \
                                m.is_deleted, m.last_updated_ms, m.last_updated_user_id, m.last_updated_device_id, \
                                m.change_seq";

pub(super) fn media_item(row: &Row, at: usize) -> CatalogResult<MediaItem> {
    Ok(MediaItem {
        media_id: row.get(at)?,
        volume_id: VolumeId(row.get(at + 1)?),
        media_path: row.get(at + 2)?,
        sha256: row.get(at + 3)?,
        file_hash: row.get(at + 4)?,
        file_size: row.get(at + 5)?,
        ctime: row.get(at + 6)?,
        mtime: row.get(at + 7)?,
        is_deleted: row.get(at + 8)?,
        last_updated_ms: row.get(at + 9)?,
        last_updated_user_id: UserId(row.get(at + 10)?),
        last_updated_device_id: row.get::<Option<i64>>(at + 11)?.map(DeviceId),
        change_seq: row.get(at + 12)?,
    })
}

pub(super) const UPLOAD: &str = "x.id, x.family, x.user_id, x.grant_id, x.file_key, x.file_size, x.file_hash, \
                                 x.part_count, x.content_type, x.state, x.result, x.sha256, x.size, x.expires_ms";

pub(super) fn upload(row: &Row, at: usize) -> CatalogResult<Upload> {
    let family: String = row.get(at + 1)?;
    let state: String = row.get(at + 9)?;
    Ok(Upload {
        upload_id: row.get(at)?,
        family: UploadFamily::parse(&family).ok_or_else(|| schema(format!("upload family {family}")))?,
        user_id: UserId(row.get(at + 2)?),
        grant_id: row.get::<Option<i64>>(at + 3)?.map(GrantId),
        file_key: row.get(at + 4)?,
        file_size: row.get(at + 5)?,
        file_hash: row.get(at + 6)?,
        part_count: row.get(at + 7)?,
        content_type: row.get(at + 8)?,
        completed: state == "completed",
        result: row.get(at + 10)?,
        sha256: row.get(at + 11)?,
        size: row.get(at + 12)?,
        expires_ms: row.get(at + 13)?,
    })
}

pub(super) const PART: &str = "p.part_num, p.staging_key, p.size, p.sha256, p.etag";

pub(super) fn part(row: &Row, at: usize) -> CatalogResult<Part> {
    Ok(Part {
        part_num: row.get(at)?,
        staging_key: row.get(at + 1)?,
        size: row.get(at + 2)?,
        sha256: row.get(at + 3)?,
        etag: row.get(at + 4)?,
    })
}

pub(super) const SESSION: &str = "s.ulid, s.user_id, s.folder_id, f.folder_key, s.max_filesize, s.max_files, \
                                  s.max_size, s.file_extensions, s.no_transcode, s.hide_response, s.autofinish, \
                                  s.reserved_files, s.reserved_bytes, s.finished_ms, s.expires_ms";

pub(super) fn session(row: &Row, at: usize) -> CatalogResult<Session> {
    let user_id = UserId(row.get(at + 1)?);
    let extensions: Option<String> = row.get(at + 7)?;
    Ok(Session {
        ulid: row.get(at)?,
        user_id,
        folder: Folder { id: row.get(at + 2)?, user_id, key: row.get(at + 3)? },
        limits: SessionLimits {
            max_filesize: row.get(at + 4)?,
            max_files: row.get(at + 5)?,
            max_size: row.get(at + 6)?,
            file_extensions: extensions.map(|list| list.split(',').map(str::to_owned).collect()),
            no_transcode: row.get(at + 8)?,
            hide_response: row.get(at + 9)?,
            autofinish: row.get(at + 10)?,
        },
        reserved_files: row.get(at + 11)?,
        reserved_bytes: row.get(at + 12)?,
        finished: row.get::<Option<i64>>(at + 13)?.is_some(),
        expires_ms: row.get(at + 14)?,
    })
}

pub(super) const FILE: &str =
    "x.id, x.user_id, f.folder_key, x.session_ulid, x.title, x.sha256, x.size, x.content_type, x.created_ms";

pub(super) fn library_file(row: &Row, at: usize) -> CatalogResult<LibraryFile> {
    Ok(LibraryFile {
        file_id: row.get(at)?,
        user_id: UserId(row.get(at + 1)?),
        folder_key: row.get(at + 2)?,
        session_ulid: row.get(at + 3)?,
        title: row.get(at + 4)?,
        sha256: row.get(at + 5)?,
        size: row.get(at + 6)?,
        content_type: row.get(at + 7)?,
        created_ms: row.get(at + 8)?,
    })
}

pub(super) const EVENT: &str = "e.id, e.user_id, e.device_id, e.name, e.media_type, e.content_type, e.sha256, \
                                e.size, e.thumbnail_sha256, e.metadata, e.source_name, e.created_ms";

/// How many columns [`EVENT`] selects.
pub(super) const EVENT_COLUMNS: usize = 12;

pub(super) fn event(row: &mut Row, at: usize) -> CatalogResult<Event> {
    Ok(Event {
        id: row.take(at)?,
        user_id: UserId(row.take(at + 1)?),
        device_id: DeviceId(row.take(at + 2)?),
        name: row.take(at + 3)?,
        media_type: row.take(at + 4)?,
        content_type: row.take(at + 5)?,
        sha256: row.take(at + 6)?,
        size: row.take(at + 7)?,
        thumbnail_sha256: row.take(at + 8)?,
        metadata: row.take(at + 9)?,
        source_name: row.take(at + 10)?,
        created_ms: row.take(at + 11)?,
    })
}

/// A processing result, read as `sha256` + the result columns (`bm` is `blob_media`) and its
/// rendition's (`br`, `rb`: joined by [`RENDITION_JOIN`]).
pub(super) const MEDIA_RESULT: &str = "bm.sha256, bm.status, bm.metadata, bm.thumbnail_sha256, bm.error, bm.updated_ms, \
                                       br.rendition_sha256, br.content_type, rb.size";

/// Joins `blob_media bm` to its content's rendition, when one was made.
pub(super) const RENDITION_JOIN: &str = "left join blob_renditions br on br.sha256 = bm.sha256 \
                                         and br.rendition_sha256 is not null \
                                         left join blobs rb on rb.sha256 = br.rendition_sha256";

/// A result from its columns; `None` when they are NULL (a left join found no row).
pub(super) fn media_result(row: &mut Row, at: usize) -> CatalogResult<Option<MediaInfo>> {
    let Some(sha256) = row.take::<Option<Sha256Hex>>(at)? else { return Ok(None) };
    let status: String = row.take(at + 1)?;
    Ok(Some(MediaInfo {
        sha256,
        status: MediaStatus::parse(&status).ok_or_else(|| schema(format!("media status {status}")))?,
        metadata: row.take(at + 2)?,
        thumbnail_sha256: row.take(at + 3)?,
        error: row.take(at + 4)?,
        updated_ms: row.take(at + 5)?,
        rendition: rendition(row, at + 6)?,
    }))
}

/// A rendition from `rendition_sha256, content_type, size` (NULLs: none).
pub(super) fn rendition(row: &mut Row, at: usize) -> CatalogResult<Option<Rendition>> {
    let (Some(sha256), Some(size)) = (row.take::<Option<Sha256Hex>>(at)?, row.take::<Option<u64>>(at + 2)?) else {
        return Ok(None);
    };
    let content_type = row.take::<Option<String>>(at + 1)?.unwrap_or_else(|| "application/octet-stream".into());
    Ok(Some(Rendition { sha256, content_type, size }))
}

pub(super) const JOB: &str = "j.id, j.kind, j.payload, j.status, j.attempts, j.last_error, j.run_after_ms, j.updated_ms, j.failure_code, j.owner_id";

pub(super) fn job(row: &Row, at: usize) -> CatalogResult<Job> {
    let status: String = row.get(at + 3)?;
    let kind: String = row.get(at + 1)?;
    Ok(Job {
        job_id: row.get(at)?,
        kind: JobKind::parse(&kind).ok_or_else(|| schema(format!("job kind {kind}")))?,
        payload: row.get(at + 2)?,
        status: JobStatus::parse(&status).ok_or_else(|| schema(format!("job status {status}")))?,
        attempts: row.get(at + 4)?,
        last_error: row.get(at + 5)?,
        run_after: iso(row.get(at + 6)?),
        updated: iso(row.get(at + 7)?),
        failure_code: row.get(at + 8)?,
        owner_id: row.get::<Option<i64>>(at + 9)?.map(UserId),
    })
}

pub(super) const TUS_UPLOAD: &str = "x.id, x.user_id, x.length, x.offset_bytes, x.metadata, x.concat, x.concat_parts, x.folder_key, \
                       x.device_id, x.file_name, x.file_type, x.expect_sha256, x.state, x.staging_key, \
                       x.staging_state, x.hash_state, x.head, x.sha256, x.chunked_hash, x.result, \
                       x.lease_until_ms, x.expires_ms";

pub(super) fn tus_upload(row: &Row, at: usize) -> CatalogResult<TusUpload> {
    let concat = match row.get::<Option<String>>(at + 5)?.as_deref() {
        None => None,
        Some("partial") => Some(TusConcat::Partial),
        Some("final") => {
            let parts: String = row.get::<Option<String>>(at + 6)?.unwrap_or_default();
            Some(TusConcat::Final(parts.split_whitespace().map(str::to_owned).collect()))
        }
        Some(other) => return Err(schema(format!("tus concat {other}"))),
    };
    let target = match (row.get::<Option<String>>(at + 7)?, row.get::<Option<i64>>(at + 8)?) {
        (Some(folder), None) => TusTarget::Folder(folder),
        (None, Some(device)) => TusTarget::Device(DeviceId(device)),
        _ => return Err(schema("a tus upload needs exactly one target")),
    };
    let state: String = row.get(at + 12)?;
    let content = match (row.get::<Option<Sha256Hex>>(at + 17)?, row.get::<Option<u64>>(at + 3)?) {
        (Some(sha256), Some(size)) => Some(BlobRecord { sha256, size, chunked_hash: row.get(at + 18)? }),
        _ => None,
    };
    Ok(TusUpload {
        id: row.get(at)?,
        user_id: UserId(row.get(at + 1)?),
        length: row.get(at + 2)?,
        offset: row.get(at + 3)?,
        metadata: row.get(at + 4)?,
        concat,
        target,
        file_name: row.get(at + 9)?,
        file_type: row.get(at + 10)?,
        expect_sha256: row.get(at + 11)?,
        state: TusState::parse(&state).ok_or_else(|| schema(format!("tus state {state}")))?,
        staging_key: row.get(at + 13)?,
        staging_state: row.get::<Option<String>>(at + 14)?.unwrap_or_default(),
        hash_state: row.get(at + 15)?,
        head: row.get::<Option<Vec<u8>>>(at + 16)?.unwrap_or_default(),
        content,
        result: row.get(at + 19)?,
        lease_until_ms: row.get(at + 20)?,
        expires_ms: row.get(at + 21)?,
    })
}
