//! PostgreSQL through sqlx's pool. Values are bound with their SQL types (a NULL keeps its
//! type, which PostgreSQL needs to plan the statement) and columns are read back by their
//! declared types into [`Value`]s.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row as _, TypeInfo};

use super::value::{Row, Value};
use crate::catalog::{CatalogError, CatalogResult};

pub struct PgDb {
    pub(crate) pool: PgPool,
    pub(super) waits: super::ConnectionWaits,
}

impl PgDb {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, waits: Default::default() }
    }

    pub(super) async fn connection(&self) -> CatalogResult<PgConn> {
        Ok(PgConn(self.pool.acquire().await.map_err(classify)?))
    }

    pub(super) async fn begin(&self) -> CatalogResult<PgTx> {
        Ok(PgTx(self.pool.begin().await.map_err(classify)?))
    }

    /// A connection of its own, outside the pool: closed when dropped, so a session-level
    /// lock taken on it can never outlive its holder (even a cancelled one).
    pub async fn session(&self) -> CatalogResult<PgSession> {
        let conn = self.pool.acquire().await.map_err(classify)?.detach();
        Ok(PgSession { conn, in_tx: false })
    }
}

/// A detached connection (see [`PgDb::session`]) with transactions begun and ended by hand.
pub struct PgSession {
    conn: sqlx::PgConnection,
    in_tx: bool,
}

impl PgSession {
    /// The session, inside a transaction (begun now if none is open).
    pub async fn in_tx(&mut self) -> CatalogResult<&mut Self> {
        if !self.in_tx {
            sqlx::query("begin").execute(&mut self.conn).await.map_err(classify)?;
            self.in_tx = true;
        }
        Ok(self)
    }

    pub async fn commit(&mut self) -> CatalogResult<()> {
        if self.in_tx {
            self.in_tx = false;
            sqlx::query("commit").execute(&mut self.conn).await.map_err(classify)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::Exec for PgSession {
    fn dialect(&self) -> super::Dialect {
        super::Dialect::Postgres
    }

    async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        let rows = query(sql, params).fetch_all(&mut self.conn).await.map_err(classify)?;
        rows.iter().map(row).collect()
    }

    async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        Ok(query(sql, params).execute(&mut self.conn).await.map_err(classify)?.rows_affected())
    }
}

pub struct PgConn(PoolConnection<Postgres>);

pub struct PgTx(sqlx::Transaction<'static, Postgres>);

impl PgConn {
    pub async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        let rows = query(sql, params).fetch_all(&mut *self.0).await.map_err(classify)?;
        rows.iter().map(row).collect()
    }

    pub async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        Ok(query(sql, params).execute(&mut *self.0).await.map_err(classify)?.rows_affected())
    }
}

impl PgTx {
    pub async fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        let rows = query(sql, params).fetch_all(&mut *self.0).await.map_err(classify)?;
        rows.iter().map(row).collect()
    }

    pub async fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        Ok(query(sql, params).execute(&mut *self.0).await.map_err(classify)?.rows_affected())
    }

    pub async fn commit(self) -> CatalogResult<()> {
        self.0.commit().await.map_err(classify)
    }
}

fn query<'q>(sql: &'q str, params: &[Value]) -> Query<'q, Postgres, PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in params {
        query = match value {
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.clone()),
            Value::Bytes(v) => query.bind(v.clone()),
            Value::Bool(v) => query.bind(*v),
            Value::List(items) => query.bind(items.clone()),
            Value::Null => query.bind(None::<String>),
        };
    }
    query
}

fn row(row: &PgRow) -> CatalogResult<Row> {
    let mut values = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let decoded = match column.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i).map(Value::Int),
            "INT4" => row.try_get::<Option<i32>, _>(i).map(|v| Value::Int(v.map(i64::from))),
            "INT2" => row.try_get::<Option<i16>, _>(i).map(|v| Value::Int(v.map(i64::from))),
            "BOOL" => row.try_get::<Option<bool>, _>(i).map(Value::Bool),
            "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(i).map(Value::Bytes),
            _ => row.try_get::<Option<String>, _>(i).map(Value::Text),
        };
        values.push(decoded.map_err(|e| CatalogError::Schema(format!("column {}: {e}", column.name())))?);
    }
    Ok(Row(values))
}

/// PostgreSQL's errors as the catalog's.
pub(crate) fn classify(err: sqlx::Error) -> CatalogError {
    match &err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => CatalogError::Unique(db.message().to_owned()),
            Some("23503") => CatalogError::NotFound("a row this one refers to".into()),
            Some("53100") => CatalogError::Full(db.message().to_owned()),
            // the server is shutting down, or not accepting connections yet
            Some("57P01" | "57P02" | "57P03") => CatalogError::Unavailable(db.message().to_owned()),
            _ => CatalogError::Backend(err.to_string()),
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            CatalogError::Unavailable(err.to_string())
        }
        _ => CatalogError::Backend(err.to_string()),
    }
}
