//! Media processing results on SQLite (`blob_media`). A thumbnail's bytes are placed under
//! the catalog's placement lock (held by the caller), like an upload's.

use sqlx::SqlitePool;

use super::intents::{self, Kind};
use crate::catalog::rows::MediaRow;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::Sha256Hex;

pub async fn record(
    reader: &SqlitePool,
    writer: &SqlitePool,
    info: &NewMediaInfo,
    thumbnail: Option<(BlobRecord, BlobStep)>,
) -> CatalogResult<()> {
    if !intents::recorded(reader, &info.sha256).await? {
        return Err(CatalogError::NotFound(format!("blob {}", info.sha256)));
    }
    // as in commit_blob: an intent for new bytes, the bytes, then the rows that keep them
    // (outside the writer: the single connection cannot hold a transaction through them)
    let thumbnail = match thumbnail {
        Some((thumb, place_bytes)) => {
            let intent = match intents::recorded(reader, &thumb.sha256).await? {
                true => None,
                false => Some(intents::begin(writer, &thumb.sha256, Kind::Place).await?),
            };
            place_bytes().await.map_err(CatalogError::Step)?;
            Some((thumb, intent))
        }
        None => None,
    };
    let mut tx = writer.begin().await?;
    let source: Option<(i64,)> = sqlx::query_as("select 1 from blobs where sha256 = ?")
        .bind(info.sha256.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if source.is_none() {
        // collected meanwhile: the thumbnail's intent stays, and the sweep removes its bytes
        return Err(CatalogError::NotFound(format!("blob {}", info.sha256)));
    }
    let now = now_ms();
    let thumbnail_sha256 = match thumbnail {
        Some((thumb, intent)) => {
            sqlx::query(
                "insert into blobs (sha256, size, chunked_hash, created_ms, last_used_ms) values (?, ?, null, ?, ?)
                 on conflict (sha256) do update set last_used_ms = excluded.last_used_ms",
            )
            .bind(thumb.sha256.as_str())
            .bind(thumb.size as i64)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(id) = intent {
                intents::end_in(&mut tx, id).await?;
            }
            Some(thumb.sha256)
        }
        None => None,
    };
    sqlx::query(
        "insert into blob_media (sha256, status, metadata, thumbnail_sha256, error, updated_ms)
         values (?, ?, ?, ?, ?, ?)
         on conflict (sha256) do update set status = excluded.status, metadata = excluded.metadata,
             thumbnail_sha256 = excluded.thumbnail_sha256, error = excluded.error, updated_ms = excluded.updated_ms",
    )
    .bind(info.sha256.as_str())
    .bind(info.status.as_str())
    .bind(info.metadata.as_ref().map(|m| m.to_string()))
    .bind(thumbnail_sha256.as_ref().map(Sha256Hex::as_str))
    .bind(&info.error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn infos(reader: &SqlitePool, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    // the whole batch travels as one JSON array: one query, whatever its length
    let list = serde_json::to_string(hashes).expect("hashes serialise");
    let rows: Vec<MediaRow> = sqlx::query_as(
        "select sha256, status, metadata, thumbnail_sha256, error, updated_ms from blob_media
         where sha256 in (select value from json_each(?))",
    )
    .bind(list)
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(MediaRow::into_info).collect()
}
