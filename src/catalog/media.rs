//! Media items of the device family: a path in a volume. Every write starts by moving its
//! volume's change counter: on PostgreSQL that update locks the volume row until the
//! transaction ends, so writers of one volume take their turn in counter order and commit in
//! it (the change feed never skips a row), and a writer always sees what the one before it
//! committed (two creates of one path get one item); on SQLite the single writer orders them
//! anyway. A write that changes nothing rolls back, counter included.

use async_trait::async_trait;

use super::db::{Exec, Tx};
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, MEDIA};
use super::*;
use crate::clock::now_ms;
use crate::domain::{UserId, VolumeId};

#[async_trait]
pub trait MediaItems: Send + Sync {
    /// Creates the item at `path`, or answers what is there (see [`MediaCreated`]).
    async fn create_media(
        &self,
        volume: VolumeId,
        path: &str,
        content: &MediaContent,
        by: Updater,
    ) -> CatalogResult<MediaCreated>;
    /// Sets new content on an item (undeleting it); `expected_last_updated_ms` guards
    /// against lost updates.
    async fn update_media(
        &self,
        volume: VolumeId,
        media_id: i64,
        content: &MediaContent,
        expected_last_updated_ms: Option<i64>,
        by: Updater,
    ) -> CatalogResult<MediaUpdated>;
    /// Soft-deletes an item (a tombstone stays for the change feed); `false` when absent.
    async fn delete_media(&self, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool>;
    async fn media_item(&self, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>>;
    /// Items of a volume whose content has one of these device hashes.
    async fn media_by_file_hash(&self, volume: VolumeId, file_hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>>;
    /// The change feed: items changed after `after_seq`, in change order, at most `limit`.
    async fn media_changes(&self, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>>;
}

/// Moves the volume's change counter; `None` when there is no such volume.
async fn next_seq(tx: &mut Tx<'_>, volume: VolumeId) -> CatalogResult<Option<i64>> {
    let sql = "update volumes set change_seq = change_seq + 1 where id = $1 returning change_seq";
    tx.opt(sql, params![volume.0]).await?.map(|r| r.get(0)).transpose()
}

/// The item matching `condition` (`$2`), locked for this write.
async fn locked_item(
    tx: &mut Tx<'_>,
    volume: VolumeId,
    condition: &str,
    value: db::Value,
) -> CatalogResult<Option<MediaItem>> {
    let lock = tx.dialect().for_update();
    let sql = format!("select {MEDIA} from media m where m.volume_id = $1 and m.{condition}{lock}");
    let row = tx.opt(&sql, &[db::Value::Int(Some(volume.0)), value]).await?;
    row.map(|r| rows::media_item(&r, 0)).transpose()
}

/// Writes content onto an existing row (update or revive). Content it replaces stays held
/// for the retention, like a deleted item's.
async fn set_content(
    tx: &mut Tx<'_>,
    previous: &MediaItem,
    seq: i64,
    content: &MediaContent,
    by: Updater,
) -> CatalogResult<()> {
    let id = previous.media_id;
    if previous.sha256 != content.blob.sha256 {
        let owner: i64 =
            tx.one("select user_id from volumes where id = $1", params![previous.volume_id.0]).await?.get(0)?;
        check_hold(tx, UserId(owner), &previous.sha256, HoldCheck::Deleted, now_ms()).await?;
    }
    tx.exec(
        "update media set sha256 = $1, file_hash = $2, size = $3, ctime = $4, mtime = $5, is_deleted = false,
             deleted_ms = null, last_updated_ms = $6, last_updated_user_id = $7, last_updated_device_id = $8,
             change_seq = $9
         where id = $10",
        params![
            &content.blob.sha256,
            content.file_hash()?,
            content.blob.size,
            &content.ctime,
            &content.mtime,
            now_ms(),
            by.user_id.0,
            by.device_id.map(|d| d.0),
            seq,
            id
        ],
    )
    .await?;
    Ok(())
}

impl SqlCatalog {
    async fn media_where(&self, condition: &str, params: &[db::Value]) -> CatalogResult<Vec<MediaItem>> {
        let sql = format!("select {MEDIA} from media m where {condition}");
        let rows = self.db.read().await?.rows(&sql, params).await?;
        rows.iter().map(|r| rows::media_item(r, 0)).collect()
    }
}

#[async_trait]
impl MediaItems for SqlCatalog {
    async fn create_media(
        &self,
        volume: VolumeId,
        path: &str,
        content: &MediaContent,
        by: Updater,
    ) -> CatalogResult<MediaCreated> {
        let mut tx = self.db.begin().await?;
        // the counter first: from here no other writer of this volume runs until we end
        let seq = next_seq(&mut tx, volume).await?.ok_or_else(|| CatalogError::NotFound(format!("volume {volume}")))?;
        let outcome = match locked_item(&mut tx, volume, "path = $2", db::Value::Text(Some(path.to_owned()))).await? {
            Some(item) if !item.is_deleted && item.sha256 == content.blob.sha256 => {
                return Ok(MediaCreated::Existing(item.media_id));
            }
            Some(item) if !item.is_deleted => return Ok(MediaCreated::Conflict(item)),
            Some(tombstone) => {
                set_content(&mut tx, &tombstone, seq, content, by).await?;
                MediaCreated::Created(tombstone.media_id)
            }
            None => {
                let now = now_ms();
                let sql = "insert into media (volume_id, path, sha256, file_hash, size, ctime, mtime, last_updated_ms,
                                              last_updated_user_id, last_updated_device_id, change_seq, created_ms)
                           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $8) returning id";
                let values = params![
                    volume.0,
                    path,
                    &content.blob.sha256,
                    content.file_hash()?,
                    content.blob.size,
                    &content.ctime,
                    &content.mtime,
                    now,
                    by.user_id.0,
                    by.device_id.map(|d| d.0),
                    seq
                ];
                // (volume_id, path) is unique: only a writer bypassing the volume lock gets here
                let row = tx
                    .one(sql, values)
                    .await
                    .map_err(|e| e.on_unique(|| format!("media at '{path}' was created concurrently")))?;
                MediaCreated::Created(row.get(0)?)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn update_media(
        &self,
        volume: VolumeId,
        media_id: i64,
        content: &MediaContent,
        expected_last_updated_ms: Option<i64>,
        by: Updater,
    ) -> CatalogResult<MediaUpdated> {
        let mut tx = self.db.begin().await?;
        // volume row before media row, like every media write: no lock-order deadlocks
        let Some(seq) = next_seq(&mut tx, volume).await? else { return Ok(MediaUpdated::NotFound) };
        let Some(item) = locked_item(&mut tx, volume, "id = $2", db::Value::Int(Some(media_id))).await? else {
            return Ok(MediaUpdated::NotFound);
        };
        if expected_last_updated_ms.is_some_and(|expected| expected != item.last_updated_ms) {
            return Ok(MediaUpdated::Stale(item));
        }
        set_content(&mut tx, &item, seq, content, by).await?;
        tx.commit().await?;
        Ok(MediaUpdated::Updated)
    }

    async fn delete_media(&self, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let Some(seq) = next_seq(&mut tx, volume).await? else { return Ok(false) };
        match locked_item(&mut tx, volume, "id = $2", db::Value::Int(Some(media_id))).await? {
            None => Ok(false),
            Some(item) if item.is_deleted => Ok(true),
            Some(_) => {
                tx.exec(
                    "update media set is_deleted = true, deleted_ms = $1, last_updated_ms = $1, last_updated_user_id = $2,
                         last_updated_device_id = $3, change_seq = $4 where id = $5",
                    params![now_ms(), by.user_id.0, by.device_id.map(|d| d.0), seq, media_id],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    }

    async fn media_item(&self, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>> {
        Ok(self.media_where("m.volume_id = $1 and m.id = $2", params![volume.0, media_id]).await?.pop())
    }

    async fn media_by_file_hash(&self, volume: VolumeId, file_hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>> {
        let wanted = self.db.dialect().list(2);
        let hashes: Vec<&str> = file_hashes.iter().map(Sha256Hex::as_str).collect();
        let condition =
            format!("m.volume_id = $1 and m.file_hash in (select v from {wanted} w) order by m.is_deleted, m.id");
        self.media_where(&condition, params![volume.0, db::Value::list(&hashes)]).await
    }

    async fn media_changes(&self, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>> {
        let condition = format!("m.volume_id = $1 and m.change_seq > $2 order by m.change_seq limit {limit}");
        self.media_where(&condition, params![volume.0, after_seq]).await
    }
}
