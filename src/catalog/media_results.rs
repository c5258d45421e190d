//! What media processing learnt about a blob (`blob_media`), once per blob: the same bytes
//! uploaded twice are processed once. A generated thumbnail is itself a blob, placed like an
//! upload's (intent, bytes, rows inside its section), kept alive by the result row, and gone
//! with the processed blob.

use async_trait::async_trait;

use super::blobs::record_blob;
use super::db::Exec;
use super::intents::Kind;
use super::rows::{self, MEDIA_RESULT};
use super::section::Access;
use super::*;
use crate::clock::now_ms;

#[async_trait]
pub trait MediaResults {
    /// Records what processing learnt about a blob, replacing an earlier result. With a
    /// thumbnail, its `place_bytes` runs first inside the thumbnail blob's critical section
    /// and its blob row is recorded without a hold: the result row keeps it alive (and goes
    /// with the processed blob). `NotFound` when the processed blob is gone (collected
    /// meanwhile); then nothing is recorded.
    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()>;
    /// Recorded results for these blobs, in one query; blobs not processed yet are absent.
    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>>;
}

/// Checks (and on PostgreSQL share-locks, so its collector waits) that the processed blob
/// still exists, then writes its result.
async fn write_result(exec: &mut dyn Exec, info: &NewMediaInfo, thumbnail: Option<&Sha256Hex>) -> CatalogResult<()> {
    let lock = exec.dialect().for_share();
    let source = format!("select 1 from blobs where sha256 = $1{lock}");
    if exec.opt(&source, params![&info.sha256]).await?.is_none() {
        return Err(CatalogError::NotFound(format!("blob {}", info.sha256)));
    }
    // a re-run that makes another thumbnail (or none) lets go of the earlier one
    let earlier = "select thumbnail_sha256 from blob_media where sha256 = $1 and thumbnail_sha256 is not null";
    if let Some(row) = exec.opt(earlier, params![&info.sha256]).await? {
        let earlier: Sha256Hex = row.get(0)?;
        if thumbnail != Some(&earlier) {
            super::lifecycle::candidate_if_unheld(exec, &earlier, now_ms()).await?;
        }
    }
    exec.exec(
        "insert into blob_media (sha256, status, metadata, thumbnail_sha256, error, updated_ms)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (sha256) do update set status = excluded.status, metadata = excluded.metadata,
             thumbnail_sha256 = excluded.thumbnail_sha256, error = excluded.error, updated_ms = excluded.updated_ms",
        params![
            &info.sha256,
            info.status.as_str(),
            info.metadata.as_ref().map(|m| m.to_string()),
            thumbnail,
            &info.error,
            now_ms()
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl MediaResults for SqlCatalog {
    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()> {
        let Some((thumb, place_bytes)) = thumbnail else {
            let mut tx = self.db.begin().await?;
            write_result(&mut tx, info, None).await?;
            return tx.commit().await;
        };
        if self.db.read().await?.opt("select 1 from blobs where sha256 = $1", params![&info.sha256]).await?.is_none() {
            return Err(CatalogError::NotFound(format!("blob {}", info.sha256)));
        }
        let mut section = self.section(&thumb.sha256, Access::Shared).await?;
        let intent = match section.recorded(&thumb.sha256).await? {
            true => None,
            false => Some(self.begin_intent(&thumb.sha256, Kind::Place).await?),
        };
        place_bytes().await.map_err(CatalogError::Step)?;
        // a failure from here leaves the intent: the sweep removes the thumbnail's bytes
        record_blob(&mut section, &thumb, None, now_ms()).await?;
        write_result(&mut section, info, Some(&thumb.sha256)).await?;
        if let Some(id) = intent {
            section.exec("delete from blob_intents where id = $1", params![id]).await?;
        }
        section.commit().await
    }

    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = self.db.dialect().list(1);
        let sql = format!("select {MEDIA_RESULT} from blob_media bm where bm.sha256 in (select v from {wanted} w)");
        let list: Vec<&str> = hashes.iter().map(Sha256Hex::as_str).collect();
        let rows = self.db.read().await?.rows(&sql, params![db::Value::list(&list)]).await?;
        rows.iter().filter_map(|r| rows::media_result(r, 0).transpose()).collect()
    }
}
