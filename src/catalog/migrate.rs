//! Copying an embedded (SQLite) catalog into PostgreSQL, for `ferry admin migrate-store`.
//!
//! Both backends have the same tables and columns (the migrations are kept in step), so the
//! copy is generic: every table of the source, in creation order (so rows a foreign key
//! points at come first), row by row into the same columns, converted to PostgreSQL's types
//! (SQLite keeps booleans as integers). Ids are kept, so every reference stays valid; each
//! identity sequence then continues after the highest copied id. Rows already in the target
//! are left alone (`on conflict do nothing`), so an interrupted copy is simply run again;
//! `settings` takes the source's values, so signed URLs and tokens issued before keep working
//! (except the store binding: the target catalog is bound to the target store). Blob intents
//! are not copied: they name bytes of the old store, which its own sweep resolves.

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, Row};

use super::{CatalogError, CatalogResult, SqlCatalog};

/// How many rows one table gave and how many of them were new in the target.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    pub inserted: u64,
}

struct Column {
    name: String,
    data_type: String,
    identity: bool,
}

/// Copies every row of the SQLite catalog at `sqlite_url` into the PostgreSQL catalog at
/// `pg_url`. Both are migrated to the current schema first.
pub async fn copy_sqlite_to_postgres(sqlite_url: &str, pg_url: &str) -> CatalogResult<Vec<TableCopy>> {
    drop(SqlCatalog::open(sqlite_url).await?);
    drop(SqlCatalog::open(pg_url).await?);
    let source = SqlitePoolOptions::new().max_connections(1).connect(sqlite_url).await.map_err(backend)?;
    let target = PgPoolOptions::new().max_connections(1).connect(pg_url).await.map_err(backend)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table' \
         and name not like 'sqlite_%' and name not like '_sqlx_%' and name <> 'blob_intents' order by rowid",
    )
    .fetch_all(&source)
    .await
    .map_err(backend)?;
    let mut report = Vec::with_capacity(tables.len());
    for table in tables {
        let columns: Vec<Column> = sqlx::query(
            "select column_name::text, data_type::text, is_identity::text from information_schema.columns \
             where table_schema = current_schema() and table_name = $1 order by ordinal_position",
        )
        .bind(&table)
        .fetch_all(&target)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| Column { name: r.get(0), data_type: r.get(1), identity: r.get::<String, _>(2) == "YES" })
        .collect();
        if columns.is_empty() {
            return Err(CatalogError::Schema(format!("table {table} of the source is not in the target catalog")));
        }
        report.push(copy_table(&source, &target, &table, &columns).await?);
    }
    source.close().await;
    target.close().await;
    // the copied counters were the source's; count the target's rows
    super::Usage::recount_usage(&SqlCatalog::open(pg_url).await?).await?;
    Ok(report)
}

async fn copy_table(
    source: &sqlx::SqlitePool,
    target: &sqlx::PgPool,
    table: &str,
    columns: &[Column],
) -> CatalogResult<TableCopy> {
    let names = columns.iter().map(|c| format!("\"{}\"", c.name)).collect::<Vec<_>>().join(", ");
    let values = (1..=columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let overriding = if columns.iter().any(|c| c.identity) { "overriding system value" } else { "" };
    let on_conflict = if table == "settings" {
        "(key) do update set value = excluded.value where settings.value <> excluded.value"
    } else {
        "do nothing"
    };
    let insert = format!("insert into \"{table}\" ({names}) {overriding} values ({values}) on conflict {on_conflict}");
    // the binding of a catalog to its blob store is the target's own (the store differs)
    let filter = if table == "settings" { " where key <> 'store_id'" } else { "" };
    let select = format!("select {names} from \"{table}\"{filter}");
    let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(source);
    let mut tx = target.begin().await.map_err(backend)?;
    // the usage triggers wait: the accounts are counted once after the copy (migration 0012)
    sqlx::query("set local ferry.counting = 'off'").execute(&mut *tx).await.map_err(backend)?;
    let (mut seen, mut inserted) = (0, 0);
    while let Some(row) = rows.try_next().await.map_err(backend)? {
        let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
        for (i, column) in columns.iter().enumerate() {
            query = match column.data_type.as_str() {
                "bigint" | "integer" | "smallint" => query.bind(row.try_get::<Option<i64>, _>(i).map_err(backend)?),
                "boolean" => query.bind(row.try_get::<Option<i64>, _>(i).map_err(backend)?.map(|v| v != 0)),
                "bytea" => query.bind(row.try_get::<Option<Vec<u8>>, _>(i).map_err(backend)?),
                "double precision" | "real" => query.bind(row.try_get::<Option<f64>, _>(i).map_err(backend)?),
                _ => query.bind(row.try_get::<Option<String>, _>(i).map_err(backend)?),
            };
        }
        inserted += query.execute(&mut *tx).await.map_err(backend)?.rows_affected();
        seen += 1;
    }
    for column in columns.iter().filter(|c| c.identity) {
        let restart = format!(
            "select setval(pg_get_serial_sequence('\"{table}\"', '{0}'), \
             coalesce((select max(\"{0}\") from \"{table}\"), 0) + 1, false)",
            column.name
        );
        sqlx::query(AssertSqlSafe(restart)).execute(&mut *tx).await.map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(TableCopy { table: table.to_owned(), rows: seen, inserted })
}

fn backend(err: sqlx::Error) -> CatalogError {
    CatalogError::Backend(err.to_string())
}
