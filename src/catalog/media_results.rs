//! What media processing learnt about a blob (`blob_media`), and the playable rendition made
//! of it (`blob_renditions`), once per blob: the same bytes uploaded twice are processed
//! once. A generated thumbnail or rendition is itself a blob, placed like an upload's
//! (intent, bytes, rows inside its section), kept alive by the result row, and gone with the
//! processed blob.

use async_trait::async_trait;

use super::blobs::record_blob;
use super::db::Exec;
use super::intents::Kind;
use super::rows::{self, MEDIA_RESULT, RENDITION_JOIN};
use super::section::Access;
use super::*;
use crate::clock::now_ms;

#[async_trait]
pub trait MediaResults: Send + Sync {
    /// Records what processing learnt about a blob, replacing an earlier result. With a
    /// thumbnail, its `place_bytes` runs first inside the thumbnail blob's critical section
    /// and its blob row is recorded without a hold: the result row keeps it alive (and goes
    /// with the processed blob). `NotFound` when the processed blob is gone (collected
    /// meanwhile); then nothing is recorded.
    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()>;
    /// Recorded results for these blobs, in one query; blobs not processed yet are absent.
    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>>;
    /// Records a content's rendition job result, replacing an earlier one; the rendition
    /// blob is placed and kept alive as `record_media` does a thumbnail.
    async fn record_rendition(
        &self,
        result: &NewRendition,
        rendition: Option<(BlobRecord, BlobStep)>,
    ) -> CatalogResult<()>;
    /// The recorded rendition job result of a content, if its job has run.
    async fn rendition_result(&self, sha256: &Sha256Hex) -> CatalogResult<Option<RenditionResult>>;
}

/// A result that may come with a blob generated from the content it describes.
enum Generated<'a> {
    Media(&'a NewMediaInfo),
    Rendition(&'a NewRendition),
}

impl Generated<'_> {
    fn source(&self) -> &Sha256Hex {
        match self {
            Generated::Media(info) => &info.sha256,
            Generated::Rendition(result) => &result.sha256,
        }
    }

    async fn write(&self, exec: &mut dyn Exec, generated: Option<&Sha256Hex>) -> CatalogResult<()> {
        match self {
            Generated::Media(info) => write_result(exec, info, generated).await,
            Generated::Rendition(result) => write_rendition(exec, result, generated).await,
        }
    }
}

/// Whether the content a result describes still exists (on PostgreSQL share-locked, so its
/// collector waits) and, when it replaces an earlier generated blob (`earlier`: selecting it
/// by `$1`), lets go of that one.
async fn replace_generated(
    exec: &mut dyn Exec,
    source: &Sha256Hex,
    earlier: &str,
    generated: Option<&Sha256Hex>,
) -> CatalogResult<()> {
    let lock = exec.dialect().for_share();
    let exists = format!("select 1 from blobs where sha256 = $1{lock}");
    if exec.opt(&exists, params![source]).await?.is_none() {
        return Err(CatalogError::NotFound(format!("blob {source}")));
    }
    if let Some(row) = exec.opt(earlier, params![source]).await? {
        let earlier: Sha256Hex = row.get(0)?;
        if generated != Some(&earlier) {
            super::lifecycle::candidate_if_unheld(exec, &earlier, now_ms()).await?;
        }
    }
    Ok(())
}

/// Writes a processing result (a re-run that makes another thumbnail, or none, lets go of
/// the earlier one).
async fn write_result(exec: &mut dyn Exec, info: &NewMediaInfo, thumbnail: Option<&Sha256Hex>) -> CatalogResult<()> {
    let earlier = "select thumbnail_sha256 from blob_media where sha256 = $1 and thumbnail_sha256 is not null";
    replace_generated(exec, &info.sha256, earlier, thumbnail).await?;
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

/// Writes a rendition job result.
async fn write_rendition(
    exec: &mut dyn Exec,
    result: &NewRendition,
    rendition: Option<&Sha256Hex>,
) -> CatalogResult<()> {
    let earlier = "select rendition_sha256 from blob_renditions where sha256 = $1 and rendition_sha256 is not null";
    replace_generated(exec, &result.sha256, earlier, rendition).await?;
    exec.exec(
        "insert into blob_renditions (sha256, status, rendition_sha256, content_type, error, updated_ms)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (sha256) do update set status = excluded.status, rendition_sha256 = excluded.rendition_sha256,
             content_type = excluded.content_type, error = excluded.error, updated_ms = excluded.updated_ms",
        params![&result.sha256, result.status.as_str(), rendition, &result.content_type, &result.error, now_ms()],
    )
    .await?;
    Ok(())
}

impl SqlCatalog {
    /// Records `result`, with the blob generated for it placed first inside that blob's
    /// critical section and recorded without a hold (the result row keeps it alive).
    async fn record_generated(&self, result: Generated<'_>, blob: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()> {
        let Some((generated, place_bytes)) = blob else {
            let mut tx = self.db.begin().await?;
            result.write(&mut tx, None).await?;
            return tx.commit().await;
        };
        let source = result.source();
        if self.db.read().await?.opt("select 1 from blobs where sha256 = $1", params![source]).await?.is_none() {
            return Err(CatalogError::NotFound(format!("blob {source}")));
        }
        let mut section = self.section(&generated.sha256, Access::Shared).await?;
        let intent = match section.recorded(&generated.sha256).await? {
            true => None,
            false => Some(self.begin_intent(&generated.sha256, Kind::Place).await?),
        };
        place_bytes().await.map_err(CatalogError::Step)?;
        // a failure from here leaves the intent: the sweep removes the generated bytes
        // a generated file is not named by devices: no top-hash is computed for it
        record_blob(&mut section, &generated, None, now_ms()).await?;
        result.write(&mut section, Some(&generated.sha256)).await?;
        if let Some(id) = intent {
            section.exec("delete from blob_intents where id = $1", params![id]).await?;
        }
        section.commit().await
    }
}

#[async_trait]
impl MediaResults for SqlCatalog {
    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()> {
        self.record_generated(Generated::Media(info), thumbnail).await
    }

    async fn record_rendition(
        &self,
        result: &NewRendition,
        rendition: Option<(BlobRecord, BlobStep)>,
    ) -> CatalogResult<()> {
        self.record_generated(Generated::Rendition(result), rendition).await
    }

    async fn rendition_result(&self, sha256: &Sha256Hex) -> CatalogResult<Option<RenditionResult>> {
        let sql = "select br.status, br.error, br.rendition_sha256, br.content_type, rb.size from blob_renditions br
                   left join blobs rb on rb.sha256 = br.rendition_sha256 where br.sha256 = $1";
        let Some(mut row) = self.db.read().await?.opt(sql, params![sha256]).await? else { return Ok(None) };
        let status: String = row.get(0)?;
        let status =
            MediaStatus::parse(&status).ok_or_else(|| CatalogError::Schema(format!("rendition status {status}")))?;
        Ok(Some(RenditionResult { status, error: row.get(1)?, rendition: rows::rendition(&mut row, 2)? }))
    }

    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = self.db.dialect().list(1);
        let sql = format!(
            "select {MEDIA_RESULT} from blob_media bm {RENDITION_JOIN} where bm.sha256 in (select v from {wanted} w)"
        );
        let list: Vec<&str> = hashes.iter().map(Sha256Hex::as_str).collect();
        let rows = self.db.read().await?.rows(&sql, params![db::Value::list(&list)]).await?;
        rows.into_iter().filter_map(|mut r| rows::media_result(&mut r, 0).transpose()).collect()
    }
}
