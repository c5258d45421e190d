//! The blob critical section: what keeps collection from deleting bytes a commit of the
//! same content has just relied on. This is where the backends genuinely differ.
//!
//! - SQLite: the `placement` lock, in-process (one server per data directory). Commits hold
//!   it shared while they place bytes, outside the writer transaction, so concurrent uploads
//!   move and fsync their files at once; collection and the intent sweep hold it exclusively.
//!   Rows are then written in ordinary writer transactions.
//! - PostgreSQL: an advisory lock per content hash. A commit takes it transaction-scoped and
//!   records its rows in that same transaction (held across the placement); collection takes
//!   it session-scoped on a connection of its own, because it must outlive the transaction
//!   that removes the rows until the bytes are gone too.
//!
//! A [`Section`] runs statements itself ([`Exec`]): in the right transaction for its backend.

use async_trait::async_trait;
use tokio::sync::{RwLockReadGuard, RwLockWriteGuard};

use super::db::{Db, Dialect, Exec, PgDb, PgSession, Row, Tx, Value};
use super::{CatalogResult, SqlCatalog};
use crate::domain::Sha256Hex;

/// What the section is for. On SQLite a commit's section is shared (placements of different
/// content proceed at once) and collection's exclusive; on PostgreSQL both are exclusive per
/// blob, the commit's for one transaction, the collection's for a whole session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Shared,
    Exclusive,
}

/// Held while a blob's bytes and rows change together.
pub(super) struct Section<'a> {
    catalog: &'a SqlCatalog,
    hold: Hold<'a>,
    /// SQLite: the writer transaction begun for the section's rows (after the bytes moved);
    /// PostgreSQL commits: the transaction holding the lock.
    tx: Option<Tx<'a>>,
}

enum Hold<'a> {
    Sqlite(#[allow(dead_code, reason = "held, not read")] SqliteHold<'a>),
    /// The lock is in `tx` and ends with it.
    PgTransaction,
    /// A connection of its own holding the session lock (see [`PgSession`]).
    PgSession(PgSession),
}

enum SqliteHold<'a> {
    #[allow(dead_code, reason = "held, not read")]
    Shared(RwLockReadGuard<'a, ()>),
    #[allow(dead_code, reason = "held, not read")]
    Exclusive(RwLockWriteGuard<'a, ()>),
}

/// The advisory lock name of a blob.
fn blob_lock(sha256: &Sha256Hex) -> String {
    format!("blob:{sha256}")
}

impl SqlCatalog {
    /// Enters the critical section of `sha256` (every blob at once, on SQLite).
    pub(super) async fn section(&self, sha256: &Sha256Hex, access: Access) -> CatalogResult<Section<'_>> {
        let (hold, tx) = match (&self.db, access) {
            (Db::Sqlite(_), Access::Shared) => (Hold::Sqlite(SqliteHold::Shared(self.placement.read().await)), None),
            (Db::Sqlite(_), Access::Exclusive) => {
                (Hold::Sqlite(SqliteHold::Exclusive(self.placement.write().await)), None)
            }
            (Db::Postgres(_), Access::Shared) => {
                let mut tx = self.db.begin().await?;
                lock_name(&mut tx, &blob_lock(sha256)).await?;
                (Hold::PgTransaction, Some(tx))
            }
            (Db::Postgres(pg), Access::Exclusive) => (Hold::PgSession(session(pg, sha256).await?), None),
        };
        Ok(Section { catalog: self, hold, tx })
    }

    /// SQLite's section over every blob at once, for a sweep of many intents; `None` on
    /// PostgreSQL (each intent takes its blob's section there).
    pub(super) async fn sqlite_exclusive(&self) -> Option<RwLockWriteGuard<'_, ()>> {
        match self.db {
            Db::Sqlite(_) => Some(self.placement.write().await),
            Db::Postgres(_) => None,
        }
    }
}

async fn session(pg: &PgDb, sha256: &Sha256Hex) -> CatalogResult<PgSession> {
    let mut session = pg.session().await?;
    session.exec("select pg_advisory_lock(hashtextextended($1, 0))", params![blob_lock(sha256)]).await?;
    Ok(session)
}

impl Section<'_> {
    /// Whether the content is recorded, seen from inside the section (SQLite reads it
    /// without taking the writer: bytes are about to move, and the writer must not wait).
    pub(super) async fn recorded(&mut self, sha256: &Sha256Hex) -> CatalogResult<bool> {
        let sql = "select 1 from blobs where sha256 = $1";
        let row = match (&mut self.hold, self.tx.as_mut()) {
            (_, Some(tx)) => tx.opt(sql, params![sha256]).await?,
            (Hold::PgSession(session), None) => session.opt(sql, params![sha256]).await?,
            _ => self.catalog.db.read().await?.opt(sql, params![sha256]).await?,
        };
        Ok(row.is_some())
    }

    /// Commits the section's rows so far (it stays entered).
    pub(super) async fn commit(&mut self) -> CatalogResult<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        if let Hold::PgSession(session) = &mut self.hold {
            session.commit().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Exec for Section<'_> {
    fn dialect(&self) -> Dialect {
        self.catalog.db.dialect()
    }

    async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        match &mut self.hold {
            Hold::PgSession(session) => session.in_tx().await?.rows(sql, params).await,
            _ => {
                if self.tx.is_none() {
                    self.tx = Some(self.catalog.db.begin().await?);
                }
                self.tx.as_mut().expect("begun").rows(sql, params).await
            }
        }
    }

    async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        match &mut self.hold {
            Hold::PgSession(session) => session.in_tx().await?.exec(sql, params).await,
            _ => {
                if self.tx.is_none() {
                    self.tx = Some(self.catalog.db.begin().await?);
                }
                self.tx.as_mut().expect("begun").exec(sql, params).await
            }
        }
    }
}

/// Takes the transaction-scoped advisory lock `name` (released at commit or rollback); a no-op
/// on SQLite, whose single writer already orders write transactions.
pub(super) async fn lock_name(tx: &mut Tx<'_>, name: &str) -> CatalogResult<()> {
    if let Tx::Postgres(_) = tx {
        tx.exec("select pg_advisory_xact_lock(hashtextextended($1, 0))", params![name]).await?;
    }
    Ok(())
}
