//! The local hash cache: a file's device-family hash keyed by its path, size and mtime, so
//! an unchanged file is never read twice (push hashes, pull records what it wrote). Each
//! path also remembers the content it last had in common with the server (`synced`): a
//! local file still holding it was not changed here since, so a pull may replace it with the
//! server's newer content, and a push may replace the server's copy with a local edit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::content::FileHash;
use super::state::{StateDir, read_json, write_atomic};
use crate::domain::Sha256Hex;

const FILE: &str = "hashes.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    mtime_ns: i64,
    #[serde(flatten)]
    hash: FileHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synced: Option<Synced>,
}

/// The content a local path and a volume path last held both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Synced {
    media_path: String,
    file_hash: Sha256Hex,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    files: HashMap<String, Entry>,
}

/// The cache of one state directory (see the module docs).
pub struct HashCache {
    path: PathBuf,
    stored: Stored,
    dirty: bool,
}

/// Nanoseconds since the epoch (negative before it), the cache's mtime key.
pub fn mtime_ns(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

impl HashCache {
    pub fn load(state: &StateDir) -> Self {
        let path = state.path(FILE);
        Self { stored: read_json(&path), path, dirty: false }
    }

    /// The hash of `rel` if it was computed for this very size and mtime.
    pub fn get(&self, rel: &str, size: u64, mtime_ns: i64) -> Option<&FileHash> {
        self.stored.files.get(rel).filter(|e| e.hash.size == size && e.mtime_ns == mtime_ns).map(|e| &e.hash)
    }

    /// Records the hash of `rel` as it is now; what it last had in common with the server
    /// is kept (a changed file is still the edit of that content).
    pub fn insert(&mut self, rel: &str, mtime_ns: i64, hash: FileHash) {
        let synced = self.stored.files.get(rel).and_then(|e| e.synced.clone());
        self.stored.files.insert(rel.to_owned(), Entry { mtime_ns, hash, synced });
        self.dirty = true;
    }

    /// `rel` (hashed already) holds what the server holds at `media_path`.
    pub fn mark_synced(&mut self, rel: &str, media_path: &str) {
        if let Some(entry) = self.stored.files.get_mut(rel) {
            let synced = Synced { media_path: media_path.to_owned(), file_hash: entry.hash.file_hash.clone() };
            if entry.synced.as_ref() != Some(&synced) {
                entry.synced = Some(synced);
                self.dirty = true;
            }
        }
    }

    /// Whether `file_hash` is the content `rel` last had in common with `media_path`.
    pub fn was_synced(&self, rel: &str, media_path: &str, file_hash: &Sha256Hex) -> bool {
        let synced = self.stored.files.get(rel).and_then(|e| e.synced.as_ref());
        synced.is_some_and(|s| s.media_path == media_path && s.file_hash == *file_hash)
    }

    pub fn remove(&mut self, rel: &str) {
        self.dirty |= self.stored.files.remove(rel).is_some();
    }

    /// Forgets files for which `keep` says no (files gone from the folder).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let before = self.stored.files.len();
        self.stored.files.retain(|rel, _| keep(rel));
        self.dirty |= self.stored.files.len() != before;
    }

    /// Writes the cache if it changed since it was loaded or last saved.
    pub fn save(&mut self) -> std::io::Result<()> {
        match self.snapshot()? {
            Some(snapshot) => snapshot.write().inspect_err(|_| self.dirty = true),
            None => Ok(()),
        }
    }

    /// The cache as it is now, to write without holding it (writing and syncing a large
    /// cache takes far longer than serialising it): `None` when nothing changed since the
    /// last save. A snapshot that fails to write must be followed by [`Self::unsaved`].
    pub fn snapshot(&mut self) -> std::io::Result<Option<Snapshot>> {
        if !self.dirty {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&self.stored).map_err(std::io::Error::other)?;
        self.dirty = false;
        Ok(Some(Snapshot { path: self.path.clone(), bytes }))
    }

    /// A snapshot was not written: the next save writes the cache again.
    pub fn unsaved(&mut self) {
        self.dirty = true;
    }
}

/// The serialised cache, written by [`Snapshot::write`].
pub struct Snapshot {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Snapshot {
    pub fn write(&self) -> std::io::Result<()> {
        write_atomic(&self.path, &self.bytes)
    }
}
