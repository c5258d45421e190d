//! The local hash cache: a file's device-family hash keyed by its path, size and mtime, so
//! an unchanged file is never read twice (push hashes, pull records what it wrote).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::content::FileHash;
use super::state::{StateDir, read_json, write_atomic};

const FILE: &str = "hashes.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    mtime_ns: i64,
    #[serde(flatten)]
    hash: FileHash,
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

    pub fn insert(&mut self, rel: &str, mtime_ns: i64, hash: FileHash) {
        self.stored.files.insert(rel.to_owned(), Entry { mtime_ns, hash });
        self.dirty = true;
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
        if self.dirty {
            write_atomic(&self.path, &serde_json::to_vec(&self.stored).map_err(std::io::Error::other)?)?;
            self.dirty = false;
        }
        Ok(())
    }
}
