//! SQLite through rusqlite, on the calling thread. WAL mode: readers never wait for the
//! writer. Reads take a connection from a small pool (opened read-only, returned when
//! done); writes take the one writer connection for a whole `BEGIN IMMEDIATE` transaction,
//! so write transactions queue instead of failing with SQLITE_BUSY.
//!
//! Statements run inline: an indexed read or a small write takes microseconds, less than
//! a round trip to a worker thread. rusqlite and sqlx (which runs the migrations) link the
//! same `libsqlite3-sys` (see Cargo.toml).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::sqlite_checkpoint::{Checkpointer, WRITER_CHECKPOINT_PAGES};
use super::value::{Row, Value};
use crate::catalog::{CatalogError, CatalogResult};

/// Idle read connections kept; more are opened when needed and closed after.
const IDLE_READERS: usize = 8;
/// Prepared statements cached per connection (the catalog has about a hundred).
const STATEMENT_CACHE: usize = 256;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest sleep between two tries for the write lock held by another process.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(20);

pub struct SqliteDb {
    path: PathBuf,
    _checkpointer: Checkpointer,
    writer: tokio::sync::Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Tells the database's generation (see [`SqliteDb::generation`]).
    probe: Mutex<Probe>,
    pub(super) waits: super::ConnectionWaits,
}

/// A read-only connection that only asks `pragma data_version`, and the changes it counted.
struct Probe {
    conn: Connection,
    /// What the pragma answered last (`None`: never asked).
    seen_version: Option<i64>,
    generation: u64,
}

impl SqliteDb {
    /// Opens the database at `path` (created by the migrations beforehand).
    pub fn open(path: &Path) -> CatalogResult<Self> {
        let writer = connect(path, false)?;
        // never waits inside SQLite: [`SqliteDb::begin`] waits for the lock asynchronously, and
        // once it holds it nothing else in its transaction can be busy (in WAL mode, which the
        // catalog is opened in: a commit needs no further lock)
        writer.busy_timeout(Duration::ZERO).map_err(classify)?;
        Ok(Self {
            path: path.to_owned(),
            _checkpointer: Checkpointer::start(path, connect(path, false)?)?,
            writer: tokio::sync::Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            probe: Mutex::new(Probe { conn: connect(path, true)?, seen_version: None, generation: 0 }),
            waits: Default::default(),
        })
    }

    pub(super) fn reader(&self) -> CatalogResult<Reader<'_>> {
        let pooled = self.readers.lock().expect("not poisoned").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, true)?,
        };
        Ok(Reader { db: self, conn: Some(conn) })
    }

    /// The database's generation: a count that holds only while nothing was committed. The
    /// probe's `pragma data_version` changes when another connection — the writer, or another
    /// process — committed since the probe last asked, and the probe never writes. One
    /// connection asks, under a lock, so every commit is counted by the first question after
    /// it, and whatever is read after a generation was taken is at least as new as it. (Asked
    /// on the pooled readers instead, a reader opened when more reads than the pool holds run
    /// at once could not tell what it missed, and every new one would have moved the count.)
    pub(super) fn generation(&self) -> CatalogResult<u64> {
        let mut probe = self.probe.lock().expect("not poisoned");
        let version: i64 = probe
            .conn
            .prepare_cached("pragma data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map_err(classify)?;
        if probe.seen_version.replace(version) != Some(version) {
            probe.generation += 1;
        }
        Ok(probe.generation)
    }

    /// Waits for the write lock without holding up the thread: while another process (the
    /// admin CLI, a backup) holds it, `begin immediate` is tried again after a short sleep
    /// instead of SQLite's busy handler sleeping on the runtime's thread, so the server goes
    /// on answering everything that does not write meanwhile.
    pub(super) async fn begin(&self) -> CatalogResult<WriteTx<'_>> {
        let conn = self.writer.lock().await;
        let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            match conn.execute_batch("begin immediate") {
                Ok(()) => return Ok(WriteTx { conn, open: true }),
                Err(e) if is_busy(&e) && tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_LOCK_PAUSE);
                }
                Err(e) => return Err(classify(e)),
            }
        }
    }
}

fn connect(path: &Path, read_only: bool) -> CatalogResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL + NORMAL is durable against process crashes; fsync happens at checkpoints, which
    // the checkpointer's thread runs (see `sqlite_checkpoint`)
    conn.execute_batch(&format!(
        "pragma foreign_keys = on; pragma synchronous = normal; pragma wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES};"
    ))
    .map_err(classify)?;
    Ok(conn)
}

/// A pooled read connection.
pub struct Reader<'a> {
    db: &'a SqliteDb,
    conn: Option<Connection>,
}

impl Reader<'_> {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("held until dropped")
    }

    pub fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        rows(self.conn(), sql, params)
    }

    pub fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        exec(self.conn(), sql, params)
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.db.readers.lock().expect("not poisoned");
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// The writer connection inside `BEGIN IMMEDIATE`; rolled back when dropped uncommitted.
pub struct WriteTx<'a> {
    conn: tokio::sync::MutexGuard<'a, Connection>,
    open: bool,
}

impl WriteTx<'_> {
    pub fn rows(&mut self, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
        rows(&self.conn, sql, params)
    }

    pub fn exec(&mut self, sql: &str, params: &[Value]) -> CatalogResult<u64> {
        exec(&self.conn, sql, params)
    }

    pub fn commit(mut self) -> CatalogResult<()> {
        self.open = false;
        self.conn.execute_batch("commit").map_err(|e| {
            // a failed commit (a full disk) leaves the transaction open: end it here
            let _ = self.conn.execute_batch("rollback");
            classify(e)
        })
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("rollback");
        }
    }
}

/// `$n` placeholders as SQLite's `?n` (explicit numbers: a parameter may come twice, or
/// out of order).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: &[Value]) -> CatalogResult<()> {
    for (i, value) in params.iter().enumerate() {
        let at = i + 1;
        let bound = match value {
            Value::Int(v) => stmt.raw_bind_parameter(at, v),
            Value::Text(v) => stmt.raw_bind_parameter(at, v),
            Value::Bytes(v) => stmt.raw_bind_parameter(at, v),
            Value::Bool(v) => stmt.raw_bind_parameter(at, v.map(i64::from)),
            Value::List(items) => stmt.raw_bind_parameter(at, serde_json::to_string(items).expect("texts serialise")),
            Value::Null => stmt.raw_bind_parameter(at, rusqlite::types::Null),
        };
        bound.map_err(classify)?;
    }
    Ok(())
}

fn rows(conn: &Connection, sql: &str, params: &[Value]) -> CatalogResult<Vec<Row>> {
    let mut stmt = conn.prepare_cached(&placeholders(sql)).map_err(classify)?;
    bind(&mut stmt, params)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(classify)? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i).map_err(classify)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(Some(v)),
                ValueRef::Real(v) => Value::Text(Some(v.to_string())),
                // checked the fast way first: `from_utf8_lossy` walks text chunk by chunk
                ValueRef::Text(v) => Value::Text(Some(match std::str::from_utf8(v) {
                    Ok(text) => text.to_owned(),
                    Err(_) => String::from_utf8_lossy(v).into_owned(),
                })),
                ValueRef::Blob(v) => Value::Bytes(Some(v.to_vec())),
            });
        }
        out.push(Row(values));
    }
    Ok(out)
}

fn exec(conn: &Connection, sql: &str, params: &[Value]) -> CatalogResult<u64> {
    let mut stmt = conn.prepare_cached(&placeholders(sql)).map_err(classify)?;
    bind(&mut stmt, params)?;
    if stmt.column_count() == 0 {
        return Ok(stmt.raw_execute().map_err(classify)? as u64);
    }
    // a statement that returns rows (`returning`, a locking `select`): stepped to its end,
    // so its work (and any error) happens here, not at a later reset
    let mut rows = stmt.raw_query();
    while rows.next().map_err(classify)?.is_some() {}
    drop(rows);
    Ok(conn.changes())
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ffi::ErrorCode::DatabaseBusy)
}

/// SQLite's result codes as the catalog's errors.
fn classify(err: rusqlite::Error) -> CatalogError {
    use rusqlite::ffi::ErrorCode;
    match &err {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DiskFull => CatalogError::Full(err.to_string()),
            // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
            ErrorCode::ConstraintViolation if matches!(failure.extended_code, 2067 | 1555) => {
                CatalogError::Unique(err.to_string())
            }
            // SQLITE_CONSTRAINT_FOREIGNKEY
            ErrorCode::ConstraintViolation if failure.extended_code == 787 => {
                CatalogError::NotFound("a row this one refers to".into())
            }
            ErrorCode::CannotOpen | ErrorCode::DatabaseBusy => CatalogError::Unavailable(err.to_string()),
            _ => CatalogError::Backend(err.to_string()),
        },
        _ => CatalogError::Backend(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often SQLite had to re-prepare `sql`'s cached statement over three runs with the
    /// same values bound. A bound `limit ?` is planned by its value, so every bind expires the
    /// statement: a hot query re-parsed on every request (14 % of the server's time in the
    /// gallery listing before its limit went into the text).
    fn reprepares(conn: &Connection, sql: &str, params: &[Value]) -> i32 {
        for _ in 0..3 {
            rows(conn, sql, params).unwrap();
        }
        let stmt = conn.prepare_cached(&placeholders(sql)).unwrap();
        stmt.get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn hot_statements_are_prepared_once() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "create table t (id integer primary key, kind text, name text); create index t_kind on t (kind);",
        )
        .unwrap();
        // the shapes of the hot reads: the device by name or id, a page, a page of one kind
        let either = "select id from t where name = $1 or id = $2 limit 1";
        let page = "select id from t order by id limit 50 offset $1";
        let of_kind = "select id from t where kind = $2 order by id limit 50 offset $1";
        let counts = (
            reprepares(&conn, either, &[Value::Text(Some("cam".into())), Value::Int(None)]),
            reprepares(&conn, page, &[Value::Int(Some(0))]),
            reprepares(&conn, of_kind, &[Value::Int(Some(0)), Value::Text(Some("photo".into()))]),
        );
        assert_eq!(counts, (0, 0, 0));
        // and the shape they avoid
        let bound_limit = "select id from t order by id limit $1";
        assert!(reprepares(&conn, bound_limit, &[Value::Int(Some(5))]) > 0, "SQLite re-plans a bound limit per bind");
    }

    /// `.cargo/config.toml` builds SQLite without SQLITE_ENABLE_MEMORY_MANAGEMENT: with it,
    /// every connection's pages sit in one cache group behind one global mutex, and readers on
    /// two cores queued on it for each page of a listing. (A target dir built before the
    /// setting kept the old library here: `cargo clean -p libsqlite3-sys`. A LIBSQLITE3_FLAGS
    /// set in the environment wins over the file's.)
    #[test]
    fn each_connection_has_a_page_cache_of_its_own() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("pragma compile_options").unwrap();
        let options: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }

    #[tokio::test]
    async fn the_generation_holds_until_something_is_committed_by_anyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let db = SqliteDb::open(&path).unwrap();
        let commit = |sql: &'static str| {
            let db = &db;
            async move {
                let mut tx = db.begin().await.unwrap();
                tx.exec(sql, &[]).unwrap();
                tx.commit().unwrap();
            }
        };
        commit("create table t (id integer primary key)").await;
        let before = db.generation().unwrap();
        assert_eq!(db.generation().unwrap(), before, "nothing committed: it holds");
        commit("insert into t (id) values (1)").await;
        let after_write = db.generation().unwrap();
        assert!(after_write > before, "the writer's commit moves it");
        assert_eq!(db.generation().unwrap(), after_write);
        // another process's commit (the admin CLI's) moves it too
        let other = Connection::open(&path).unwrap();
        other.execute_batch("insert into t (id) values (2)").unwrap();
        let after_other = db.generation().unwrap();
        assert!(after_other > after_write, "another connection's commit moves it");
        // reads, more at once than the pool keeps (so some readers are opened and closed), do
        // not: a page kept before them is still good after them
        let readers: Vec<Reader<'_>> = (0..IDLE_READERS * 2).map(|_| db.reader().unwrap()).collect();
        for mut reader in readers {
            assert_eq!(reader.rows("select count(*) from t", &[]).unwrap().len(), 1);
        }
        assert_eq!(db.generation().unwrap(), after_other, "reads changed nothing");
    }

    #[test]
    fn placeholders_become_numbered_question_marks() {
        assert_eq!(placeholders("select $1, $12 where x = $1"), "select ?1, ?12 where x = ?1");
        assert_eq!(placeholders("select '$' || $2"), "select '$' || ?2");
    }
}
