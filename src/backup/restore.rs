//! Restoring a backup into a new data dir (see the module above): blobs first, each hashed as
//! it is copied, then the catalog under a temporary name, checked and renamed into place.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{
    BackupError, CATALOG, FORMAT, MANIFEST, Manifest, copy_blob, copy_durably, embedded, empty_dir, io, parents_up_to,
    sync_dirs,
};
use crate::blob_store::{IDENTITY_FILE, blobs_dir};
use crate::config::Config;
use crate::domain::Sha256Hex;

/// Restores the backup `from` into the (new, empty) data dir of `config`, holding the data
/// dir's lock (returned: kept while the caller checks the result, so no server starts on a
/// restore in progress). A restore that fails removes what it copied, so it can simply be
/// run again.
pub fn restore(from: &Path, config: &Config) -> Result<Restored, BackupError> {
    let (catalog, root) = embedded(config)?;
    let unfinished = || BackupError::Unfinished(from.display().to_string());
    let text = std::fs::read_to_string(from.join(MANIFEST)).map_err(|_| unfinished())?;
    let listed: Manifest = serde_json::from_str(&text).map_err(|_| unfinished())?;
    if listed.format != FORMAT {
        return Err(BackupError::Format(listed.format));
    }
    if catalog.exists() {
        return Err(BackupError::Target(format!(
            "a catalog already exists at {}; restore into a new data dir (--data-dir)",
            catalog.display()
        )));
    }
    // an old catalog's journal beside the new one would be read as part of it
    if let Some(sidecar) = sidecars(&catalog).into_iter().find(|s| s.exists()) {
        return Err(BackupError::Target(format!("{} is in the way; remove it, then restore", sidecar.display())));
    }
    let existed = root.exists();
    empty_dir(&root, "the data dir")?;
    let lock = crate::app::try_lock_data_dir(&root)
        .map_err(|e| BackupError::Target(format!("{e:#}")))?
        .ok_or_else(|| BackupError::InUse(root.display().to_string()))?;
    let restored = Restored { manifest: listed.clone(), _lock: lock, existed };
    match copy_backup(from, &catalog, &root, &listed) {
        Ok(manifest) => Ok(Restored { manifest, ..restored }),
        Err(e) => {
            restored.remove(config);
            Err(e)
        }
    }
}

/// A restored data dir, locked while this lives.
pub struct Restored {
    pub manifest: Manifest,
    _lock: File,
    /// The (empty) data dir was there before the restore.
    existed: bool,
}

impl Restored {
    /// Removes what the restore wrote: the catalog (and its journals, and a partial copy),
    /// and the data dir's contents — the directory itself too when the restore made it.
    pub fn remove(self, config: &Config) {
        let Ok((catalog, root)) = embedded(config) else { return };
        let partial = PathBuf::from(format!("{}.restoring", catalog.display()));
        for file in [catalog.clone(), partial].into_iter().chain(sidecars(&catalog)) {
            let _ = std::fs::remove_file(file);
        }
        if self.existed {
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        } else {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

/// SQLite's journal files of the catalog `file`.
fn sidecars(file: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", file.display()));
    [with("-wal"), with("-shm"), with("-journal")]
}

fn copy_backup(from: &Path, catalog: &Path, root: &Path, listed: &Manifest) -> Result<Manifest, BackupError> {
    let (mut blobs, mut bytes, mut dirs) = (0, 0, BTreeSet::new());
    let damaged: std::collections::HashSet<&str> = listed.damaged_blobs.iter().map(String::as_str).collect();
    for file in walk(&blobs_dir(from)).map_err(io("cannot read the backup's blobs"))? {
        let relative = file.strip_prefix(blobs_dir(from)).expect("walked under it");
        let to = blobs_dir(root).join(relative);
        let name = file.file_name().and_then(|n| n.to_str()).and_then(|n| Sha256Hex::parse(n).ok());
        let sha256 = name.ok_or_else(|| BackupError::Corrupt(format!("{} is no blob of a backup", file.display())))?;
        let (copied, intact) = copy_blob(&file, &to, &sha256).map_err(io(format!("cannot copy {}", file.display())))?;
        // damaged already in the store when backed up (listed) is restored as it was
        if !intact && !damaged.contains(sha256.as_str()) {
            return Err(BackupError::Corrupt(format!(
                "blob {sha256} in the backup is damaged: its bytes do not hash to its name"
            )));
        }
        bytes += copied;
        parents_up_to(&to, root, &mut dirs);
        blobs += 1;
    }
    if (blobs, bytes) != (listed.blobs, listed.bytes) {
        return Err(BackupError::Damaged { listed: listed.blobs, found: blobs });
    }
    if from.join(IDENTITY_FILE).exists() {
        copy_durably(&from.join(IDENTITY_FILE), &root.join(IDENTITY_FILE))
            .map_err(io("cannot copy the store identity"))?;
    }
    // the catalog last, whole or not at all: a data dir with a catalog is a restored one
    let partial = PathBuf::from(format!("{}.restoring", catalog.display()));
    copy_durably(&from.join(CATALOG), &partial).map_err(io("cannot copy the catalog"))?;
    let verdict: String = Connection::open(&partial)?.query_row("pragma quick_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Corrupt(format!("the backup's catalog is damaged: {verdict}")));
    }
    std::fs::rename(&partial, catalog).map_err(io("cannot put the catalog in place"))?;
    parents_up_to(catalog, catalog.parent().unwrap_or(root), &mut dirs);
    dirs.insert(root.to_owned());
    sync_dirs(dirs).map_err(io("cannot sync the restored data dir"))?;
    Ok(Manifest { blobs, bytes, ..listed.clone() })
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
