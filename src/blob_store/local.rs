//! The local-disk blob store: `<root>/blobs/sha256/<aa>/<bb>/<hash>`, staging under
//! `<root>/staging/requests/` (request-scoped) and `<root>/staging/uploads/` (parts and
//! resumable uploads, see `local_resumable`). A blob appears by an atomic rename of a fully
//! written, fsynced staging file, followed by an fsync of its directory.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::task::spawn_blocking;
use tokio_util::io::ReaderStream;

use super::group_sync::{GROUP_SYNC_MAX, GroupSync};
use super::local_writer::LocalWriter;
use super::*;

/// Read buffer for streaming blobs out; large enough to keep syscalls few.
const READ_CHUNK: usize = 256 * 1024;
/// Written bytes are handed to the disk every this many bytes rather than all at the final
/// fsync: the kernel otherwise keeps a 1 GiB upload dirty in memory until the fsync (the
/// background threshold is a share of RAM), so the disk would sit idle while the body
/// arrives and then the client would wait for the whole write.
pub(super) const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

pub struct LocalStore {
    blobs: PathBuf,
    /// Rounds of `syncfs` shared by small uploads (see `group_sync`); `None`: every sync is
    /// the file's own.
    group: Option<Arc<GroupSync>>,
    pub(super) staging: PathBuf,
    /// `<root>/ferry-store-id`: the identity of the catalog these blobs belong to (beside
    /// `blobs/`, so everything under it stays a blob).
    identity: PathBuf,
}

const REQUESTS: &str = "requests";
pub const IDENTITY_FILE: &str = "ferry-store-id";
pub(super) const UPLOADS: &str = "uploads";

/// Where a blob lives under `<root>/blobs/sha256/` (a backup copies the same layout).
pub fn blob_subpath(sha256: &Sha256Hex) -> PathBuf {
    let h = sha256.as_str();
    Path::new(&h[0..2]).join(&h[2..4]).join(h)
}

/// Where blobs live under a data dir.
pub fn blobs_dir(root: &Path) -> PathBuf {
    root.join("blobs").join("sha256")
}

impl LocalStore {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let (blobs, staging) = (blobs_dir(root), root.join("staging"));
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(staging.join(REQUESTS))?;
        std::fs::create_dir_all(staging.join(UPLOADS))?;
        let group = GroupSync::start(&blobs, &staging)?.map(Arc::new);
        Ok(Self { blobs, group, staging, identity: root.join(IDENTITY_FILE) })
    }

    pub(super) fn blob_path(&self, sha256: &Sha256Hex) -> PathBuf {
        self.blobs.join(blob_subpath(sha256))
    }

    /// Keys are `requests/<ULID>` or `uploads/<ULID>`, made by `stage`; anything else is
    /// refused so no key can name a path outside staging.
    pub(super) fn staged_path(&self, staged: &Staged) -> Result<PathBuf, StoreError> {
        let valid = staged
            .key
            .split_once('/')
            .is_some_and(|(area, name)| (area == REQUESTS || area == UPLOADS) && name.parse::<ulid::Ulid>().is_ok());
        if !valid {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad staging key {}", staged.key),
            )
            .into());
        }
        Ok(self.staging.join(&staged.key))
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    spawn_blocking(f).await.map_err(std::io::Error::other)?.map_err(StoreError::Io)
}

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Starts writing `from..to` of `file` to disk without waiting for it, so the final fsync
/// has little left to do. On Linux, `POSIX_FADV_DONTNEED` on dirty pages starts their
/// writeback (the same effect as `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which has no safe
/// binding) and leaves them cached until they are clean. Only a hint: durability still
/// comes from the fsync in `finish`, so a failure here changes nothing.
#[cfg(target_os = "linux")]
pub(super) fn start_writeback_of(file: &File, from: u64, to: u64) {
    let _ = rustix::fs::fadvise(file, from, std::num::NonZeroU64::new(to - from), rustix::fs::Advice::DontNeed);
}

/// Elsewhere the final fsync does all the writing.
#[cfg(not(target_os = "linux"))]
pub(super) fn start_writeback_of(_file: &File, _from: u64, _to: u64) {}

#[async_trait]
impl BlobStore for LocalStore {
    fn local_file(&self, sha256: &Sha256Hex) -> Option<PathBuf> {
        Some(self.blob_path(sha256)).filter(|path| path.is_file())
    }

    async fn stage(&self, area: StagingArea) -> Result<Box<dyn StagingWriter>, StoreError> {
        let dir = match area {
            StagingArea::Request => REQUESTS,
            StagingArea::Upload => UPLOADS,
        };
        let key = format!("{dir}/{}", ulid::Ulid::new());
        let path = self.staging.join(&key);
        let open_path = path.clone();
        let file = blocking(move || File::create_new(open_path)).await?;
        let group = self.group.as_ref().map(|group| (group.clone(), group.since()));
        Ok(Box::new(LocalWriter { key, group, path, file: Some(file), written: 0, handed_to_disk: 0, finished: false }))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<ByteStream, StoreError> {
        let file = tokio::fs::File::open(self.staged_path(staged)?).await?;
        Ok(ReaderStream::with_capacity(file, READ_CHUNK).boxed())
    }

    async fn commit(&self, staged: &Staged, sha256: &Sha256Hex) -> Result<Placed, StoreError> {
        let from = self.staged_path(staged)?;
        let to = self.blob_path(sha256);
        let dir = to.parent().expect("blob paths have a parent").to_owned();
        // a large file syncs its own directory entry too: a round would make everyone wait
        // for whatever else is dirty on the filesystem, and it waits for its data anyway
        let group = self.group.as_ref().filter(|_| staged.size <= GROUP_SYNC_MAX).map(|g| (g, g.since()));
        let own_sync = group.is_none().then(|| dir.clone());
        let placed = blocking(move || {
            let placed = if to.exists() {
                std::fs::remove_file(&from)?;
                Placed::AlreadyPresent
            } else {
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&from, &to)?;
                Placed::Stored
            };
            if let Some(dir) = own_sync {
                sync_dir(&dir)?;
            }
            Ok(placed)
        })
        .await?;
        // Either way the directory entry is made durable before the 2xx: found present, the
        // commit that renamed it may still be syncing it (commits place bytes concurrently).
        if let Some((group, since)) = group {
            group.sync(since).await?;
        }
        Ok(placed)
    }

    async fn discard(&self, staged: &Staged) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.staged_path(staged)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn writes_parts_in_place(&self) -> bool {
        true
    }

    fn staged_file(&self, staged: &Staged) -> Option<PathBuf> {
        self.staged_path(staged).ok()
    }

    async fn write_in_place(&self, key: &str, offset: u64) -> Result<Box<dyn StagingWriter>, StoreError> {
        self.part_writer(key, offset).await
    }

    async fn link_staged(&self, staged: &Staged, sha256: &Sha256Hex) -> Result<Placed, StoreError> {
        self.link_to_blob(staged, sha256).await
    }

    async fn staged_is_linked(&self, staged: &Staged) -> Result<bool, StoreError> {
        self.has_second_name(staged).await
    }

    async fn start_resumable(&self) -> Result<Resumable, StoreError> {
        self.start_file().await
    }

    async fn append_resumable(&self, resumable: &Resumable) -> Result<Box<dyn ResumableWriter>, StoreError> {
        self.append_file(resumable).await
    }

    async fn prune_resumable(&self, _superseded: &Resumable, _current: &Resumable) -> Result<(), StoreError> {
        // one file: what a later state does not hold is cut off by the next append or finish
        Ok(())
    }

    async fn finish_resumable(&self, resumable: &Resumable) -> Result<Staged, StoreError> {
        self.finish_file(resumable).await
    }

    async fn discard_resumable(&self, resumable: &Resumable) -> Result<(), StoreError> {
        self.discard(&Staged { key: resumable.key.clone(), size: resumable.size }).await
    }

    fn resumable_keys(&self, resumable: &Resumable) -> Vec<String> {
        vec![resumable.key.clone()]
    }

    fn discard_on_drop(self: std::sync::Arc<Self>, staged: Staged) {
        // an unlink is cheap: done now, so nothing is left when the request answers
        if let Ok(path) = self.staged_path(&staged) {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn clean_request_staging(&self) -> Result<usize, StoreError> {
        let dir = self.staging.join(REQUESTS);
        blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir)? {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_staging(&self) -> Result<Vec<(String, std::time::SystemTime)>, StoreError> {
        let root = self.staging.clone();
        blocking(move || {
            let mut found = Vec::new();
            for area in [REQUESTS, UPLOADS] {
                for file in std::fs::read_dir(root.join(area))? {
                    let file = file?;
                    let key = format!("{area}/{}", file.file_name().to_string_lossy());
                    found.push((key, file.metadata()?.modified()?));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn size_of(&self, sha256: &Sha256Hex) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.blob_path(sha256)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, sha256: &Sha256Hex, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let path = self.blob_path(sha256);
        let missing = sha256.clone();
        let file = blocking(move || {
            let mut file = match File::open(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                other => other?,
            };
            if let Some(r) = range {
                file.seek(SeekFrom::Start(r.start))?;
            }
            Ok(Some(file))
        })
        .await?
        .ok_or(StoreError::Missing(missing))?;
        let file = tokio::fs::File::from_std(file);
        Ok(match range {
            Some(r) => ReaderStream::with_capacity(file.take(r.len()), READ_CHUNK).boxed(),
            None => ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
        })
    }

    async fn delete(&self, sha256: &Sha256Hex) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.blob_path(sha256)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn identity(&self) -> Result<Option<String>, StoreError> {
        match tokio::fs::read_to_string(&self.identity).await {
            Ok(id) => Ok(Some(id.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn bind_identity(&self, id: &str) -> Result<String, StoreError> {
        let (target, id) = (self.identity.clone(), id.to_owned());
        let bound = blocking(move || {
            // written whole and synced under a temporary name, then linked into place: the
            // link fails if an identity exists, so the first one ever written stays
            let dir = target.parent().expect("the identity file has a parent");
            let temporary = dir.join(format!(".{IDENTITY_FILE}.{}", ulid::Ulid::new()));
            let mut file = File::create_new(&temporary)?;
            file.write_all(id.as_bytes())?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&temporary, &target);
            std::fs::remove_file(&temporary)?;
            match linked {
                Ok(()) => {
                    sync_dir(dir)?;
                    Ok(id)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(std::fs::read_to_string(&target)?.trim().to_owned())
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        Ok(bound)
    }

    async fn has_blobs(&self) -> Result<bool, StoreError> {
        let root = self.blobs.clone();
        blocking(move || {
            for outer in std::fs::read_dir(&root)? {
                for inner in std::fs::read_dir(outer?.path())? {
                    if std::fs::read_dir(inner?.path())?.next().is_some() {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        })
        .await
    }

    fn describe(&self) -> String {
        let blobs = self.blobs.parent().unwrap_or(&self.blobs);
        format!("the blob store in {}", blobs.display())
    }

    async fn list(&self) -> Result<Vec<(Sha256Hex, std::time::SystemTime)>, StoreError> {
        let root = self.blobs.clone();
        blocking(move || {
            let mut found = Vec::new();
            for outer in std::fs::read_dir(&root)? {
                for inner in std::fs::read_dir(outer?.path())? {
                    for file in std::fs::read_dir(inner?.path())? {
                        let file = file?;
                        // anything that is not a hash-named file is not a blob
                        if let Ok(hash) = Sha256Hex::parse(&file.file_name().to_string_lossy()) {
                            found.push((hash, file.metadata()?.modified()?));
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
    }
}

/// Writes `batch` at `file`'s position on a blocking thread, then starts the writeback of
/// `from..to` (the file's offsets not handed to the disk yet, this batch included) once that is
/// at least [`WRITEBACK_EVERY`]. Returns the file, and whether writeback was started.
pub(super) async fn write_and_hand_on(
    mut file: File,
    batch: Vec<bytes::Bytes>,
    from: u64,
    to: u64,
) -> Result<(File, bool), StoreError> {
    let start_writeback = to - from >= WRITEBACK_EVERY;
    blocking(move || {
        for piece in &batch {
            file.write_all(piece)?;
        }
        if start_writeback {
            start_writeback_of(&file, from, to);
        }
        Ok((file, start_writeback))
    })
    .await
}
