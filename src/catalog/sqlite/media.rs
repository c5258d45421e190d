//! Media items on SQLite. Every write moves the volume's change counter inside its own
//! transaction, and the single writer connection orders those transactions, so the
//! change feed never skips a row.

use std::time::Duration;

use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{DeviceId, Sha256Hex, UserId, VolumeId};

#[derive(sqlx::FromRow)]
struct MediaRow {
    id: i64,
    volume_id: i64,
    path: String,
    sha256: String,
    file_hash: String,
    size: i64,
    ctime: Option<String>,
    mtime: Option<String>,
    is_deleted: bool,
    last_updated_ms: i64,
    last_updated_user_id: i64,
    last_updated_device_id: Option<i64>,
    change_seq: i64,
}

impl MediaRow {
    fn into_item(self) -> CatalogResult<MediaItem> {
        let parse = |h: &str| Sha256Hex::parse(h).map_err(|e| CatalogError::Schema(e.to_string()));
        Ok(MediaItem {
            media_id: self.id,
            volume_id: VolumeId(self.volume_id),
            media_path: self.path,
            sha256: parse(&self.sha256)?,
            file_hash: parse(&self.file_hash)?,
            file_size: self.size as u64,
            ctime: self.ctime,
            mtime: self.mtime,
            is_deleted: self.is_deleted,
            last_updated_ms: self.last_updated_ms,
            last_updated_user_id: UserId(self.last_updated_user_id),
            last_updated_device_id: self.last_updated_device_id.map(DeviceId),
            change_seq: self.change_seq,
        })
    }
}

const COLUMNS: &str = "id, volume_id, path, sha256, file_hash, size, ctime, mtime, is_deleted, last_updated_ms, \
                       last_updated_user_id, last_updated_device_id, change_seq";

/// Moves the volume's change counter and returns the new value.
async fn next_seq(tx: &mut Transaction<'_, Sqlite>, volume: VolumeId) -> CatalogResult<i64> {
    let (seq,): (i64,) =
        sqlx::query_as("update volumes set change_seq = change_seq + 1 where id = ? returning change_seq")
            .bind(volume.0)
            .fetch_one(&mut **tx)
            .await?;
    Ok(seq)
}

async fn item_in(
    tx: &mut Transaction<'_, Sqlite>,
    volume: VolumeId,
    media_id: i64,
) -> CatalogResult<Option<MediaItem>> {
    let row: Option<MediaRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from media where volume_id = ? and id = ?")))
            .bind(volume.0)
            .bind(media_id)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(MediaRow::into_item).transpose()
}

fn device_hash(content: &MediaContent) -> &Sha256Hex {
    content.blob.chunked_hash.as_ref().unwrap_or(&content.blob.sha256)
}

/// Writes content onto an existing row (update or revive).
async fn set_content(
    tx: &mut Transaction<'_, Sqlite>,
    media_id: i64,
    seq: i64,
    content: &MediaContent,
    by: Updater,
) -> CatalogResult<()> {
    sqlx::query(
        "update media set sha256 = ?, file_hash = ?, size = ?, ctime = ?, mtime = ?, is_deleted = 0, deleted_ms = null,
             last_updated_ms = ?, last_updated_user_id = ?, last_updated_device_id = ?, change_seq = ?
         where id = ?",
    )
    .bind(content.blob.sha256.as_str())
    .bind(device_hash(content).as_str())
    .bind(content.blob.size as i64)
    .bind(&content.ctime)
    .bind(&content.mtime)
    .bind(now_ms())
    .bind(by.user_id.0)
    .bind(by.device_id.map(|d| d.0))
    .bind(seq)
    .bind(media_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn create(
    writer: &SqlitePool,
    volume: VolumeId,
    path: &str,
    content: &MediaContent,
    by: Updater,
) -> CatalogResult<MediaCreated> {
    let mut tx = writer.begin().await?;
    let existing: Option<MediaRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from media where volume_id = ? and path = ?")))
            .bind(volume.0)
            .bind(path)
            .fetch_optional(&mut *tx)
            .await?;
    let outcome = match existing.map(MediaRow::into_item).transpose()? {
        Some(item) if !item.is_deleted && item.sha256 == content.blob.sha256 => MediaCreated::Existing(item.media_id),
        Some(item) if !item.is_deleted => MediaCreated::Conflict(item),
        Some(tombstone) => {
            let seq = next_seq(&mut tx, volume).await?;
            set_content(&mut tx, tombstone.media_id, seq, content, by).await?;
            MediaCreated::Created(tombstone.media_id)
        }
        None => {
            let seq = next_seq(&mut tx, volume).await?;
            let now = now_ms();
            let (id,): (i64,) = sqlx::query_as(
                "insert into media (volume_id, path, sha256, file_hash, size, ctime, mtime, last_updated_ms,
                                    last_updated_user_id, last_updated_device_id, change_seq, created_ms)
                 values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) returning id",
            )
            .bind(volume.0)
            .bind(path)
            .bind(content.blob.sha256.as_str())
            .bind(device_hash(content).as_str())
            .bind(content.blob.size as i64)
            .bind(&content.ctime)
            .bind(&content.mtime)
            .bind(now)
            .bind(by.user_id.0)
            .bind(by.device_id.map(|d| d.0))
            .bind(seq)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            MediaCreated::Created(id)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

pub async fn update(
    writer: &SqlitePool,
    volume: VolumeId,
    media_id: i64,
    content: &MediaContent,
    expected_last_updated_ms: Option<i64>,
    by: Updater,
) -> CatalogResult<MediaUpdated> {
    let mut tx = writer.begin().await?;
    let Some(item) = item_in(&mut tx, volume, media_id).await? else { return Ok(MediaUpdated::NotFound) };
    if expected_last_updated_ms.is_some_and(|expected| expected != item.last_updated_ms) {
        return Ok(MediaUpdated::Stale(item));
    }
    let seq = next_seq(&mut tx, volume).await?;
    set_content(&mut tx, media_id, seq, content, by).await?;
    tx.commit().await?;
    Ok(MediaUpdated::Updated)
}

pub async fn delete(writer: &SqlitePool, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool> {
    let mut tx = writer.begin().await?;
    let Some(item) = item_in(&mut tx, volume, media_id).await? else { return Ok(false) };
    if !item.is_deleted {
        let seq = next_seq(&mut tx, volume).await?;
        let now = now_ms();
        sqlx::query(
            "update media set is_deleted = 1, deleted_ms = ?, last_updated_ms = ?, last_updated_user_id = ?,
                 last_updated_device_id = ?, change_seq = ? where id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(by.user_id.0)
        .bind(by.device_id.map(|d| d.0))
        .bind(seq)
        .bind(media_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn item(reader: &SqlitePool, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>> {
    let row: Option<MediaRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from media where volume_id = ? and id = ?")))
            .bind(volume.0)
            .bind(media_id)
            .fetch_optional(reader)
            .await?;
    row.map(MediaRow::into_item).transpose()
}

pub async fn by_file_hash(
    reader: &SqlitePool,
    volume: VolumeId,
    hashes: &[Sha256Hex],
) -> CatalogResult<Vec<MediaItem>> {
    let list = serde_json::to_string(hashes).expect("hashes serialise");
    let rows: Vec<MediaRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from media where volume_id = ? and file_hash in (select value from json_each(?))
         order by is_deleted, id"
    )))
    .bind(volume.0)
    .bind(list)
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(MediaRow::into_item).collect()
}

pub async fn changes(
    reader: &SqlitePool,
    volume: VolumeId,
    after_seq: i64,
    limit: u32,
) -> CatalogResult<Vec<MediaItem>> {
    let rows: Vec<MediaRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from media where volume_id = ? and change_seq > ? order by change_seq limit ?"
    )))
    .bind(volume.0)
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(MediaRow::into_item).collect()
}

pub async fn purge_tombstones(writer: &SqlitePool, retention: Duration) -> CatalogResult<usize> {
    let mut tx = writer.begin().await?;
    let cutoff = now_ms() - retention.as_millis() as i64;
    let purged: Vec<(i64, String)> = sqlx::query_as(
        "delete from media where is_deleted = 1 and deleted_ms <= ?
         returning (select user_id from volumes v where v.id = media.volume_id), sha256",
    )
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    for (user, sha256) in &purged {
        // the hold goes only if none of the user's other items still uses the content
        sqlx::query(
            "delete from holds where user_id = ?1 and sha256 = ?2
               and not exists (select 1 from media m join volumes v on v.id = m.volume_id
                               where v.user_id = ?1 and m.sha256 = ?2)",
        )
        .bind(user)
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update blobs set last_used_ms = ? where sha256 = ?")
            .bind(now_ms())
            .bind(sha256)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(purged.len())
}
