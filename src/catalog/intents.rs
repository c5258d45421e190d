//! Blob intents (migration 0006): written before bytes move, removed with the rows that
//! account for them. An intent is written in a transaction of its own — committed, so
//! durable, before any byte moves — while its blob's section is held, so the sweep (which
//! takes the same section) only ever sees the intent of a write that ended (recorded: the
//! intent is gone) or failed (the intent stays, and the bytes it may have placed go).

use std::time::Duration;

use super::db::Exec;
use super::section::Access;
use super::*;
use crate::clock::now_ms;

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

/// Writes an intent in the caller's transaction.
pub(super) async fn write_intent(exec: &mut dyn Exec, sha256: &Sha256Hex, kind: Kind) -> CatalogResult<i64> {
    let sql = "insert into blob_intents (sha256, kind, created_ms) values ($1, $2, $3) returning id";
    exec.one(sql, params![sha256, kind.as_str(), now_ms()]).await?.get(0)
}

/// Resolves one intent inside its blob's section: the bytes go unless the content is
/// recorded, then the intent goes. `false` when it was resolved meanwhile, or when its bytes
/// could not be removed (it stays for the next sweep).
async fn resolve(exec: &mut dyn Exec, id: i64, sha256: &Sha256Hex, delete_bytes: &ByteDeleter) -> CatalogResult<bool> {
    if exec.opt("select 1 from blob_intents where id = $1", params![id]).await?.is_none() {
        return Ok(false);
    }
    let recorded = exec.opt("select 1 from blobs where sha256 = $1", params![sha256]).await?.is_some();
    if !recorded && let Err(e) = delete_bytes(sha256.clone()).await {
        tracing::warn!(error = %e, %sha256, "could not remove the bytes of an interrupted write; will retry");
        return Ok(false);
    }
    exec.exec("delete from blob_intents where id = $1", params![id]).await?;
    Ok(true)
}

impl SqlCatalog {
    /// Writes an intent and commits it at once.
    pub(super) async fn begin_intent(&self, sha256: &Sha256Hex, kind: Kind) -> CatalogResult<i64> {
        let mut tx = self.db.begin().await?;
        let id = write_intent(&mut tx, sha256, kind).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Resolves every intent of one content now, inside its section (see `Blobs::resolve_intents_of`).
    pub(super) async fn resolve_now(&self, sha256: &Sha256Hex, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        let mut section = self.section(sha256, Access::Exclusive).await?;
        let ids = section.rows("select id from blob_intents where sha256 = $1", params![sha256]).await?;
        let mut resolved = 0;
        for row in ids {
            resolved += usize::from(resolve(&mut section, row.get(0)?, sha256, &delete_bytes).await?);
        }
        section.commit().await?;
        Ok(resolved)
    }

    /// Resolves intents older than `older_than` (see `Blobs::sweep_intents`).
    pub(super) async fn sweep(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        let cutoff = now_ms() - older_than.as_millis() as i64;
        let sql = "select id, sha256 from blob_intents where created_ms <= $1 order by id limit 1000";
        let intents = self.db.read().await?.rows(sql, params![cutoff]).await?;
        if intents.is_empty() {
            return Ok(0);
        }
        // SQLite: one exclusive section for the whole sweep; PostgreSQL: each intent in a
        // transaction holding its blob's lock (which a commit in progress holds until it ends)
        let all = self.sqlite_exclusive().await;
        let mut resolved = 0;
        for intent in intents {
            let (id, sha256): (i64, Sha256Hex) = (intent.get(0)?, intent.get(1)?);
            let done = match all {
                Some(_) => {
                    let mut tx = self.db.begin().await?;
                    let done = resolve(&mut tx, id, &sha256, &delete_bytes).await?;
                    tx.commit().await?;
                    done
                }
                None => {
                    let mut section = self.section(&sha256, Access::Shared).await?;
                    let done = resolve(&mut section, id, &sha256, &delete_bytes).await?;
                    section.commit().await?;
                    done
                }
            };
            resolved += usize::from(done);
        }
        Ok(resolved)
    }

    pub(super) async fn pending(&self) -> CatalogResult<Vec<Sha256Hex>> {
        let rows = self.db.read().await?.rows("select distinct sha256 from blob_intents order by sha256", &[]).await?;
        rows.iter().map(|r| r.get(0)).collect()
    }
}
