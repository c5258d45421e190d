//! The local hash cache: a file's device-family hash keyed by its path, size, mtime and
//! ctime ([`Stamp`]), so an unchanged file is never read twice (push hashes, pull records what it wrote). Each
//! path also remembers the content it last had in common with the server (`synced`): a
//! local file still holding it was not changed here since, so a pull may replace it with the
//! server's newer content; and which file held it (its [`FileIdentity`]), so a push replaces
//! the server's copy only with an edit of that very file — never with a new file that took
//! its name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::content::FileHash;
use super::state::{StateDir, publish, read_json, write_temp};
use super::walk::{FileIdentity, Stamp};
use crate::domain::Sha256Hex;

const FILE: &str = "hashes.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    mtime_ns: i64,
    /// Absent in state written before the ctime was kept (see [`HashCache::get`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctime_ns: Option<i64>,
    #[serde(flatten)]
    hash: FileHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synced: Option<Synced>,
}

/// The content a local path and a volume path last held both, and the local file that held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Synced {
    media_path: String,
    file_hash: Sha256Hex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<FileIdentity>,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    files: HashMap<String, Entry>,
}

/// The cache of one state directory (see the module docs).
pub struct HashCache {
    path: PathBuf,
    stored: Stored,
    /// Changes made (a count), and the count the file on disk holds: see [`Snapshot`].
    changes: u64,
    published: Arc<Mutex<u64>>,
    /// When the state file read at load was written: an entry in it without a ctime is
    /// trusted only for a file not changed since.
    loaded_from_ns: Option<i64>,
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
        let loaded_from_ns = std::fs::metadata(&path).and_then(|m| m.modified()).ok().map(mtime_ns);
        Self { stored: read_json(&path), path, changes: 0, published: Arc::default(), loaded_from_ns }
    }

    /// The hash of `rel` if it was computed for this very stamp. An entry written before the
    /// ctime was kept takes this one on trust, once, when the file's ctime is no later than the
    /// state file (so that an upgrade does not read every file again); every edit after that
    /// shows.
    pub fn get(&mut self, rel: &str, stamp: Stamp) -> Option<&FileHash> {
        let entry = self.stored.files.get_mut(rel)?;
        if entry.hash.size != stamp.size || entry.mtime_ns != stamp.mtime_ns {
            return None;
        }
        match entry.ctime_ns {
            Some(ctime_ns) if ctime_ns != stamp.ctime_ns => return None,
            Some(_) => {}
            None if self.loaded_from_ns.is_some_and(|saved| stamp.ctime_ns <= saved) => {
                entry.ctime_ns = Some(stamp.ctime_ns);
                self.changes += 1;
            }
            None => return None,
        }
        Some(&entry.hash)
    }

    /// Records the hash of `rel` as it is now; what it last had in common with the server
    /// is kept (a changed file is still the edit of that content).
    pub fn insert(&mut self, rel: &str, stamp: Stamp, hash: FileHash) {
        let synced = self.stored.files.get(rel).and_then(|e| e.synced.clone());
        let (mtime_ns, ctime_ns) = (stamp.mtime_ns, Some(stamp.ctime_ns));
        self.stored.files.insert(rel.to_owned(), Entry { mtime_ns, ctime_ns, hash, synced });
        self.changes += 1;
    }

    /// `rel` (hashed already; the file `identity`) holds what the server holds at `media_path`.
    pub fn mark_synced(&mut self, rel: &str, media_path: &str, identity: Option<FileIdentity>) {
        if let Some(entry) = self.stored.files.get_mut(rel) {
            let file_hash = entry.hash.file_hash.clone();
            let synced = Synced { media_path: media_path.to_owned(), file_hash, identity };
            if entry.synced.as_ref() != Some(&synced) {
                entry.synced = Some(synced);
                self.changes += 1;
            }
        }
    }

    /// Whether `file_hash` is the content `rel` last had in common with `media_path`.
    pub fn was_synced(&self, rel: &str, media_path: &str, file_hash: &Sha256Hex) -> bool {
        self.synced_content(rel, media_path) == Some(file_hash)
    }

    /// The content `rel` last had in common with `media_path`, if any.
    pub fn synced_content(&self, rel: &str, media_path: &str) -> Option<&Sha256Hex> {
        self.synced_with(rel, media_path).map(|s| &s.file_hash)
    }

    /// Whether the file `identity` at `rel` is the very file that last had `file_hash` in
    /// common with `media_path` (an edit of it, not a new file under its name).
    pub fn edited_in_place(
        &self,
        rel: &str,
        media_path: &str,
        file_hash: &Sha256Hex,
        identity: Option<FileIdentity>,
    ) -> bool {
        let synced = self.synced_with(rel, media_path);
        synced.is_some_and(|s| s.file_hash == *file_hash && identity.is_some() && s.identity == identity)
    }

    fn synced_with(&self, rel: &str, media_path: &str) -> Option<&Synced> {
        let synced = self.stored.files.get(rel).and_then(|e| e.synced.as_ref());
        synced.filter(|s| s.media_path == media_path)
    }

    /// `rel` had `file_hash` in common with `media_path` when an earlier run left it, if that
    /// run's state predates `synced` (which file held it is not known: pushes stay cautious).
    pub fn adopt_synced(&mut self, rel: &str, media_path: &str, file_hash: &Sha256Hex) {
        if let Some(entry) = self.stored.files.get_mut(rel)
            && entry.synced.is_none()
            && entry.hash.file_hash == *file_hash
        {
            let (media_path, file_hash) = (media_path.to_owned(), file_hash.clone());
            entry.synced = Some(Synced { media_path, file_hash, identity: None });
            self.changes += 1;
        }
    }

    /// The server no longer holds `rel`'s content (its item was deleted): nothing here is in
    /// sync with it any more.
    pub fn forget_synced(&mut self, rel: &str) {
        if let Some(entry) = self.stored.files.get_mut(rel)
            && entry.synced.take().is_some()
        {
            self.changes += 1;
        }
    }

    pub fn remove(&mut self, rel: &str) {
        if self.stored.files.remove(rel).is_some() {
            self.changes += 1;
        }
    }

    /// Forgets files for which `keep` says no (files gone from the folder).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let before = self.stored.files.len();
        self.stored.files.retain(|rel, _| keep(rel));
        if self.stored.files.len() != before {
            self.changes += 1;
        }
    }

    /// Writes the cache if it changed since it was loaded or last saved.
    pub fn save(&mut self) -> std::io::Result<()> {
        match self.snapshot()? {
            Some(snapshot) => snapshot.write(),
            None => Ok(()),
        }
    }

    /// The cache as it is now, to write without holding it (writing and syncing a large
    /// cache takes far longer than serialising it): `None` when the file on disk holds every
    /// change already.
    pub fn snapshot(&mut self) -> std::io::Result<Option<Snapshot>> {
        if *self.published.lock().expect("not poisoned") >= self.changes {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&self.stored).map_err(std::io::Error::other)?;
        let (path, published) = (self.path.clone(), self.published.clone());
        Ok(Some(Snapshot { path, bytes, version: self.changes, published }))
    }
}

/// The serialised cache at one count of changes. Snapshots may be written by two threads at
/// once (a periodic save while hashing, the save on Ctrl-C): each goes to a temporary file of
/// its own, and only one newer than what the file holds is renamed into place, so the file
/// never goes back to an older state nor holds half of two.
pub struct Snapshot {
    path: PathBuf,
    bytes: Vec<u8>,
    version: u64,
    published: Arc<Mutex<u64>>,
}

impl Snapshot {
    pub fn write(&self) -> std::io::Result<()> {
        let temp = write_temp(&self.path, &self.bytes)?;
        let mut published = self.published.lock().expect("not poisoned");
        if self.version <= *published {
            drop(published);
            return std::fs::remove_file(temp);
        }
        publish(&temp, &self.path)?;
        *published = self.version;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_client::content::hash_file;

    fn stamp(mtime_ns: i64, ctime_ns: i64) -> Stamp {
        Stamp { size: 5, mtime_ns, ctime_ns }
    }

    /// A state directory, and the hash of a 5-byte photo.
    fn state_and_a_hash() -> (tempfile::TempDir, StateDir, FileHash) {
        let root = tempfile::tempdir().unwrap();
        let state = StateDir::open(root.path(), "http://127.0.0.1:1", "1", std::path::Path::new("/photos")).unwrap();
        let file = root.path().join("a.jpg");
        std::fs::write(&file, b"photo").unwrap();
        let hash = hash_file(&file, 5, &|_| {}).unwrap();
        (root, state, hash)
    }

    #[test]
    fn an_edit_that_puts_the_mtime_back_is_not_taken_for_the_cached_content() {
        let (_root, state, hash) = state_and_a_hash();
        let mut cache = HashCache::load(&state);
        cache.insert("a.jpg", stamp(1, 10), hash.clone());
        assert_eq!(cache.get("a.jpg", stamp(1, 10)), Some(&hash));
        assert_eq!(cache.get("a.jpg", stamp(1, 11)), None, "same size and mtime, written since");

        // state from before the ctime was kept: taken on trust once for a file not changed
        // since it was written, then edits show
        let legacy = r#"{"files":{"a.jpg":{"mtime_ns":1,"file_hash":"HASH","size":5}}}"#;
        std::fs::write(state.path(FILE), legacy.replace("HASH", hash.file_hash.as_str())).unwrap();
        let mut upgraded = HashCache::load(&state);
        let after_the_state_file = mtime_ns(SystemTime::now()) + 60_000_000_000;
        assert_eq!(upgraded.get("a.jpg", stamp(1, after_the_state_file)), None, "changed since: read again");
        assert_eq!(upgraded.get("a.jpg", stamp(1, 10)), Some(&hash), "no file is read again for the upgrade");
        assert_eq!(upgraded.get("a.jpg", stamp(1, 12)), None);
        upgraded.save().unwrap();
        let mut reloaded = HashCache::load(&state);
        assert_eq!(reloaded.get("a.jpg", stamp(1, 12)), None, "the ctime is kept from then on");
        assert_eq!(reloaded.get("a.jpg", stamp(1, 10)), Some(&hash));
    }

    #[test]
    fn an_older_snapshot_written_last_never_replaces_a_newer_one() {
        let (_root, state, hash) = state_and_a_hash();
        let mut cache = HashCache::load(&state);
        cache.insert("a.jpg", stamp(1, 1), hash.clone());
        let older = cache.snapshot().unwrap().expect("a change to write");
        cache.insert("b.jpg", stamp(2, 2), hash);
        let newer = cache.snapshot().unwrap().expect("another change");
        // the save on Ctrl-C lands first, the periodic save started earlier lands after it
        newer.write().unwrap();
        older.write().unwrap();
        let mut reloaded = HashCache::load(&state);
        assert!(reloaded.get("b.jpg", stamp(2, 2)).is_some(), "the newer state stays on disk");
        assert!(cache.snapshot().unwrap().is_none(), "nothing left to save");
        let leftovers: Vec<_> = std::fs::read_dir(state.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
