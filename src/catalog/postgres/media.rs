//! Media items on PostgreSQL. Every write starts by moving its volume's change counter:
//! that update locks the volume row until the transaction ends, so writers of one volume
//! take their turn in counter order and commit in it (the change feed never skips a row),
//! and a writer always sees what the one before it committed (two creates of one path get
//! one item). A write that changes nothing rolls back, counter included, as on SQLite.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use super::{hash_array, on_unique, parse_hash};
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
        Ok(MediaItem {
            media_id: self.id,
            volume_id: VolumeId(self.volume_id),
            media_path: self.path,
            sha256: parse_hash(&self.sha256)?,
            file_hash: parse_hash(&self.file_hash)?,
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

/// Moves the volume's change counter and returns the new value (`None`: no such volume);
/// the volume row stays locked until the transaction ends (see module docs).
async fn next_seq(tx: &mut Transaction<'_, Postgres>, volume: VolumeId) -> CatalogResult<Option<i64>> {
    let seq: Option<(i64,)> =
        sqlx::query_as("update volumes set change_seq = change_seq + 1 where id = $1 returning change_seq")
            .bind(volume.0)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(seq.map(|(seq,)| seq))
}

/// The item with `condition` (on `$1` = volume, `$2`), locked for this transaction.
async fn locked_item<'q, T>(
    tx: &mut Transaction<'_, Postgres>,
    volume: VolumeId,
    condition: &str,
    key: T,
) -> CatalogResult<Option<MediaItem>>
where
    T: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    let row: Option<MediaRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from media where volume_id = $1 and {condition} for update"
    )))
    .bind(volume.0)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(MediaRow::into_item).transpose()
}

fn device_hash(content: &MediaContent) -> &Sha256Hex {
    content.blob.chunked_hash.as_ref().unwrap_or(&content.blob.sha256)
}

/// Writes content onto an existing row (update or revive).
async fn set_content(
    tx: &mut Transaction<'_, Postgres>,
    media_id: i64,
    seq: i64,
    content: &MediaContent,
    by: Updater,
) -> CatalogResult<()> {
    sqlx::query(
        "update media set sha256 = $1, file_hash = $2, size = $3, ctime = $4, mtime = $5, is_deleted = false,
             deleted_ms = null, last_updated_ms = $6, last_updated_user_id = $7, last_updated_device_id = $8,
             change_seq = $9
         where id = $10",
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
    pool: &PgPool,
    volume: VolumeId,
    path: &str,
    content: &MediaContent,
    by: Updater,
) -> CatalogResult<MediaCreated> {
    let mut tx = pool.begin().await?;
    // The counter first: from here no other writer of this volume runs until we end, so
    // what the select below sees stays true (and a racing create of this path, which queued
    // on the same lock, then sees our item).
    let seq = next_seq(&mut tx, volume).await?.ok_or(sqlx::Error::RowNotFound)?;
    let outcome = match locked_item(&mut tx, volume, "path = $2", path).await? {
        Some(item) if !item.is_deleted && item.sha256 == content.blob.sha256 => {
            tx.rollback().await?;
            return Ok(MediaCreated::Existing(item.media_id));
        }
        Some(item) if !item.is_deleted => {
            tx.rollback().await?;
            return Ok(MediaCreated::Conflict(item));
        }
        Some(tombstone) => {
            set_content(&mut tx, tombstone.media_id, seq, content, by).await?;
            MediaCreated::Created(tombstone.media_id)
        }
        None => {
            let now = now_ms();
            let (id,): (i64,) = sqlx::query_as(
                "insert into media (volume_id, path, sha256, file_hash, size, ctime, mtime, last_updated_ms,
                                    last_updated_user_id, last_updated_device_id, change_seq, created_ms)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $8) returning id",
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
            .fetch_one(&mut *tx)
            .await
            // (volume_id, path) is unique: only a writer bypassing the volume lock could get here
            .map_err(|e| on_unique(e, || format!("media at '{path}' was created concurrently")))?;
            MediaCreated::Created(id)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

pub async fn update(
    pool: &PgPool,
    volume: VolumeId,
    media_id: i64,
    content: &MediaContent,
    expected_last_updated_ms: Option<i64>,
    by: Updater,
) -> CatalogResult<MediaUpdated> {
    let mut tx = pool.begin().await?;
    // volume row before media row, like every media write: no lock-order deadlocks
    let Some(seq) = next_seq(&mut tx, volume).await? else { return Ok(MediaUpdated::NotFound) };
    let Some(item) = locked_item(&mut tx, volume, "id = $2", media_id).await? else {
        tx.rollback().await?;
        return Ok(MediaUpdated::NotFound);
    };
    if expected_last_updated_ms.is_some_and(|expected| expected != item.last_updated_ms) {
        tx.rollback().await?;
        return Ok(MediaUpdated::Stale(item));
    }
    set_content(&mut tx, media_id, seq, content, by).await?;
    tx.commit().await?;
    Ok(MediaUpdated::Updated)
}

pub async fn delete(pool: &PgPool, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool> {
    let mut tx = pool.begin().await?;
    let Some(seq) = next_seq(&mut tx, volume).await? else { return Ok(false) };
    match locked_item(&mut tx, volume, "id = $2", media_id).await? {
        None => {
            tx.rollback().await?;
            Ok(false)
        }
        Some(item) if item.is_deleted => {
            tx.rollback().await?;
            Ok(true)
        }
        Some(_) => {
            let now = now_ms();
            sqlx::query(
                "update media set is_deleted = true, deleted_ms = $1, last_updated_ms = $1, last_updated_user_id = $2,
                     last_updated_device_id = $3, change_seq = $4 where id = $5",
            )
            .bind(now)
            .bind(by.user_id.0)
            .bind(by.device_id.map(|d| d.0))
            .bind(seq)
            .bind(media_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }
    }
}

pub async fn item(pool: &PgPool, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>> {
    let row: Option<MediaRow> =
        sqlx::query_as(AssertSqlSafe(format!("select {COLUMNS} from media where volume_id = $1 and id = $2")))
            .bind(volume.0)
            .bind(media_id)
            .fetch_optional(pool)
            .await?;
    row.map(MediaRow::into_item).transpose()
}

pub async fn by_file_hash(pool: &PgPool, volume: VolumeId, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>> {
    let rows: Vec<MediaRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from media where volume_id = $1 and file_hash = any($2) order by is_deleted, id"
    )))
    .bind(volume.0)
    .bind(hash_array(hashes))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(MediaRow::into_item).collect()
}

pub async fn changes(pool: &PgPool, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>> {
    let rows: Vec<MediaRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from media where volume_id = $1 and change_seq > $2 order by change_seq limit $3"
    )))
    .bind(volume.0)
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(MediaRow::into_item).collect()
}

pub async fn purge_tombstones(pool: &PgPool, retention: Duration) -> CatalogResult<usize> {
    let mut tx = pool.begin().await?;
    let now = now_ms();
    let purged: Vec<(i64, String)> = sqlx::query_as(
        "delete from media m using volumes v
         where v.id = m.volume_id and m.is_deleted and m.deleted_ms <= $1
         returning v.user_id, m.sha256",
    )
    .bind(now - retention.as_millis() as i64)
    .fetch_all(&mut *tx)
    .await?;
    if purged.is_empty() {
        return Ok(0);
    }
    let (users, hashes): (Vec<i64>, Vec<String>) = purged.iter().cloned().unzip();
    // a hold goes only if none of the user's other items still uses the content
    sqlx::query(
        "delete from holds h using unnest($1::bigint[], $2::text[]) as p(user_id, sha256)
         where h.user_id = p.user_id and h.sha256 = p.sha256
           and not exists (select 1 from media m join volumes v on v.id = m.volume_id
                           where v.user_id = p.user_id and m.sha256 = p.sha256)",
    )
    .bind(&users)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    sqlx::query("update blobs set last_used_ms = $1 where sha256 = any($2)")
        .bind(now)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(purged.len())
}
