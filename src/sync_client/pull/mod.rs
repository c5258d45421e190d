//! `ferry pull`: a volume (or the part under `--from`) mirrored into a local folder.
//!
//! The change-feed mirror is brought up to date from its stored cursor (so a second pull
//! asks only for what changed); then every live item whose local file differs (by the hash
//! cache, or one read of a file of the same size) is downloaded ([`download`]), and with
//! `--delete` local files still holding the content of a deleted item are removed. A local
//! file that was changed since is never deleted.

mod download;

use serde::Serialize;

use super::content::hash_file;
use super::hash_cache::mtime_ns;
use super::remote::RemoteItem;
use super::walk::Filters;
use super::{Failure, Session, SyncError, plural};

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub filters: Filters,
    pub delete: bool,
}

/// The run's outcome, as `--json` prints it (exactly these keys).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PullSummary {
    pub files_seen: u64,
    pub files_downloaded: u64,
    pub bytes_received: u64,
    pub files_deleted: u64,
    pub failures: Vec<Failure>,
}

impl PullSummary {
    pub fn describe(&self) -> String {
        format!(
            "{} on the server, {} downloaded ({} received), {} deleted, {}",
            plural(self.files_seen, "file", "files"),
            self.files_downloaded,
            indicatif::HumanBytes(self.bytes_received),
            self.files_deleted,
            plural(self.failures.len() as u64, "failure", "failures"),
        )
    }
}

pub async fn pull(session: &mut Session, options: &PullOptions) -> Result<PullSummary, SyncError> {
    session.remote.refresh(&session.api).await?;
    let mut summary = PullSummary::default();
    let items: Vec<RemoteItem> = session.remote.under(&session.prefix).cloned().collect();
    let (mut wanted, mut deleted) = (Vec::new(), Vec::new());
    for item in items {
        let Some(rel) = session.local_rel(&item.media_path).map(str::to_owned) else { continue };
        if !options.filters.wants(&rel) {
            continue;
        }
        if item.is_deleted {
            if options.delete {
                deleted.push((rel, item));
            }
            continue;
        }
        summary.files_seen += 1;
        match local_matches(session, &rel, &item).await {
            Ok(true) => {}
            Ok(false) => wanted.push((rel, item)),
            Err(e) => summary.failures.push(Failure { path: rel, reason: format!("cannot read the local file: {e}") }),
        }
    }
    download::download_all(session, wanted, &mut summary).await?;
    for (rel, item) in deleted {
        match local_matches(session, &rel, &item).await {
            Ok(true) => match std::fs::remove_file(session.root.join(&rel)) {
                Ok(()) => {
                    summary.files_deleted += 1;
                    session.cache.lock().expect("not poisoned").remove(&rel);
                    session.progress.line(format!("deleted {rel} (deleted on the server)"));
                    remove_empty_parents(session, &rel);
                }
                Err(e) => summary.failures.push(Failure { path: rel, reason: format!("could not delete it: {e}") }),
            },
            Ok(false) => {}
            Err(e) => summary.failures.push(Failure { path: rel, reason: format!("cannot read the local file: {e}") }),
        }
    }
    session.save_cache()?;
    Ok(summary)
}

/// Whether the local file at `rel` holds the item's content (hashing it once when the cache
/// does not know this size and mtime). A missing file, or a folder in its place, does not.
async fn local_matches(session: &Session, rel: &str, item: &RemoteItem) -> std::io::Result<bool> {
    let path = session.root.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.len() != item.file_size {
        return Ok(false);
    }
    let mtime = mtime_ns(meta.modified()?);
    if let Some(known) = session.cache.lock().expect("not poisoned").get(rel, meta.len(), mtime) {
        return Ok(known.file_hash == item.file_hash);
    }
    let size = meta.len();
    let hashed =
        tokio::task::spawn_blocking(move || hash_file(&path, size, &|_| {})).await.map_err(std::io::Error::other)??;
    let matches = hashed.file_hash == item.file_hash;
    session.cache.lock().expect("not poisoned").insert(rel, mtime, hashed);
    Ok(matches)
}

/// Removes folders left empty by a deletion, up to (not including) the pulled folder.
fn remove_empty_parents(session: &Session, rel: &str) {
    let mut dir = std::path::Path::new(rel).parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::remove_dir(session.root.join(d)).is_err() {
            break;
        }
        dir = d.parent();
    }
}
