//! The catalog's database layer: one way to run the catalog's one SQL text on either backend.
//!
//! Statements are written once, in PostgreSQL's `$n` placeholder form with portable SQL
//! (`true`/`false`, `cast`, `coalesce`, `on conflict`, `returning`); SQLite gets them with
//! `?n` placeholders. Parameters and columns travel as driver-neutral [`Value`]s, so rows are
//! decoded the same way whichever database answered, and no driver type leaks out.
//!
//! - SQLite (`sqlite`): rusqlite, on the calling thread — reads from a small pool of
//!   connections, writes on the one writer connection (held for a transaction, so write
//!   transactions never conflict). A small indexed read costs microseconds; handing it to a
//!   driver thread and back (what sqlx does) cost more than the query (BENCHMARKS.md, P5).
//! - PostgreSQL (`postgres`): sqlx's pool, as before.
//!
//! What genuinely differs per backend (locks, list parameters) is asked of [`Dialect`].

mod postgres;
mod sqlite;
mod sqlite_checkpoint;
mod value;

use async_trait::async_trait;

pub(crate) use postgres::classify as classify_pg;
pub use postgres::{PgDb, PgSession};
pub use sqlite::SqliteDb;
pub use value::{FromValue, IntoValue, Row, Value, column_size};

use super::CatalogResult;

/// The SQL dialect a statement runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A subquery producing the texts of list parameter `$n` (bound with [`Value::list`]) as
    /// one column named `v`: SQLite reads it as a JSON array, PostgreSQL as a `text[]`.
    pub fn list(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("(select value as v from json_each(${n}))"),
            Dialect::Postgres => format!("(select unnest(cast(${n} as text[])) as v)"),
        }
    }

    /// A join that keeps the written order (SQLite plans `cross join` left to right, which
    /// lets a short list drive index lookups; PostgreSQL plans joins itself and has no
    /// `cross join … on`).
    pub fn ordered_join(self) -> &'static str {
        match self {
            Dialect::Sqlite => "cross join",
            Dialect::Postgres => "join",
        }
    }

    /// The larger of two integer expressions (`max` is an aggregate in PostgreSQL).
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Sqlite => format!("max({a}, {b})"),
            Dialect::Postgres => format!("greatest({a}, {b})"),
        }
    }

    /// The text of field `key` of a JSON object kept in a text column.
    pub fn json_text(self, column: &str, key: &'static str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Dialect::Postgres => format!("(cast({column} as json) ->> '{key}')"),
        }
    }

    /// A row lock on what a `select` read (PostgreSQL); SQLite's writer is the only one.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " for update",
        }
    }

    /// A shared row lock (see [`Dialect::for_update`]).
    pub fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " for share",
        }
    }
}

/// Runs statements: a pooled read connection, or a write transaction.
#[async_trait]
pub trait Exec: Send {
    fn dialect(&self) -> Dialect;
    /// Every row `sql` returns.
    async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>>;
    /// Runs `sql`; returns how many rows it changed.
    async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64>;

    /// The first row, if any.
    async fn opt(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Option<Row>> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    /// The one row `sql` must return.
    async fn one(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Row> {
        self.opt(sql, params)
            .await?
            .ok_or_else(|| super::CatalogError::Schema(format!("no row from: {}", first_line(sql))))
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// Connections handed out and the time spent getting them: waiting for a pooled connection
/// (PostgreSQL) or for the one writer (SQLite). For `/metrics`.
#[derive(Default)]
pub struct Waits {
    acquires: std::sync::atomic::AtomicU64,
    waited_nanos: std::sync::atomic::AtomicU64,
}

impl Waits {
    fn add(&self, since: std::time::Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        self.acquires.fetch_add(1, Relaxed);
        self.waited_nanos.fetch_add(since.elapsed().as_nanos() as u64, Relaxed);
    }

    /// (connections handed out, seconds spent getting them).
    pub fn totals(&self) -> (u64, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.acquires.load(Relaxed), self.waited_nanos.load(Relaxed) as f64 / 1e9)
    }
}

/// How long the catalog's callers waited for connections, by what they were for.
#[derive(Default)]
pub struct ConnectionWaits {
    pub reads: Waits,
    pub writes: Waits,
}

/// The catalog's database: the embedded SQLite file or a PostgreSQL server.
pub enum Db {
    Sqlite(Box<SqliteDb>),
    Postgres(PgDb),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A connection for reads (it sees the last committed state).
    pub async fn read(&self) -> CatalogResult<Conn<'_>> {
        let asked = std::time::Instant::now();
        let conn = match self {
            Db::Sqlite(db) => Conn::Sqlite(db.reader()?),
            Db::Postgres(db) => Conn::Postgres(db.connection().await?),
        };
        self.waits().reads.add(asked);
        Ok(conn)
    }

    /// A count that holds only while nothing in the catalog changed: every commit, by this
    /// process or another, moves it (so may a checkpoint or a new read connection). For
    /// answers kept in memory while what they were read from holds. `None` on PostgreSQL:
    /// replicas share it, and asking would cost the round trip a kept answer saves.
    pub async fn generation(&self) -> CatalogResult<Option<u64>> {
        match self {
            Db::Sqlite(db) => Ok(Some(db.generation()?)),
            Db::Postgres(_) => Ok(None),
        }
    }

    /// A write transaction: all of its statements or none (dropped uncommitted, it rolls back).
    pub async fn begin(&self) -> CatalogResult<Tx<'_>> {
        let asked = std::time::Instant::now();
        let tx = match self {
            Db::Sqlite(db) => Tx::Sqlite(db.begin().await?),
            Db::Postgres(db) => Tx::Postgres(db.begin().await?),
        };
        self.waits().writes.add(asked);
        Ok(tx)
    }

    pub fn waits(&self) -> &ConnectionWaits {
        match self {
            Db::Sqlite(db) => &db.waits,
            Db::Postgres(db) => &db.waits,
        }
    }
}

/// A read connection of either backend.
pub enum Conn<'a> {
    Sqlite(sqlite::Reader<'a>),
    Postgres(postgres::PgConn),
}

/// A write transaction of either backend.
pub enum Tx<'a> {
    Sqlite(sqlite::WriteTx<'a>),
    Postgres(postgres::PgTx),
}

pub use postgres::PgTx;

impl Tx<'_> {
    pub async fn commit(self) -> CatalogResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit(),
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

macro_rules! dispatch_exec {
    ($type:ident) => {
        #[async_trait]
        impl Exec for $type<'_> {
            fn dialect(&self) -> Dialect {
                match self {
                    $type::Sqlite(_) => Dialect::Sqlite,
                    $type::Postgres(_) => Dialect::Postgres,
                }
            }
            async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
                match self {
                    $type::Sqlite(c) => c.rows(sql, params),
                    $type::Postgres(c) => c.rows(sql, params).await,
                }
            }
            async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
                match self {
                    $type::Sqlite(c) => c.exec(sql, params),
                    $type::Postgres(c) => c.exec(sql, params).await,
                }
            }
        }
    };
}

dispatch_exec!(Conn);
dispatch_exec!(Tx);
