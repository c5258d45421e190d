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
//! The catalog holds the signing secret, so everything a backup writes is the owner's alone
//! (directories 0700, files 0600) whatever the umask.
//! Blobs are written before their catalog rows (storage safety), so every row of the snapshot
//! has its bytes; content the server collects while the copy runs was unreferenced already.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

mod restore;

pub use restore::{Restored, restore};

use crate::blob_store::{IDENTITY_FILE, blob_subpath, blobs_dir};
use crate::config::Config;
use crate::domain::Sha256Hex;

/// The file that marks a finished backup.
pub const MANIFEST: &str = "ferry-backup.json";
/// The catalog's name inside a backup (what a fresh data dir calls it).
const CATALOG: &str = "ferry.db";
/// The layout this code writes and reads.
const FORMAT: u64 = 1;

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
    #[error(
        "blob {0} is used by the snapshot but left the store while the backup ran (collected since, if the \
         copy took longer than FERRY_GC_GRACE; else damaged: run `ferry admin check`); run the backup again"
    )]
    MissingBlob(String),
    #[error("this backup is format {0}; this Ferry restores format {FORMAT}")]
    Format(u64),
    #[error("the backup lists {listed} blob(s) but holds {found} (or their sizes differ): it is damaged")]
    Damaged { listed: u64, found: u64 },
    #[error("{0}")]
    Corrupt(String),
    #[error("{0} is in use by a Ferry server; stop it (or name a new data dir), then restore")]
    InUse(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u64,
    pub created: String,
    pub ferry_version: String,
    pub blobs: u64,
    pub bytes: u64,
    /// Uploads in flight at the snapshot, left out.
    pub dropped_uploads: u64,
    /// Blobs whose bytes in the store did not hash to their name when backed up (copied as
    /// they were; `ferry admin check --deep` lists them too).
    #[serde(default)]
    pub damaged_blobs: Vec<String>,
}

/// The embedded catalog file and blob root of `config`.
fn embedded(config: &Config) -> Result<(PathBuf, PathBuf), BackupError> {
    match (config.sqlite_file(), &config.s3) {
        (Some(catalog), None) => Ok((catalog, config.data_dir.clone())),
        _ => Err(BackupError::NotEmbedded),
    }
}

/// A directory that does not exist or is empty, created (owner only).
fn empty_dir(dir: &Path, what: &str) -> Result<(), BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(BackupError::Target(format!("{what} {} is not empty; name a new directory", dir.display())));
    }
    private_dirs(dir).map_err(io(format!("cannot create {}", dir.display())))
}

fn private_dirs(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Copies blob `sha256` (owner only) and makes it durable, hashing it on the way; returns the
/// bytes copied and whether they are its content (a damaged blob is copied as it is: the
/// caller decides).
fn copy_blob(from: &Path, to: &Path, sha256: &Sha256Hex) -> std::io::Result<(u64, bool)> {
    use sha2::Digest;
    use std::io::{Read, Write};
    if let Some(dir) = to.parent() {
        private_dirs(dir)?;
    }
    let mut source = File::open(from)?;
    let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    let (mut hasher, mut buffer, mut copied) = (sha2::Sha256::new(), vec![0u8; 1 << 20], 0u64);
    let written = loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        hasher.update(&buffer[..read]);
        copied += read as u64;
        if let Err(e) = copy.write_all(&buffer[..read]) {
            break Err(e);
        }
    };
    let outcome = written.and_then(|()| copy.sync_all());
    if outcome.is_err() {
        drop(copy);
        let _ = std::fs::remove_file(to);
    }
    outcome.map(|()| (copied, Sha256Hex::from_digest(&hasher.finalize()) == *sha256))
}

/// Copies a file (owner only) and makes it durable; its directory is synced by the caller.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<u64> {
    if let Some(dir) = to.parent() {
        private_dirs(dir)?;
    }
    let copied = std::fs::copy(from, to)?;
    let file = File::open(to)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.sync_all()?;
    Ok(copied)
}

/// Syncs each directory (new entries in them survive a crash), deepest first.
fn sync_dirs(dirs: BTreeSet<PathBuf>) -> std::io::Result<()> {
    for dir in dirs.iter().rev() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `path` and its parents up to (and with) `root`.
fn parents_up_to(path: &Path, root: &Path, into: &mut BTreeSet<PathBuf>) {
    for dir in path.ancestors().skip(1) {
        into.insert(dir.to_owned());
        if dir == root {
            break;
        }
    }
}

/// Everything that keeps a blob (`?1`) needed in a catalog.
const USED: &str = "select exists (select 1 from holds where sha256 = ?1)
    or exists (select 1 from media where sha256 = ?1) or exists (select 1 from files where sha256 = ?1)
    or exists (select 1 from uploads where sha256 = ?1) or exists (select 1 from events where sha256 = ?1)
    or exists (select 1 from events where thumbnail_sha256 = ?1)
    or exists (select 1 from blob_media where thumbnail_sha256 = ?1)
    or exists (select 1 from blob_renditions where rendition_sha256 = ?1)";

/// Backs up the running (or stopped) embedded installation of `config` into `into`. A backup
/// that fails (a full disk, a damaged blob) removes what it wrote.
pub fn backup(config: &Config, into: &Path) -> Result<Manifest, BackupError> {
    let (catalog, root) = embedded(config)?;
    if !catalog.exists() {
        return Err(BackupError::Target(format!("no Ferry catalog at {}", catalog.display())));
    }
    let existed = into.exists();
    empty_dir(into, "the backup directory")?;
    let written = write_backup(&catalog, &root, into);
    if written.is_err() {
        // everything in it is this backup's own: the directory was empty or new
        if existed {
            for entry in std::fs::read_dir(into).into_iter().flatten().flatten() {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        } else {
            let _ = std::fs::remove_dir_all(into);
        }
    }
    written
}

fn write_backup(catalog: &Path, root: &Path, into: &Path) -> Result<Manifest, BackupError> {
    let snapshot = into.join(CATALOG);
    let live = Connection::open_with_flags(catalog, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    live.busy_timeout(std::time::Duration::from_secs(30))?;
    live.execute("vacuum into ?1", [snapshot.to_string_lossy()])?;
    drop(live);

    std::fs::set_permissions(&snapshot, std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot protect the catalog snapshot"))?;
    let copy = Connection::open(&snapshot)?;
    let dropped_uploads = leave_out_uploads_in_flight(&copy)?;
    let identity = root.join(IDENTITY_FILE);
    if identity.exists() {
        copy_durably(&identity, &into.join(IDENTITY_FILE)).map_err(io("cannot copy the store identity"))?;
    }
    let (mut blobs, mut bytes, mut dirs, mut damaged) = (0, 0, BTreeSet::new(), Vec::new());
    let listed: Vec<String> = {
        let mut statement = copy.prepare("select sha256 from blobs order by sha256")?;
        statement.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    for hash in listed {
        let sha256 = Sha256Hex::parse(&hash).map_err(|_| BackupError::MissingBlob(hash.clone()))?;
        let (from, to) = (blobs_dir(root).join(blob_subpath(&sha256)), blobs_dir(into).join(blob_subpath(&sha256)));
        match copy_blob(&from, &to, &sha256) {
            Ok((copied, intact)) => {
                // what was copied (a damaged blob may have lost or gained bytes)
                (blobs, bytes) = (blobs + 1, bytes + copied);
                parents_up_to(&to, into, &mut dirs);
                // the store's copy is damaged already: backed up as it is, and said
                if !intact {
                    damaged.push(hash);
                }
            }
            // collected since the snapshot: only content nothing used any more can be
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if copy.query_row(USED, [&hash], |r| r.get::<_, bool>(0))? {
                    return Err(BackupError::MissingBlob(hash));
                }
                copy.execute("delete from collect_candidates where sha256 = ?1", [&hash])?;
                // its results go with it (what they kept alive is collected later, as live)
                copy.execute("delete from blob_media where sha256 = ?1", [&hash])?;
                copy.execute("delete from blob_renditions where sha256 = ?1", [&hash])?;
                copy.execute("delete from blobs where sha256 = ?1", [&hash])?;
            }
            Err(e) => return Err(io(format!("cannot copy blob {hash}"))(e)),
        }
    }
    drop(copy);
    File::open(&snapshot).and_then(|f| f.sync_all()).map_err(io("cannot sync the catalog snapshot"))?;
    sync_dirs(dirs).map_err(io("cannot sync the backup's directories"))?;
    let manifest = Manifest {
        format: FORMAT,
        created: crate::clock::iso(crate::clock::now_ms()),
        ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
        blobs,
        bytes,
        dropped_uploads,
        damaged_blobs: damaged,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    let written = into.join(MANIFEST);
    std::fs::write(&written, text)
        .and_then(|()| File::open(&written)?.set_permissions(std::fs::Permissions::from_mode(0o600)))
        .and_then(|()| File::open(&written)?.sync_all())
        .map_err(io("cannot write the manifest"))?;
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
    // a session's slot taken by an upload in flight would refuse the client's retry
    let in_sessions: i64 = copy.query_row(
        "select coalesce(sum(max(0, reserved_files - (select count(*) from files f where f.session_ulid = s.ulid))), 0)
         from sessions s",
        [],
        |r| r.get(0),
    )?;
    dropped += in_sessions as usize;
    copy.execute(
        "update sessions set
            reserved_files = (select count(*) from files f where f.session_ulid = sessions.ulid),
            reserved_bytes = (select coalesce(sum(f.size), 0) from files f where f.session_ulid = sessions.ulid)",
        [],
    )?;
    // a one-time upload URL claimed by an upload in flight is free again
    dropped += copy.execute("delete from used_targets where used_ms is null", [])?;
    // pending writes of the moment: their bytes (if any) were not copied
    copy.execute("delete from blob_intents", [])?;
    // a running import whose file is in the snapshot is done; other running jobs run again
    copy.execute(
        "update jobs set status = 'done', lease_until_ms = null
         where status = 'running' and id in (select job_id from files where job_id is not null)",
        [],
    )?;
    copy.execute("update jobs set status = 'pending', lease_until_ms = null where status = 'running'", [])?;
    // the copy's counters are recounted when it is first opened
    copy.execute("insert into settings (key, value) values ('usage_recount_due', x'31') on conflict do nothing", [])?;
    Ok(dropped as u64)
}
