//! Media processing results on PostgreSQL (`blob_media`). Recording a thumbnail takes its
//! blob's advisory lock, as committing does, so a collector of the same bytes either runs
//! first or sees the row that now keeps them.

use sqlx::PgPool;

use super::blobs::lock_blob;
use super::hash_array;
use super::intents::{self, Kind};
use crate::catalog::rows::MediaRow;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::Sha256Hex;

pub async fn record(
    pool: &PgPool,
    info: &NewMediaInfo,
    thumbnail: Option<(BlobRecord, BlobStep)>,
) -> CatalogResult<()> {
    let mut tx = pool.begin().await?;
    if let Some((thumb, _)) = &thumbnail {
        lock_blob(&mut tx, thumb.sha256.as_str()).await?;
    }
    // A share lock on the processed blob's row: its collector (which locks the row for
    // update) waits for this transaction, then deletes this result with the blob.
    let source: Option<(i32,)> = sqlx::query_as("select 1 from blobs where sha256 = $1 for share")
        .bind(info.sha256.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if source.is_none() {
        return Err(CatalogError::NotFound(format!("blob {}", info.sha256)));
    }
    let now = now_ms();
    let thumbnail_sha256 = match thumbnail {
        Some((thumb, place_bytes)) => {
            // as in commit_blob: an intent for new bytes, the bytes, then the rows that keep them
            let (known,): (bool,) = sqlx::query_as("select exists (select 1 from blobs where sha256 = $1)")
                .bind(thumb.sha256.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let intent = match known {
                true => None,
                false => Some(intents::begin(pool, &thumb.sha256, Kind::Place).await?),
            };
            place_bytes().await.map_err(CatalogError::Step)?;
            if let Some(id) = intent {
                intents::end(&mut *tx, id).await?;
            }
            sqlx::query(
                "insert into blobs (sha256, size, chunked_hash, created_ms, last_used_ms) values ($1, $2, null, $3, $3)
                 on conflict (sha256) do update set last_used_ms = excluded.last_used_ms",
            )
            .bind(thumb.sha256.as_str())
            .bind(thumb.size as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Some(thumb.sha256)
        }
        None => None,
    };
    sqlx::query(
        "insert into blob_media (sha256, status, metadata, thumbnail_sha256, error, updated_ms)
         values ($1, $2, $3, $4, $5, $6)
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

pub async fn infos(pool: &PgPool, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    // the whole batch travels as one text[] parameter: one query, whatever its length
    let rows: Vec<MediaRow> = sqlx::query_as(
        "select sha256, status, metadata, thumbnail_sha256, error, updated_ms from blob_media where sha256 = any($1)",
    )
    .bind(hash_array(hashes))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(MediaRow::into_info).collect()
}
