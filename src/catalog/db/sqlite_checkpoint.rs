//! WAL checkpoints off the writer's path. By default SQLite checkpoints inside the commit
//! that takes the WAL past 1,000 pages: that commit copies pages into the database and
//! fsyncs while every other write waits for the writer (P6, 10,000 small uploads, spent a
//! third of its commit time there). Here the writer never checkpoints below a safety limit,
//! and a thread of its own runs a passive checkpoint every half second — which neither waits
//! for nor blocks readers and the writer, and copies each page once however many commits
//! changed it meanwhile. Durability is unchanged: a WAL commit is durable against a process
//! crash either way, and a checkpoint fsyncs what it copies.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use crate::catalog::CatalogResult;

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The writer checkpoints by itself only past this many WAL pages (80 MiB): should the
/// checkpointer fall behind or stop, the WAL still stays bounded.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 20_000;

/// Stops its thread when dropped (the thread notices at once and ends after its current
/// checkpoint, if one runs).
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` on `conn`, a read-write connection of its own.
    pub fn start(path: &Path, conn: Connection) -> CatalogResult<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let name = path.display().to_string();
        let run = move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(())) {
                    tracing::warn!(catalog = %name, error = %e, "WAL checkpoint failed; will retry");
                }
            }
        };
        std::thread::Builder::new()
            .name("ferry-checkpoint".into())
            .spawn(run)
            .map_err(|e| crate::catalog::CatalogError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(&format!(
                "pragma journal_mode = wal; pragma synchronous = normal;
                 pragma wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}; create table t (b blob);"
            ))
            .unwrap();
        let _checkpointer = Checkpointer::start(&path, Connection::open(&path).unwrap()).unwrap();
        let database_size = || std::fs::metadata(&path).unwrap().len();
        let before = database_size();
        for _ in 0..500 {
            writer.execute("insert into t values (zeroblob(8000))", []).unwrap();
        }
        // 4 MB committed, far below the writer's own limit: only the checkpointer copies it
        let copied = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            database_size() > before + 3_000_000
        });
        assert!(copied, "the database file stayed at {} bytes", database_size());
    }
}
