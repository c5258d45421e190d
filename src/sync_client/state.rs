//! The client's state directory: one subdirectory per server + grant + local folder, holding
//! the hash cache and the change-feed mirror. Writes are atomic (temp file, fsync, rename),
//! and one process at a time uses a subdirectory (an advisory lock), so a killed run leaves
//! the previous complete state, never half of one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("another ferry push or pull is using {0} (for the same server, grant and folder); wait for it to finish")]
    Busy(PathBuf),
}

/// Where state lives unless `--state-dir` says otherwise: `$XDG_STATE_HOME/ferry`, else
/// `~/.local/state/ferry`.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ferry");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/ferry"),
        None => PathBuf::from(".ferry-state"),
    }
}

/// One opened (and locked) state subdirectory.
pub struct StateDir {
    dir: PathBuf,
    /// Held for the life of the run: the lock goes with the file.
    _lock: File,
}

impl StateDir {
    /// Opens the subdirectory for `server`, `grant` and the local folder `local` (already
    /// absolute) under `root`, creating it on first use.
    pub fn open(root: &Path, server: &str, grant: &str, local: &Path) -> Result<Self, StateError> {
        let digest = Sha256::digest(format!("{server}\n{grant}\n{}", local.display()));
        let host: String = server
            .split_once("://")
            .map_or(server, |(_, rest)| rest)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .take(64)
            .collect();
        let dir = root.join(format!("{host}-grant{}-{}", sanitize(grant), &hex::encode(digest)[..12]));
        let io = |source| StateError::Io { dir: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock = File::options().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(io)?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Err(StateError::Busy(dir)),
            Err(e) => return Err(io(e.into())),
        }
        // for a person looking at the folder: whose state this is
        let about = serde_json::json!({"server": server, "grant": grant, "dir": local.display().to_string()});
        write_atomic(&dir.join("about.json"), about.to_string().as_bytes()).map_err(io)?;
        Ok(Self { dir, _lock: lock })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn sanitize(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric()).take(32).collect()
}

/// Replaces `path` with `bytes` atomically: a crash leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = write_temp(path, bytes)?;
    publish(&temp, path)
}

/// `bytes` in a durable temporary file beside `path`, of this write's own (two writes of the
/// same file at once never share one).
pub fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = parent.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            // a full disk must not fill up with one more temporary file per attempt
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Renames a [`write_temp`] file to `path` and makes the rename durable.
pub fn publish(temp: &Path, path: &Path) -> std::io::Result<()> {
    if let Err(e) = std::fs::rename(temp, path) {
        let _ = std::fs::remove_file(temp);
        return Err(e);
    }
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Reads a JSON state file; a missing or unreadable one is a fresh start (state is a cache:
/// losing it costs time, never correctness).
pub fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_per_subdirectory_and_atomic_files() {
        let root = tempfile::tempdir().unwrap();
        let local = Path::new("/photos");
        let first = StateDir::open(root.path(), "http://127.0.0.1:8080", "1", local).unwrap();
        assert!(matches!(StateDir::open(root.path(), "http://127.0.0.1:8080", "1", local), Err(StateError::Busy(_))));
        let other = StateDir::open(root.path(), "http://127.0.0.1:8080", "2", local).unwrap();
        assert_ne!(first.dir(), other.dir());
        write_atomic(&first.path("x.json"), b"[1]").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&first.path("x.json")), vec![1]);
        assert_eq!(read_json::<Vec<u32>>(&first.path("missing.json")), Vec::<u32>::new());
        drop(first);
        StateDir::open(root.path(), "http://127.0.0.1:8080", "1", local).expect("the lock goes with the run");
    }
}
