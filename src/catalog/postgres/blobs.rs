//! Blobs and holds on PostgreSQL. Committing and collecting one blob serialise on an
//! advisory lock keyed by its SHA-256, held until their transaction ends; blobs with other
//! hashes go through in parallel.

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use super::intents::{self, Kind};
use super::{advisory_lock, hash_array, parse_hash};
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{Sha256Hex, UserId};

type BlobRow = (String, i64, Option<String>);

fn blob_from_row((sha256, size, chunked): BlobRow) -> CatalogResult<BlobRecord> {
    Ok(BlobRecord {
        sha256: parse_hash(&sha256)?,
        size: size as u64,
        chunked_hash: chunked.as_deref().map(parse_hash).transpose()?,
    })
}

/// The blob's critical section (see module docs).
pub(super) async fn lock_blob(tx: &mut Transaction<'_, Postgres>, sha256: &str) -> CatalogResult<()> {
    advisory_lock(tx, &format!("blob:{sha256}")).await
}

pub async fn blob(pool: &PgPool, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>> {
    let row: Option<BlobRow> = sqlx::query_as("select sha256, size, chunked_hash from blobs where sha256 = $1")
        .bind(sha256.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(blob_from_row).transpose()
}

pub async fn has_blobs(pool: &PgPool) -> CatalogResult<bool> {
    let (any,): (bool,) = sqlx::query_as("select exists (select 1 from blobs)").fetch_one(pool).await?;
    Ok(any)
}

pub async fn all_blob_hashes(pool: &PgPool) -> CatalogResult<Vec<Sha256Hex>> {
    let rows: Vec<(String,)> = sqlx::query_as("select sha256 from blobs order by sha256").fetch_all(pool).await?;
    rows.into_iter().map(|(h,)| parse_hash(&h)).collect()
}

pub async fn holds(pool: &PgPool, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool> {
    let (held,): (bool,) = sqlx::query_as("select exists (select 1 from holds where user_id = $1 and sha256 = $2)")
        .bind(user.0)
        .bind(sha256.as_str())
        .fetch_one(pool)
        .await?;
    Ok(held)
}

pub async fn release_hold(pool: &PgPool, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query("delete from holds where user_id = $1 and sha256 = $2")
        .bind(user.0)
        .bind(sha256.as_str())
        .execute(&mut *tx)
        .await?;
    if released.rows_affected() > 0 {
        // the grace period of GC counts from the last release
        sqlx::query("update blobs set last_used_ms = $1 where sha256 = $2")
            .bind(now_ms())
            .bind(sha256.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn commit_blob(pool: &PgPool, blob: &BlobRecord, holder: UserId, place_bytes: BlobStep) -> CatalogResult<()> {
    let mut tx = pool.begin().await?;
    lock_blob(&mut tx, blob.sha256.as_str()).await?;
    let (known,): (bool,) = sqlx::query_as("select exists (select 1 from blobs where sha256 = $1)")
        .bind(blob.sha256.as_str())
        .fetch_one(&mut *tx)
        .await?;
    // New content gets its intent (committed at once, on another connection) before its
    // bytes move; recorded content keeps its bytes while the lock is held.
    let intent = match known {
        true => None,
        false => Some(intents::begin(pool, &blob.sha256, Kind::Place).await?),
    };
    // Bytes first, inside the blob's lock: a collector cannot run between the bytes being
    // placed and the row that keeps them alive. A failure leaves the intent for the sweep.
    place_bytes().await.map_err(CatalogError::Step)?;
    let now = now_ms();
    sqlx::query(
        "insert into blobs (sha256, size, chunked_hash, created_ms, last_used_ms) values ($1, $2, $3, $4, $4)
         on conflict (sha256) do update set last_used_ms = excluded.last_used_ms,
             chunked_hash = coalesce(blobs.chunked_hash, excluded.chunked_hash)",
    )
    .bind(blob.sha256.as_str())
    .bind(blob.size as i64)
    .bind(blob.chunked_hash.as_ref().map(Sha256Hex::as_str))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("insert into holds (user_id, sha256, created_ms) values ($1, $2, $3) on conflict do nothing")
        .bind(holder.0)
        .bind(blob.sha256.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if !known {
        super::jobs::enqueue_media(&mut tx, &blob.sha256, now).await?;
    }
    if let Some(id) = intent {
        intents::end(&mut *tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Everything that keeps a blob alive; later tables add their own `not exists` clause.
const COLLECTABLE: &str = "b.last_used_ms <= $1
    and not exists (select 1 from holds h where h.sha256 = b.sha256)
    and not exists (select 1 from media m where m.sha256 = b.sha256)
    and not exists (select 1 from uploads u where u.sha256 = b.sha256)
    and not exists (select 1 from files f where f.sha256 = b.sha256)
    and not exists (select 1 from events e where e.sha256 = b.sha256)
    and not exists (select 1 from events e where e.thumbnail_sha256 = b.sha256)
    and not exists (select 1 from blob_media bm where bm.thumbnail_sha256 = b.sha256)";

pub async fn collect_blob(
    pool: &PgPool,
    unused_for: Duration,
    delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
) -> CatalogResult<Option<Sha256Hex>> {
    let cutoff = now_ms() - unused_for.as_millis() as i64;
    let candidate: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select b.sha256 from blobs b where {COLLECTABLE} order by b.last_used_ms limit 1"
    )))
    .bind(cutoff)
    .fetch_optional(pool)
    .await?;
    let Some((hash,)) = candidate else { return Ok(None) };
    // The blob's lock is held from before the rows go until after the bytes are gone, across
    // the transaction's commit: a session-level lock on a connection of its own, which is
    // closed (releasing the lock) however this call ends, even if it is cancelled.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("select pg_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("blob:{hash}"))
        .execute(&mut conn)
        .await?;
    let collected = collect_locked(&mut conn, cutoff, &hash, delete_bytes).await;
    let _ = conn.close().await;
    collected
}

/// The collection proper, under the blob's session lock on `conn`.
async fn collect_locked(
    conn: &mut PgConnection,
    cutoff: i64,
    hash: &str,
    delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
) -> CatalogResult<Option<Sha256Hex>> {
    let mut tx = conn.begin().await?;
    // Lock the row too: a write that would reference the blob (a hold, a media item, an
    // upload, a library file) checks its foreign key under a share lock on it, so from here
    // none can commit until this transaction ends, and none committed before is missed by
    // the re-check below (read committed: a fresh snapshot per statement).
    sqlx::query("select 1 from blobs where sha256 = $1 for update").bind(hash).execute(&mut *tx).await?;
    let still: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select b.sha256 from blobs b where b.sha256 = $2 and {COLLECTABLE}"
    )))
    .bind(cutoff)
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    if still.is_none() {
        // a commit got there first; the next call picks another candidate
        return Ok(None);
    }
    let sha256 = parse_hash(hash)?;
    // its media result goes with it (the thumbnail it kept alive is collected in its turn)
    sqlx::query("delete from blob_media where sha256 = $1").bind(hash).execute(&mut *tx).await?;
    sqlx::query("delete from blobs where sha256 = $1").bind(hash).execute(&mut *tx).await?;
    let intent = intents::begin(&mut *tx, &sha256, Kind::Collect).await?;
    tx.commit().await?;
    // Rows first (with the intent), then bytes, still under the lock: a crash or a failed
    // delete leaves bytes the intent names, which the sweep removes; never a row without bytes.
    match delete_bytes(sha256.clone()).await {
        Ok(()) => intents::end(&mut *conn, intent).await?,
        Err(e) => tracing::warn!(error = %e, %sha256, "a collected blob's bytes stay until the intent sweep"),
    }
    Ok(Some(sha256))
}

pub async fn held_by_device_hash(
    pool: &PgPool,
    user: UserId,
    device_hashes: &[Sha256Hex],
) -> CatalogResult<Vec<BlobRecord>> {
    // the whole batch travels as one text[] parameter: one query, whatever its length
    let rows: Vec<BlobRow> = sqlx::query_as(
        // one index lookup per wanted hash, as in the SQLite catalog
        "select b.sha256, b.size, b.chunked_hash from blobs b
         join holds h on h.user_id = $1 and h.sha256 = b.sha256
         where b.chunked_hash = any($2)
         union
         select b.sha256, b.size, b.chunked_hash from blobs b
         join holds h on h.user_id = $1 and h.sha256 = b.sha256
         where b.sha256 = any($2) and b.chunked_hash is null",
    )
    .bind(user.0)
    .bind(hash_array(device_hashes))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(blob_from_row).collect()
}
