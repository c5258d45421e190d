//! Watch folders: a file dropped into a watched directory is ingested once its size and
//! mtime have stopped changing for the settle time, then moved to `done/` (or removed). A
//! watched directory feeds a user's library folder (`FERRY_WATCH`) or a device's gallery
//! (`<data_dir>/gallery/<user>/<device>/incoming`, with thumbnails beside it). The source goes only after its catalog row is committed, and each
//! row carries a watch key (path, size, mtime), so a restart at any point neither loses a
//! file nor records it twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::catalog::{CatalogError, DeviceRef, Identities};
use crate::config::Config;
use crate::domain::DeviceId;
use crate::gallery::{EventError, GalleryEvents, NewGalleryEvent};
use crate::ingest::{Expectation, Ingest, IngestError, Received};
use crate::library::{Folder, LibraryError, LibraryFiles, NewFile};

/// One watched directory and where its files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEntry {
    pub dir: PathBuf,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `DIR=USER/FOLDER` entry of `FERRY_WATCH`.
    Library { user: String, folder: String },
    /// A device's gallery `incoming/` folder.
    Gallery { device: DeviceId },
}

/// Why a watched folder or file could not be handled (it is tried again on the next scan).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watch entry '{0}' must look like DIR=USER/FOLDER")]
    BadEntry(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no user named '{0}'")]
    NoSuchUser(String),
    #[error("the device is gone")]
    DeviceGone,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Catalog(CatalogError),
}

/// An I/O error about `path`.
fn io(path: &Path) -> impl Fn(std::io::Error) -> WatchError + '_ {
    move |source| WatchError::Io { path: path.to_owned(), source }
}

impl WatchEntry {
    pub fn parse(raw: &str) -> Result<Self, WatchError> {
        let bad = || WatchError::BadEntry(raw.to_owned());
        let (dir, target) = raw.rsplit_once('=').ok_or_else(bad)?;
        let (user, folder) = target.split_once('/').ok_or_else(bad)?;
        if dir.trim().is_empty() || user.trim().is_empty() || folder.trim().is_empty() {
            return Err(bad());
        }
        let target = Target::Library { user: user.trim().to_owned(), folder: folder.trim().to_owned() };
        Ok(Self { dir: PathBuf::from(dir.trim()), target })
    }
}

/// Why a settled file was not newly recorded.
enum Recorded {
    /// Its watch key is in the catalog: a run that died before moving it recorded it.
    Before,
    Failed(WatchError),
}

impl From<CatalogError> for Recorded {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Conflict(_) => Recorded::Before,
            other => Recorded::Failed(WatchError::Catalog(other)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    modified: SystemTime,
    since: Instant,
}

#[derive(Clone)]
pub struct WatchFolders {
    entries: Vec<WatchEntry>,
    data_dir: PathBuf,
    settle: Duration,
    remove_after: bool,
    max_size: u64,
    catalog: Arc<dyn Identities>,
    ingest: Ingest,
    library: LibraryFiles,
    events: GalleryEvents,
    seen: Arc<Mutex<HashMap<PathBuf, Seen>>>,
}

impl WatchFolders {
    pub fn new(
        config: &Config,
        catalog: Arc<dyn Identities>,
        ingest: Ingest,
        library: LibraryFiles,
        events: GalleryEvents,
    ) -> Result<Self, WatchError> {
        let entries = config.watch.iter().map(|e| WatchEntry::parse(e)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            entries,
            data_dir: config.data_dir.clone(),
            settle: config.watch_settle,
            remove_after: config.watch_remove,
            max_size: config.max_upload_size,
            catalog,
            ingest,
            library,
            events,
            seen: Arc::default(),
        })
    }

    /// Looks at every watched directory once; ingests what has settled. Returns how many
    /// files were ingested (or found already ingested) and moved away.
    pub async fn scan_once(&self) -> usize {
        let mut handled = 0;
        let mut entries = self.entries.clone();
        entries.extend(self.gallery_entries().await);
        for entry in &entries {
            match self.scan_dir(entry).await {
                Ok(n) => handled += n,
                Err(e) => tracing::warn!(dir = %entry.dir.display(), error = %e, "watch folder scan failed"),
            }
        }
        handled
    }

    /// Every `gallery/<user>/<device>/incoming` folder that exists (`paths` creates them).
    async fn gallery_entries(&self) -> Vec<WatchEntry> {
        let mut found = Vec::new();
        let Ok(users) = std::fs::read_dir(self.data_dir.join("gallery")) else { return found };
        for user in users.flatten() {
            let Ok(devices) = std::fs::read_dir(user.path()) else { continue };
            for device in devices.flatten() {
                let incoming = device.path().join("incoming");
                let Ok(id) = device.file_name().to_string_lossy().parse() else { continue };
                // a removed device's folder is nobody's: never read its files again
                let exists = self.catalog.find_devices(&DeviceRef::Id(id)).await.map(|d| !d.is_empty());
                if incoming.is_dir() && exists.unwrap_or(true) {
                    found.push(WatchEntry { dir: incoming, target: Target::Gallery { device: id } });
                }
            }
        }
        found
    }

    async fn scan_dir(&self, entry: &WatchEntry) -> Result<usize, WatchError> {
        tokio::fs::create_dir_all(&entry.dir).await.map_err(io(&entry.dir))?;
        let mut listing = tokio::fs::read_dir(&entry.dir).await.map_err(io(&entry.dir))?;
        let mut settled = Vec::new();
        let mut present = Vec::new();
        while let Some(item) = listing.next_entry().await.map_err(io(&entry.dir))? {
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(meta) = item.metadata().await else { continue };
            if name.starts_with('.') || !meta.is_file() {
                continue; // hidden files (partial copies) and folders such as done/
            }
            let path = item.path();
            let (size, modified) = (meta.len(), meta.modified().map_err(io(&path))?);
            present.push(path.clone());
            let mut seen = self.seen.lock().expect("watch state lock");
            match seen.get(&path) {
                Some(s) if s.size == size && s.modified == modified => {
                    if s.since.elapsed() >= self.settle {
                        settled.push((path, size, modified));
                    }
                }
                _ => {
                    seen.insert(path, Seen { size, modified, since: Instant::now() });
                }
            }
        }
        self.seen.lock().expect("watch state lock").retain(|p, _| !p.starts_with(&entry.dir) || present.contains(p));
        let mut handled = 0;
        for (path, size, modified) in settled {
            match self.ingest_file(entry, &path, size, modified).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "watch folder ingest failed; will retry"),
            }
            self.seen.lock().expect("watch state lock").remove(&path);
        }
        Ok(handled)
    }

    /// Ingests one settled file; `false` when it changed meanwhile (it settles again later).
    async fn ingest_file(
        &self,
        entry: &WatchEntry,
        path: &Path,
        size: u64,
        modified: SystemTime,
    ) -> Result<bool, WatchError> {
        let file = tokio::fs::File::open(path).await.map_err(io(path))?;
        let body = tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024);
        let expect = Expectation { max_size: Some(self.max_size), size_hint: Some(size), ..Expectation::default() };
        let received = self.ingest.receive(body, &expect).await?;
        let still = tokio::fs::metadata(path).await.map_err(io(path))?;
        if still.len() != size || still.modified().ok() != Some(modified) || received.blob.size != size {
            drop(received); // changed meanwhile: its staged copy goes, it settles again later
            return Ok(false);
        }
        let mtime_ns = modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let watch_key = format!("{}:{size}:{mtime_ns}", path.display());
        let title = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let recorded = match &entry.target {
            Target::Library { user, folder } => self.record_file(user, folder, received, watch_key, title).await,
            Target::Gallery { device } => self.record_event(*device, entry, received, watch_key, title).await,
        };
        match recorded {
            Ok(()) | Err(Recorded::Before) => {} // recorded now, or by a run that died before moving it
            Err(Recorded::Failed(e)) => return Err(e),
        }
        self.put_away(&entry.dir, path).await?;
        tracing::info!(file = %path.display(), size, "watch folder file ingested");
        Ok(true)
    }

    async fn record_file(
        &self,
        user: &str,
        folder: &str,
        received: Received,
        watch_key: String,
        title: String,
    ) -> Result<(), Recorded> {
        let user = self
            .catalog
            .user_by_name(user)
            .await?
            .ok_or_else(|| Recorded::Failed(WatchError::NoSuchUser(user.to_owned())))?;
        let new = NewFile {
            file_name: Some(title),
            watch_key: Some(watch_key),
            ..NewFile::in_folder(user.user_id, Folder::Key(folder.to_owned()))
        };
        match self.library.add(new, received).await {
            Ok(_) => Ok(()),
            Err(LibraryError::Recorded(_)) => Err(Recorded::Before),
            Err(e) => Err(Recorded::Failed(e.into())),
        }
    }

    /// A gallery event, with `thumbnails/<name>.jpg` (or `<stem>.jpg`) as its thumbnail.
    async fn record_event(
        &self,
        device: DeviceId,
        entry: &WatchEntry,
        received: Received,
        watch_key: String,
        name: String,
    ) -> Result<(), Recorded> {
        let device = self
            .catalog
            .find_devices(&DeviceRef::Id(device))
            .await?
            .pop()
            .ok_or(Recorded::Failed(WatchError::DeviceGone))?;
        let thumbnails = entry.dir.parent().unwrap_or(&entry.dir).join("thumbnails");
        let stem = Path::new(&name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut thumbnail = None;
        for candidate in [thumbnails.join(format!("{name}.jpg")), thumbnails.join(format!("{stem}.jpg"))] {
            if let Ok(file) = tokio::fs::File::open(&candidate).await {
                let body = tokio_util::io::ReaderStream::new(file);
                let received = self.ingest.receive(body, &Expectation::default()).await;
                thumbnail = Some(received.map_err(|e| Recorded::Failed(e.into()))?);
                let _ = tokio::fs::remove_file(&candidate).await;
                break;
            }
        }
        let new = NewGalleryEvent { name, watch_key: Some(watch_key), ..NewGalleryEvent::default() };
        match self.events.create(&device, new, received, thumbnail).await {
            Ok(_) => Ok(()),
            Err(EventError::Exists(_)) => Err(Recorded::Before),
            Err(e) => Err(Recorded::Failed(e.into())),
        }
    }

    async fn put_away(&self, dir: &Path, path: &Path) -> Result<(), WatchError> {
        if self.remove_after {
            return tokio::fs::remove_file(path).await.map_err(io(path));
        }
        let done = dir.join("done");
        tokio::fs::create_dir_all(&done).await.map_err(io(&done))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut target = done.join(&name);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            target = done.join(format!("{name}.{}", ulid::Ulid::new()));
        }
        tokio::fs::rename(path, &target).await.map_err(io(&target))
    }

    /// The server's loop: scan, sleep a fraction of the settle time, repeat.
    pub async fn run_forever(self) {
        let pause = (self.settle / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        loop {
            self.scan_once().await;
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse() {
        let e = WatchEntry::parse("/srv/drop=alice/camera").unwrap();
        assert_eq!(e.dir, PathBuf::from("/srv/drop"));
        assert_eq!(e.target, Target::Library { user: "alice".into(), folder: "camera".into() });
        for bad in ["/srv/drop", "/srv=alice", "=a/b", "/x=/b", "/x=a/"] {
            assert!(WatchEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
