//! `ferry admin backup DIR` and `ferry admin restore DIR` for the embedded installation
//! (SQLite catalog + blobs on local disk), while the server runs.
//!
//! A backup is itself a data dir: `ferry.db` (a snapshot taken with `VACUUM INTO`, one
//! consistent moment of the catalog), the store identity it is bound to, and under `blobs/`
//! every blob the snapshot records, copied in the store's layout. `ferry-backup.json` is
//! written last, so a directory without it is an interrupted backup, never restored.
//!
//! Uploads still in flight at the snapshot are left out (their staged bytes are not copied):
//! after a restore they are gone, as if they had expired, and their clients start again.
//! Blobs are written before their catalog rows (storage safety), so every row of the snapshot
//! has its bytes; content the server collects while the copy runs was unreferenced already.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::blob_store::{IDENTITY_FILE, blob_subpath, blobs_dir};
use crate::config::Config;
use crate::domain::Sha256Hex;

/// The file that marks a finished backup.
pub const MANIFEST: &str = "ferry-backup.json";
/// The catalog's name inside a backup (what a fresh data dir calls it).
const CATALOG: &str = "ferry.db";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backup and restore work on the embedded installation (SQLite catalog, blobs on local disk); \
         with PostgreSQL and S3 use pg_dump and the bucket's versioning (README: Back up and restore)"
    )]
    NotEmbedded,
    #[error("{0}")]
    Target(String),
    #[error("{0} has no {MANIFEST}: it is not a finished backup")]
    Unfinished(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("catalog snapshot: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("blob {0} is used by the catalog but is not in the store; run `ferry admin check`")]
    MissingBlob(String),
    #[error("the backup lists {listed} blob(s) but holds {found}: it is damaged")]
    Damaged { listed: u64, found: u64 },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub created: String,
    pub ferry_version: String,
    pub blobs: u64,
    pub bytes: u64,
    /// Uploads in flight at the snapshot, left out.
    pub dropped_uploads: u64,
}

/// The embedded catalog file and blob root of `config`.
fn embedded(config: &Config) -> Result<(PathBuf, PathBuf), BackupError> {
    match (config.sqlite_file(), &config.s3) {
        (Some(catalog), None) => Ok((catalog, config.data_dir.clone())),
        _ => Err(BackupError::NotEmbedded),
    }
}

/// A directory that does not exist or is empty, created.
fn empty_dir(dir: &Path, what: &str) -> Result<(), BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(BackupError::Target(format!("{what} {} is not empty; name a new directory", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))
}

/// Copies a file and makes it durable.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<u64> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let copied = std::fs::copy(from, to)?;
    File::open(to)?.sync_all()?;
    Ok(copied)
}

/// Everything that keeps a blob (`?1`) needed in a catalog.
const USED: &str = "select exists (select 1 from holds where sha256 = ?1)
    or exists (select 1 from media where sha256 = ?1) or exists (select 1 from files where sha256 = ?1)
    or exists (select 1 from uploads where sha256 = ?1) or exists (select 1 from events where sha256 = ?1)
    or exists (select 1 from events where thumbnail_sha256 = ?1)
    or exists (select 1 from blob_media where thumbnail_sha256 = ?1)";

/// Backs up the running (or stopped) embedded installation of `config` into `into`.
pub fn backup(config: &Config, into: &Path) -> Result<Manifest, BackupError> {
    let (catalog, root) = embedded(config)?;
    if !catalog.exists() {
        return Err(BackupError::Target(format!("no Ferry catalog at {}", catalog.display())));
    }
    empty_dir(into, "the backup directory")?;
    let snapshot = into.join(CATALOG);
    let live = Connection::open_with_flags(&catalog, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    live.busy_timeout(std::time::Duration::from_secs(30))?;
    live.execute("vacuum into ?1", [snapshot.to_string_lossy()])?;
    drop(live);

    let copy = Connection::open(&snapshot)?;
    let dropped_uploads = leave_out_uploads_in_flight(&copy)?;
    let identity = root.join(IDENTITY_FILE);
    if identity.exists() {
        copy_durably(&identity, &into.join(IDENTITY_FILE)).map_err(io("cannot copy the store identity"))?;
    }
    let (mut blobs, mut bytes) = (0, 0);
    let listed: Vec<(String, i64)> = {
        let mut statement = copy.prepare("select sha256, size from blobs order by sha256")?;
        statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
    };
    for (hash, size) in listed {
        let sha256 = Sha256Hex::parse(&hash).map_err(|_| BackupError::MissingBlob(hash.clone()))?;
        let (from, to) = (blobs_dir(&root).join(blob_subpath(&sha256)), blobs_dir(into).join(blob_subpath(&sha256)));
        match copy_durably(&from, &to) {
            Ok(_) => (blobs, bytes) = (blobs + 1, bytes + size as u64),
            // collected since the snapshot: only content nothing used any more can be
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if copy.query_row(USED, [&hash], |r| r.get::<_, bool>(0))? {
                    return Err(BackupError::MissingBlob(hash));
                }
                copy.execute("delete from collect_candidates where sha256 = ?1", [&hash])?;
                copy.execute("delete from blobs where sha256 = ?1", [&hash])?;
            }
            Err(e) => return Err(io(format!("cannot copy blob {hash}"))(e)),
        }
    }
    drop(copy);
    File::open(&snapshot).and_then(|f| f.sync_all()).map_err(io("cannot sync the catalog snapshot"))?;
    let manifest = Manifest {
        format: 1,
        created: crate::clock::iso(crate::clock::now_ms()),
        ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
        blobs,
        bytes,
        dropped_uploads,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    std::fs::write(into.join(MANIFEST), text).map_err(io("cannot write the manifest"))?;
    File::open(into).and_then(|d| d.sync_all()).map_err(io("cannot sync the backup directory"))?;
    Ok(manifest)
}

/// Removes from the snapshot what only staged bytes (not copied) would complete; returns how
/// many uploads that was. Jobs a worker held are handed back to the queue.
fn leave_out_uploads_in_flight(copy: &Connection) -> Result<u64, BackupError> {
    copy.execute("delete from upload_parts where upload_id in (select id from uploads where state = 'open')", [])?;
    let mut dropped = copy.execute("delete from uploads where state = 'open'", [])?;
    dropped += copy.execute(
        "delete from tus_uploads where state in ('open', 'received') or (state = 'completed' and concat = 'partial')",
        [],
    )?;
    // pending writes of the moment: their bytes (if any) were not copied
    copy.execute("delete from blob_intents", [])?;
    copy.execute("update jobs set status = 'pending', lease_until_ms = null where status = 'running'", [])?;
    // the copy's counters are recounted when it is first opened
    copy.execute("insert into settings (key, value) values ('usage_recount_due', x'31') on conflict do nothing", [])?;
    Ok(dropped as u64)
}

/// Restores the backup `from` into the (new, empty) data dir of `config`.
pub fn restore(from: &Path, config: &Config) -> Result<Manifest, BackupError> {
    let (catalog, root) = embedded(config)?;
    let text = std::fs::read_to_string(from.join(MANIFEST))
        .map_err(|_| BackupError::Unfinished(from.display().to_string()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| BackupError::Unfinished(from.display().to_string()))?;
    if catalog.exists() {
        return Err(BackupError::Target(format!(
            "a catalog already exists at {}; restore into a new data dir (--data-dir)",
            catalog.display()
        )));
    }
    empty_dir(&root, "the data dir")?;
    let (mut blobs, mut bytes) = (0, 0);
    for file in walk(&blobs_dir(from)).map_err(io("cannot read the backup's blobs"))? {
        let relative = file.strip_prefix(blobs_dir(from)).expect("walked under it");
        bytes += copy_durably(&file, &blobs_dir(&root).join(relative)).map_err(io("cannot copy a blob"))?;
        blobs += 1;
    }
    let listed = manifest["blobs"].as_u64().unwrap_or_default();
    if listed != blobs {
        return Err(BackupError::Damaged { listed, found: blobs });
    }
    if from.join(IDENTITY_FILE).exists() {
        copy_durably(&from.join(IDENTITY_FILE), &root.join(IDENTITY_FILE))
            .map_err(io("cannot copy the store identity"))?;
    }
    // the catalog last: a data dir with a catalog is a restored one
    copy_durably(&from.join(CATALOG), &catalog).map_err(io("cannot copy the catalog"))?;
    let created = manifest["created"].as_str().unwrap_or_default().to_owned();
    let ferry_version = manifest["ferry_version"].as_str().unwrap_or_default().to_owned();
    let dropped_uploads = manifest["dropped_uploads"].as_u64().unwrap_or_default();
    Ok(Manifest { format: 1, created, ferry_version, blobs, bytes, dropped_uploads })
}

/// Every file under `dir`.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(found) };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(walk(&path)?);
        } else {
            found.push(path);
        }
    }
    Ok(found)
}
