//! Blob intents on SQLite (migration 0006): written before bytes move, removed with the rows
//! that account for them. The sweep runs under the exclusive placement lock, so no commit of
//! this process is between writing its intent and recording its rows while it looks.

use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};

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

/// Writes an intent in its own transaction (durable before any byte moves). The explicit
/// commit matters: an autocommitted `insert … returning` read with one fetch commits when
/// the statement is reset, and sqlx drops an error there (a full disk) — the intent would
/// seem written and not be.
pub(super) async fn begin(writer: &SqlitePool, sha256: &Sha256Hex, kind: Kind) -> CatalogResult<i64> {
    let mut tx = writer.begin().await?;
    let id = begin_in(&mut tx, sha256, kind).await?;
    tx.commit().await?;
    Ok(id)
}

/// Writes an intent inside the caller's transaction.
pub(super) async fn begin_in(conn: &mut SqliteConnection, sha256: &Sha256Hex, kind: Kind) -> CatalogResult<i64> {
    let (id,): (i64,) =
        sqlx::query_as("insert into blob_intents (sha256, kind, created_ms) values (?, ?, ?) returning id")
            .bind(sha256.as_str())
            .bind(kind.as_str())
            .bind(now_ms())
            .fetch_one(conn)
            .await?;
    Ok(id)
}

pub(super) async fn end_in(conn: &mut SqliteConnection, id: i64) -> CatalogResult<()> {
    sqlx::query("delete from blob_intents where id = ?").bind(id).execute(conn).await?;
    Ok(())
}

/// Whether the content is recorded: then its bytes are stored, and while the placement lock
/// is held shared no collector can take them, so placing them again only drops a staged copy.
pub(super) async fn recorded(pool: &SqlitePool, sha256: &Sha256Hex) -> CatalogResult<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("select 1 from blobs where sha256 = ?").bind(sha256.as_str()).fetch_optional(pool).await?;
    Ok(row.is_some())
}

/// The caller holds the placement lock exclusively.
pub async fn sweep(writer: &SqlitePool, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
    let cutoff = now_ms() - older_than.as_millis() as i64;
    let intents: Vec<(i64, String)> =
        sqlx::query_as("select id, sha256 from blob_intents where created_ms <= ? order by id limit 1000")
            .bind(cutoff)
            .fetch_all(writer)
            .await?;
    let mut resolved = 0;
    for (id, hash) in intents {
        let sha256 = Sha256Hex::parse(&hash).map_err(|e| CatalogError::Schema(e.to_string()))?;
        if !recorded(writer, &sha256).await?
            && let Err(e) = delete_bytes(sha256.clone()).await
        {
            tracing::warn!(error = %e, %sha256, "could not remove the bytes of an interrupted write; will retry");
            continue;
        }
        let mut conn = writer.acquire().await?;
        end_in(&mut conn, id).await?;
        resolved += 1;
    }
    Ok(resolved)
}

pub async fn pending(reader: &SqlitePool) -> CatalogResult<Vec<Sha256Hex>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("select distinct sha256 from blob_intents order by sha256").fetch_all(reader).await?;
    rows.into_iter().map(|(h,)| Sha256Hex::parse(&h).map_err(|e| CatalogError::Schema(e.to_string()))).collect()
}
