//! Blob intents on PostgreSQL (migration 0006). A commit writes its intent while it holds
//! the blob's advisory lock, so a sweep, which takes the same lock per intent, only ever sees
//! the intent of a commit that ended (recorded: the intent is gone) or failed (the intent
//! stays, and the bytes it may have placed are removed).

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};

use super::blobs::lock_blob;
use super::parse_hash;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::Sha256Hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Place,
    Collect,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Place => "place",
            Kind::Collect => "collect",
        }
    }
}

/// Writes an intent; with a pool it commits at once (durable before any byte moves).
pub(super) async fn begin<'e>(db: impl PgExecutor<'e>, sha256: &Sha256Hex, kind: Kind) -> CatalogResult<i64> {
    let (id,): (i64,) =
        sqlx::query_as("insert into blob_intents (sha256, kind, created_ms) values ($1, $2, $3) returning id")
            .bind(sha256.as_str())
            .bind(kind.as_str())
            .bind(now_ms())
            .fetch_one(db)
            .await?;
    Ok(id)
}

pub(super) async fn end<'e>(db: impl PgExecutor<'e>, id: i64) -> CatalogResult<()> {
    sqlx::query("delete from blob_intents where id = $1").bind(id).execute(db).await?;
    Ok(())
}

pub async fn sweep(pool: &PgPool, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
    let cutoff = now_ms() - older_than.as_millis() as i64;
    let intents: Vec<(i64, String)> =
        sqlx::query_as("select id, sha256 from blob_intents where created_ms <= $1 order by id limit 1000")
            .bind(cutoff)
            .fetch_all(pool)
            .await?;
    let mut resolved = 0;
    for (id, hash) in intents {
        let sha256 = parse_hash(&hash)?;
        let mut tx = pool.begin().await?;
        lock_blob(&mut tx, &hash).await?;
        // under the lock: a commit holding it has ended, and its intent with it
        let (still, recorded): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from blob_intents where id = $1), exists (select 1 from blobs where sha256 = $2)",
        )
        .bind(id)
        .bind(&hash)
        .fetch_one(&mut *tx)
        .await?;
        if !still {
            continue;
        }
        if !recorded && let Err(e) = delete_bytes(sha256.clone()).await {
            tracing::warn!(error = %e, %sha256, "could not remove the bytes of an interrupted write; will retry");
            continue;
        }
        end(&mut *tx, id).await?;
        tx.commit().await?;
        resolved += 1;
    }
    Ok(resolved)
}

pub async fn pending(pool: &PgPool) -> CatalogResult<Vec<Sha256Hex>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("select distinct sha256 from blob_intents order by sha256").fetch_all(pool).await?;
    rows.into_iter().map(|(h,)| parse_hash(&h)).collect()
}
