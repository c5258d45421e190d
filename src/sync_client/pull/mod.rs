//! `ferry pull`: a volume (or the part under `--from`) mirrored into a local folder.
//!
//! The change-feed mirror is brought up to date from its stored cursor (so a second pull
//! asks only for what changed); then every live item whose local file differs (by the hash
//! cache, or one read of a file of the same size) is downloaded ([`download`]), and with
//! `--delete` local files still holding the content of a deleted item are removed.
//!
//! A local file is replaced only when it still holds what it last had in common with the
//! server (see [`super::hash_cache`]): one changed here, or one that was there before the
//! first pull, is kept and reported as a conflict unless `--overwrite` says otherwise. A
//! local file that was changed since is never deleted.

mod download;

use serde::Serialize;

use super::content::hash_file;
use super::remote::RemoteItem;
use super::walk::{FileIdentity, Filters, Stamp};
use super::{Failure, Session, SyncError, plural};

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub filters: Filters,
    pub delete: bool,
    /// Replace local files that differ from the server's even when they were changed here.
    pub overwrite: bool,
}

/// The run's outcome, as `--json` prints it (exactly these keys).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PullSummary {
    pub files_seen: u64,
    pub files_downloaded: u64,
    pub bytes_received: u64,
    pub files_deleted: u64,
    /// Local files changed here while the server still holds what they last had in common:
    /// kept, waiting to be pushed (not a conflict).
    pub files_ahead: u64,
    /// Local files kept although the server holds other content (changed on both sides, or
    /// there before the first pull): the run is not all done.
    pub conflicts: u64,
    pub failures: Vec<Failure>,
}

impl PullSummary {
    pub fn describe(&self) -> String {
        format!(
            "{} on the server, {} downloaded ({} received), {} deleted, {} changed here (to push), {}, {}",
            plural(self.files_seen, "file", "files"),
            self.files_downloaded,
            indicatif::HumanBytes(self.bytes_received),
            self.files_deleted,
            self.files_ahead,
            plural(self.conflicts, "conflict", "conflicts"),
            plural(self.failures.len() as u64, "failure", "failures"),
        )
    }
}

pub async fn pull(session: &mut Session, options: &PullOptions) -> Result<PullSummary, SyncError> {
    adopt_earlier_runs(session);
    session.remote.refresh(&session.api).await?;
    let mut summary = PullSummary::default();
    let items: Vec<RemoteItem> = session.remote.under(&session.prefix).cloned().collect();
    let (mut wanted, mut deleted) = (Vec::new(), Vec::new());
    for item in items {
        let Some(rel) = session.local_rel(&item.media_path).map(str::to_owned) else { continue };
        if !safe_rel(&rel) {
            let reason = "the server named a path that leads out of the folder; skipped".to_owned();
            summary.failures.push(Failure { path: item.media_path.clone(), reason });
            continue;
        }
        if !options.filters.wants(&rel) {
            continue;
        }
        if item.is_deleted {
            if options.delete {
                deleted.push((rel, item));
            } else {
                // kept here, gone there: should the path come back with other content, this
                // file is no older copy of it
                session.cache.lock().expect("not poisoned").forget_synced(&rel);
            }
            continue;
        }
        summary.files_seen += 1;
        match local_state(session, &rel, &item).await {
            Ok((Local::Same, _)) => {}
            Ok((Local::Missing | Local::Unchanged, seen)) => wanted.push(Target { rel, item, seen }),
            Ok((Local::Ahead | Local::Changed, seen)) if options.overwrite => wanted.push(Target { rel, item, seen }),
            Ok((Local::Ahead, _)) => {
                summary.files_ahead += 1;
                session
                    .progress
                    .line(format!("ahead: {rel} was changed here since it was in sync; kept (push to send it)"));
            }
            Ok((Local::Changed, _)) => {
                summary.conflicts += 1;
                session.progress.line(format!(
                    "conflict: {rel} differs from the server's {}, which changed too (or the file was here before \
                     the first pull); kept (see --overwrite)",
                    item.media_path
                ));
            }
            Err(e) => summary.failures.push(Failure { path: rel, reason: format!("cannot read the local file: {e}") }),
        }
    }
    download::download_all(session, wanted, &mut summary).await?;
    for (rel, item) in deleted {
        match local_state(session, &rel, &item).await {
            // its content, or an older one it was not changed from here
            Ok((Local::Same | Local::Unchanged, _)) => match std::fs::remove_file(session.root.join(&rel)) {
                Ok(()) => {
                    summary.files_deleted += 1;
                    session.cache.lock().expect("not poisoned").remove(&rel);
                    session.progress.line(format!("deleted {rel} (deleted on the server)"));
                    remove_empty_parents(session, &rel);
                }
                Err(e) => summary.failures.push(Failure { path: rel, reason: format!("could not delete it: {e}") }),
            },
            Ok(_) => {}
            Err(e) => summary.failures.push(Failure { path: rel, reason: format!("cannot read the local file: {e}") }),
        }
    }
    session.save_cache()?;
    Ok(summary)
}

/// A server-named path is written under the folder only when every part of it is a plain
/// name: an empty part (an absolute path), `.` or `..` could lead elsewhere.
fn safe_rel(rel: &str) -> bool {
    rel.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

/// A local path a pull will write, and what was there when it decided to (`None`: nothing):
/// should that change before the download is put in place, the local file is kept.
pub(super) struct Target {
    pub rel: String,
    pub item: RemoteItem,
    pub seen: Option<Stamp>,
}

/// State written before the cache remembered what each path last had in common with the
/// server: a file whose cached hash is what the server held at its path when the mirror was
/// last brought up to date was in sync then (else the first pull after an upgrade would
/// take every change on the server for a local edit).
fn adopt_earlier_runs(session: &Session) {
    let mut cache = session.cache.lock().expect("not poisoned");
    for item in session.remote.under(&session.prefix).filter(|i| !i.is_deleted) {
        if let Some(rel) = session.local_rel(&item.media_path) {
            cache.adopt_synced(rel, &item.media_path, &item.file_hash);
        }
    }
}

/// The local file at `rel` next to the server's item.
enum Local {
    /// Nothing there (or a folder: placing the file reports it).
    Missing,
    /// The item's content.
    Same,
    /// Other content, but what it last had in common with the server: not changed here.
    Unchanged,
    /// Changed here, while the server still holds what they last had in common.
    Ahead,
    /// Other content, and the server's changed too (or they were never in sync).
    Changed,
}

/// Compares the local file at `rel` with `item`, hashing it once when the cache does not know
/// this stamp; a file found holding the item's content is remembered as in sync. Also the
/// file's stamp, as [`Target::seen`].
async fn local_state(session: &Session, rel: &str, item: &RemoteItem) -> std::io::Result<(Local, Option<Stamp>)> {
    let path = session.root.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Local::Missing, None)),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Ok((Local::Missing, None));
    }
    let (stamp, size) = (Stamp::of(&meta)?, meta.len());
    let identity = FileIdentity::of(&meta);
    let known = session.cache.lock().expect("not poisoned").get(rel, stamp).map(|h| h.file_hash.clone());
    let file_hash = match known {
        Some(file_hash) => file_hash,
        None => {
            let hashed = tokio::task::spawn_blocking(move || hash_file(&path, size, &|_| {}))
                .await
                .map_err(std::io::Error::other)??;
            let file_hash = hashed.file_hash.clone();
            session.cache.lock().expect("not poisoned").insert(rel, stamp, hashed);
            file_hash
        }
    };
    let mut cache = session.cache.lock().expect("not poisoned");
    let local = if file_hash == item.file_hash && size == item.file_size {
        cache.mark_synced(rel, &item.media_path, identity);
        Local::Same
    } else if cache.was_synced(rel, &item.media_path, &file_hash) {
        Local::Unchanged
    } else if cache.was_synced(rel, &item.media_path, &item.file_hash) {
        Local::Ahead
    } else {
        Local::Changed
    };
    Ok((local, Some(stamp)))
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

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_are_written_under_the_folder() {
        for safe in ["a.jpg", "Fotos/Été 2024/x.jpg", "..hidden", "a/.b/c"] {
            assert!(super::safe_rel(safe), "{safe}");
        }
        // what `//etc/x` or `/a/../../x` under the prefix `/` would give
        for unsafe_rel in ["/etc/x", "a/../../x", "..", "a/./b", "a//b", "a/", "a\0b"] {
            assert!(!super::safe_rel(unsafe_rel), "{unsafe_rel:?}");
        }
    }
}
