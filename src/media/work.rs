//! What the media jobs share: reading a blob's first bytes, copying a blob to a private
//! work folder for the external tools, and decoding off the async threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use super::Unreadable;
use crate::blob_store::BlobStore;
use crate::catalog::BlobRecord;
use crate::domain::ByteRange;

/// Why a media job's step did not work out.
pub(super) enum Failure {
    /// The blob is gone (collected meanwhile): nothing to do.
    Gone,
    /// The bytes cannot be understood; `meta` is what could be read anyway.
    Broken { reason: String, meta: Box<super::Metadata> },
    /// Worth another try later.
    Transient(String),
}

impl From<crate::catalog::CatalogError> for Failure {
    fn from(e: crate::catalog::CatalogError) -> Self {
        match e {
            crate::catalog::CatalogError::NotFound(_) => Failure::Gone,
            other => Failure::Transient(other.to_string()),
        }
    }
}

/// Runs CPU-heavy decoding on a blocking thread; a panic there becomes a reason.
pub(super) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Unreadable> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        if !e.is_panic() {
            return Unreadable(format!("decoding was cancelled: {e}"));
        }
        let panic = e.into_panic();
        let said = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Unreadable(format!("the decoder panicked: {said}"))
    })
}

/// The first `len` bytes of a blob (all of it when `len` ≥ its size).
pub(super) async fn read_prefix(store: &dyn BlobStore, blob: &BlobRecord, len: u64) -> Result<Vec<u8>, Failure> {
    let len = len.min(blob.size);
    if len == 0 {
        return Ok(Vec::new());
    }
    let range = (len < blob.size).then_some(ByteRange { start: 0, end: len - 1 });
    let transient = |e: &dyn std::fmt::Display| Failure::Transient(format!("reading blob {}: {e}", blob.sha256));
    let mut stream = store.read(&blob.sha256, range).await.map_err(|e| transient(&e))?;
    let mut out = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.map_err(|e| transient(&e))?);
        if out.len() as u64 >= len {
            break;
        }
    }
    out.truncate(len as usize);
    Ok(out)
}

/// A job's private folder under `<data_dir>/media-work/`, removed with everything in it when
/// dropped. It holds a lock while its job lives: a folder whose lock anyone can take was left
/// by a process that died (the kernel released its lock), and the next job removes it at once
/// — even beside replicas sharing the data directory. Files without a lock (earlier
/// versions) go once older than `stale_after`.
pub(super) struct WorkDir {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LOCK: &str = ".lock";
/// The name prefix of a folder being made (not locked yet).
const MAKING: &str = ".making-";

impl WorkDir {
    /// A new folder under `config`'s data directory.
    pub(super) async fn new(config: &crate::config::Config) -> Result<WorkDir, Failure> {
        Self::under(&config.data_dir, stale_after(config)).await
    }

    async fn under(data_dir: &Path, stale_after: Duration) -> Result<WorkDir, Failure> {
        let root = data_dir.join("media-work");
        let name = ulid::Ulid::new().to_string();
        let made = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root)?;
            remove_left_behind(&root, stale_after);
            // made and locked under a name the sweep leaves alone, then moved into view
            let (making, dir) = (root.join(format!("{MAKING}{name}")), root.join(name));
            std::fs::create_dir(&making)?;
            let lock = std::fs::File::create(making.join(LOCK))?;
            lock.try_lock().map_err(std::io::Error::other)?;
            std::fs::rename(&making, &dir)?;
            Ok::<_, std::io::Error>(WorkDir { dir, _lock: lock })
        })
        .await;
        match made {
            Ok(Ok(work)) => Ok(work),
            Ok(Err(e)) => Err(Failure::Transient(format!("making a media work folder: {e}"))),
            Err(e) => Err(Failure::Transient(format!("making a media work folder: {e}"))),
        }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file of the blob for the tools (they need a seekable file: an MP4's index may sit at
    /// its end): the store's own file when blobs are local files, else a copy in the folder
    /// named `name`.
    pub(super) async fn spool(&self, store: &dyn BlobStore, blob: &BlobRecord, name: &str) -> Result<PathBuf, Failure> {
        if let Some(file) = store.local_file(&blob.sha256) {
            return Ok(file);
        }
        let path = self.path(name);
        let io = |e: std::io::Error| {
            Failure::Transient(format!("spooling blob {} in {}: {e}", blob.sha256, self.dir.display()))
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        let mut stream = store
            .read(&blob.sha256, None)
            .await
            .map_err(|e| Failure::Transient(format!("reading blob {}: {e}", blob.sha256)))?;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(io)?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &piece).await.map_err(io)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(io)?;
        Ok(path)
    }
}

/// How old a media job's work folder must be before another job removes it as left by a
/// crash: longer than any job may run.
fn stale_after(config: &crate::config::Config) -> Duration {
    (config.transcode.timeout + config.media_timeout * 4).max(Duration::from_secs(3600))
}

/// Removes the work folders of jobs whose process died, and old files of earlier versions.
fn remove_left_behind(root: &Path, stale_after: Duration) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let making = entry.file_name().to_string_lossy().starts_with(MAKING);
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let lock = std::fs::File::open(path.join(LOCK));
            // taken (and let go at once): its job is gone; none: an older version's
            let orphaned = match &lock {
                Ok(_) if making => is_older(&entry, stale_after),
                Ok(file) => file.try_lock().is_ok(),
                Err(_) => is_older(&entry, stale_after),
            };
            if orphaned {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if is_older(&entry, stale_after) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn is_older(entry: &std::fs::DirEntry, age: Duration) -> bool {
    let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
    modified.and_then(|t| SystemTime::now().duration_since(t).ok()).is_some_and(|passed| passed > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folders_of_dead_jobs_go_and_live_ones_stay() {
        let data = tempfile::tempdir().unwrap();
        let live = WorkDir::under(data.path(), Duration::from_secs(3600)).await.ok().unwrap();
        std::fs::write(live.path("video"), b"in use").unwrap();
        // a folder whose job died: its lock file is there, nobody holds it
        let dead = data.path().join("media-work").join("01DEAD");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("rendition.mp4"), b"half").unwrap();
        // one being made by another job (locked in a moment): left alone
        let making = data.path().join("media-work").join(format!("{MAKING}01NEW"));
        std::fs::create_dir(&making).unwrap();
        std::fs::write(making.join(LOCK), b"").unwrap();
        let next = WorkDir::under(data.path(), Duration::from_secs(3600)).await.ok().unwrap();
        assert!(!dead.exists(), "a dead job's folder is removed");
        assert!(making.exists(), "a folder being made stays");
        assert!(live.path("video").exists(), "a live job's folder stays");
        let (live_dir, next_dir) = (live.dir.clone(), next.dir.clone());
        drop((live, next));
        assert!(!live_dir.exists() && !next_dir.exists(), "folders go with their jobs");
    }

    #[tokio::test]
    async fn a_panicking_decoder_is_a_reason_not_a_crash() {
        let err = off_thread(|| -> u32 { panic!("bad huffman table") }).await.unwrap_err();
        assert!(err.0.contains("panicked") && err.0.contains("bad huffman table"), "{err}");
        assert_eq!(off_thread(|| 7).await, Ok(7));
    }
}
