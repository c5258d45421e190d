//! Opening the catalog: migrating its schema (sqlx's migrator, one directory per backend)
//! and connecting the driver the catalog then runs on. A catalog migrated by a newer Ferry is
//! refused rather than misread; an unreachable PostgreSQL fails within [`CONNECT_TIMEOUT`],
//! naming the server but never the password.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::db::{Db, PgDb, SqliteDb, classify_pg};
use super::{CatalogError, CatalogResult, SqlCatalog};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long opening waits for PostgreSQL before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl SqlCatalog {
    /// Opens the catalog at `url`: `sqlite://PATH` (created when missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    pub async fn open(url: &str) -> CatalogResult<Self> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Db::Postgres(open_postgres(url).await?)
        } else if url.starts_with("sqlite:") {
            Db::Sqlite(Box::new(open_sqlite(url).await?))
        } else {
            return Err(CatalogError::Schema(format!("unsupported database URL scheme in '{}'", describe_url(url))));
        };
        let catalog = Self { db, placement: tokio::sync::RwLock::new(()) };
        catalog.recount_usage_if_due().await?;
        Ok(catalog)
    }

    /// Migration 0012 asks for each account's usage to be counted from its rows once.
    async fn recount_usage_if_due(&self) -> CatalogResult<()> {
        use super::db::Exec;
        let due = "select 1 from settings where key = 'usage_recount_due'";
        if self.db.read().await?.opt(due, &[]).await?.is_none() {
            return Ok(());
        }
        super::Usage::recount_usage(self).await?;
        let mut tx = self.db.begin().await?;
        tx.exec("delete from settings where key = 'usage_recount_due'", &[]).await?;
        tx.commit().await
    }

    /// Which SQL dialect the catalog runs on.
    pub fn dialect(&self) -> super::db::Dialect {
        self.db.dialect()
    }
}

/// The steps of SQLite's plan for `sql` on a fresh catalog (`SCAN …`, `SEARCH … USING INDEX …`,
/// `USE TEMP B-TREE …`): for tests that hold a hot query to the plan it was written for.
#[cfg(test)]
pub(super) async fn sqlite_plan(sql: &str) -> Vec<String> {
    use super::db::Exec;
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqlCatalog::open(&format!("sqlite://{}/catalog.db", dir.path().display())).await.unwrap();
    let rows = catalog.db.read().await.unwrap().rows(&format!("explain query plan {sql}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get::<String>(3).unwrap()).collect()
}

/// A URL as messages may show it: without the user's password.
fn describe_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

async fn open_sqlite(url: &str) -> CatalogResult<SqliteDb> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| CatalogError::Schema(format!("bad SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let path: PathBuf = options.get_filename().to_owned();
    // the schema is migrated through sqlx (its `_sqlx_migrations` history), then closed: the
    // catalog itself runs on rusqlite (see `db::sqlite`)
    let migrator = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(sqlite_error)?;
    check_newest(&SQLITE_MIGRATIONS, newest_applied_sqlite(&migrator).await?)?;
    SQLITE_MIGRATIONS.run(&migrator).await.map_err(|e| CatalogError::Schema(e.to_string()))?;
    migrator.close().await;
    SqliteDb::open(&path)
}

async fn newest_applied_sqlite(pool: &sqlx::SqlitePool) -> CatalogResult<Option<i64>> {
    let exists: Option<(String,)> =
        sqlx::query_as("select name from sqlite_master where type = 'table' and name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await
            .map_err(sqlite_error)?;
    if exists.is_none() {
        return Ok(None);
    }
    let (newest,): (Option<i64>,) =
        sqlx::query_as("select max(version) from _sqlx_migrations").fetch_one(pool).await.map_err(sqlite_error)?;
    Ok(newest)
}

fn sqlite_error(err: sqlx::Error) -> CatalogError {
    CatalogError::Backend(err.to_string())
}

async fn open_postgres(url: &str) -> CatalogResult<PgDb> {
    let options =
        PgConnectOptions::from_str(url).map_err(|e| CatalogError::Schema(format!("bad PostgreSQL URL: {e}")))?;
    // One direct connection first: the pool retries a refused connection until its timeout
    // and then reports only "timed out", where this reports the cause at once.
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(probe)) => probe.close().await.map_err(classify_pg)?,
        Ok(Err(e)) => return Err(unreachable(&options, &cause(&e))),
        Err(_) => return Err(unreachable(&options, &format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options.disable_statement_logging())
        .await
        .map_err(classify_pg)?;
    let exists: (bool,) = sqlx::query_as("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(&pool)
        .await
        .map_err(classify_pg)?;
    if exists.0 {
        let (newest,): (Option<i64>,) =
            sqlx::query_as("select max(version) from _sqlx_migrations").fetch_one(&pool).await.map_err(classify_pg)?;
        check_newest(&POSTGRES_MIGRATIONS, newest)?;
    }
    POSTGRES_MIGRATIONS.run(&pool).await.map_err(|e| CatalogError::Schema(e.to_string()))?;
    Ok(PgDb::new(pool))
}

/// Refuses a catalog migrated past what this binary knows.
fn check_newest(migrator: &Migrator, newest: Option<i64>) -> CatalogResult<()> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match newest {
        Some(v) if v > known => Err(CatalogError::Schema(format!(
            "the catalog was migrated by a newer Ferry (schema {v}, this binary knows up to {known})"
        ))),
        _ => Ok(()),
    }
}

/// "HOST:PORT (database DB, user USER)": where a URL points, without its password.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{} (database {}, user {})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

fn unreachable(options: &PgConnectOptions, cause: &str) -> CatalogError {
    CatalogError::Unavailable(format!("cannot connect to PostgreSQL at {}: {cause}", describe(options)))
}

/// The server's own words for a failed connection (refused, unknown database, bad password).
fn cause(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_owned(),
        other => other.to_string(),
    }
}
