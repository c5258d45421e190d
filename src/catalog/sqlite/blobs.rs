//! Blobs and holds on SQLite. Commit and collection are serialised by the catalog's
//! placement lock (see the module docs of `sqlite`), which the callers hold; both write a
//! blob intent before bytes move (see `intents`).

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::SqlitePool;

use super::intents::{self, Kind};
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{Sha256Hex, UserId};

pub async fn blob(pool: &SqlitePool, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>> {
    let row: Option<(i64, Option<String>)> = sqlx::query_as("select size, chunked_hash from blobs where sha256 = ?")
        .bind(sha256.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(|(size, chunked)| {
        Ok(BlobRecord {
            sha256: sha256.clone(),
            size: size as u64,
            chunked_hash: chunked
                .map(|c| Sha256Hex::parse(&c))
                .transpose()
                .map_err(|e| CatalogError::Schema(e.to_string()))?,
        })
    })
    .transpose()
}

pub async fn has_blobs(pool: &SqlitePool) -> CatalogResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as("select 1 from blobs limit 1").fetch_optional(pool).await?;
    Ok(row.is_some())
}

pub async fn all_blob_hashes(pool: &SqlitePool) -> CatalogResult<Vec<Sha256Hex>> {
    let rows: Vec<(String,)> = sqlx::query_as("select sha256 from blobs order by sha256").fetch_all(pool).await?;
    rows.into_iter().map(|(h,)| Sha256Hex::parse(&h).map_err(|e| CatalogError::Schema(e.to_string()))).collect()
}

pub async fn holds(pool: &SqlitePool, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as("select 1 from holds where user_id = ? and sha256 = ?")
        .bind(user.0)
        .bind(sha256.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

pub async fn release_hold(writer: &SqlitePool, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()> {
    let mut tx = writer.begin().await?;
    let released = sqlx::query("delete from holds where user_id = ? and sha256 = ?")
        .bind(user.0)
        .bind(sha256.as_str())
        .execute(&mut *tx)
        .await?;
    if released.rows_affected() > 0 {
        // the grace period of GC counts from the last release
        sqlx::query("update blobs set last_used_ms = ? where sha256 = ?")
            .bind(now_ms())
            .bind(sha256.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The caller holds the placement lock shared (see `SqliteCatalog::placement`).
pub async fn commit_blob(
    reader: &SqlitePool,
    writer: &SqlitePool,
    blob: &BlobRecord,
    holder: UserId,
    place_bytes: BlobStep,
) -> CatalogResult<()> {
    // New content gets its intent before its bytes move (see `intents`); recorded content
    // keeps its bytes while the lock is held, so placing them only drops the staged copy.
    let intent = match intents::recorded(reader, &blob.sha256).await? {
        true => None,
        false => Some(intents::begin(writer, &blob.sha256, Kind::Place).await?),
    };
    // Bytes first, before the transaction so the writer connection is not held through the
    // fsyncs; the caller holds the placement lock, so no collector runs between the bytes
    // being placed and the row that keeps them alive. A failure leaves the intent: the sweep
    // removes whatever the step may have placed.
    place_bytes().await.map_err(CatalogError::Step)?;
    let mut tx = writer.begin().await?;
    let now = now_ms();
    let known: Option<(i64,)> = sqlx::query_as("select 1 from blobs where sha256 = ?")
        .bind(blob.sha256.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    sqlx::query(
        "insert into blobs (sha256, size, chunked_hash, created_ms, last_used_ms) values (?, ?, ?, ?, ?)
         on conflict (sha256) do update set last_used_ms = excluded.last_used_ms,
             chunked_hash = coalesce(blobs.chunked_hash, excluded.chunked_hash)",
    )
    .bind(blob.sha256.as_str())
    .bind(blob.size as i64)
    .bind(blob.chunked_hash.as_ref().map(Sha256Hex::as_str))
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("insert into holds (user_id, sha256, created_ms) values (?, ?, ?) on conflict do nothing")
        .bind(holder.0)
        .bind(blob.sha256.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if known.is_none() {
        super::jobs::enqueue_media(&mut tx, &blob.sha256, now).await?;
    }
    if let Some(id) = intent {
        intents::end_in(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The oldest blob nothing keeps alive, last used before the bound cutoff. Everything that can keep a
/// blob alive is listed here; later tables add their own `not exists` clause.
const COLLECTABLE: &str = "select b.sha256 from blobs b
         where b.last_used_ms <= ?
           and not exists (select 1 from holds h where h.sha256 = b.sha256)
           and not exists (select 1 from media m where m.sha256 = b.sha256)
           and not exists (select 1 from uploads u where u.sha256 = b.sha256)
           and not exists (select 1 from files f where f.sha256 = b.sha256)
           and not exists (select 1 from events e where e.sha256 = b.sha256 or e.thumbnail_sha256 = b.sha256)
           and not exists (select 1 from blob_media bm where bm.thumbnail_sha256 = b.sha256)
         order by b.last_used_ms limit 1";

/// Whether a collection pass would find anything (a read: no lock, no writer).
pub async fn has_collectable(reader: &SqlitePool, unused_for: Duration) -> CatalogResult<bool> {
    let cutoff = now_ms() - unused_for.as_millis() as i64;
    let found: Option<(String,)> = sqlx::query_as(COLLECTABLE).bind(cutoff).fetch_optional(reader).await?;
    Ok(found.is_some())
}

/// The caller holds the placement lock exclusively.
pub async fn collect_blob(
    writer: &SqlitePool,
    unused_for: Duration,
    delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
) -> CatalogResult<Option<Sha256Hex>> {
    let mut tx = writer.begin().await?;
    let cutoff = now_ms() - unused_for.as_millis() as i64;
    let candidate: Option<(String,)> = sqlx::query_as(COLLECTABLE).bind(cutoff).fetch_optional(&mut *tx).await?;
    let Some((hash,)) = candidate else {
        return Ok(None);
    };
    let sha256 = Sha256Hex::parse(&hash).map_err(|e| CatalogError::Schema(e.to_string()))?;
    // its media result goes with it (the thumbnail it kept alive is collected in its turn)
    sqlx::query("delete from blob_media where sha256 = ?").bind(&hash).execute(&mut *tx).await?;
    sqlx::query("delete from blobs where sha256 = ?").bind(&hash).execute(&mut *tx).await?;
    let intent = intents::begin_in(&mut tx, &sha256, Kind::Collect).await?;
    tx.commit().await?;
    // Rows first (with the intent), then bytes: a crash or a failed delete leaves bytes the
    // intent names, which the sweep removes; never a row without bytes. The exclusive
    // placement lock keeps every commit of this content out until the bytes are gone.
    match delete_bytes(sha256.clone()).await {
        Ok(()) => intents::end_in(&mut *writer.acquire().await?, intent).await?,
        Err(e) => tracing::warn!(error = %e, %sha256, "a collected blob's bytes stay until the intent sweep"),
    }
    Ok(Some(sha256))
}

pub async fn held_by_device_hash(
    reader: &SqlitePool,
    user: UserId,
    device_hashes: &[Sha256Hex],
) -> CatalogResult<Vec<BlobRecord>> {
    // the whole batch travels as one JSON array: one query, whatever its length
    let list = serde_json::to_string(device_hashes).expect("hashes serialise");
    // Driven by the wanted hashes (cross join fixes the order): an index lookup per hash.
    // Filtering the user's holds instead read every blob they hold on each call, which made
    // 10,000 media creates quadratic (P6).
    let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "select b.sha256, b.size, b.chunked_hash from json_each(?2) wanted
         cross join blobs b on b.chunked_hash = wanted.value
         cross join holds h on h.user_id = ?1 and h.sha256 = b.sha256
         union
         select b.sha256, b.size, b.chunked_hash from json_each(?2) wanted
         cross join blobs b on b.sha256 = wanted.value and b.chunked_hash is null
         cross join holds h on h.user_id = ?1 and h.sha256 = b.sha256",
    )
    .bind(user.0)
    .bind(list)
    .fetch_all(reader)
    .await?;
    rows.into_iter()
        .map(|(sha256, size, chunked)| {
            let parse = |h: &str| Sha256Hex::parse(h).map_err(|e| CatalogError::Schema(e.to_string()));
            Ok(BlobRecord {
                sha256: parse(&sha256)?,
                size: size as u64,
                chunked_hash: chunked.as_deref().map(parse).transpose()?,
            })
        })
        .collect()
}
