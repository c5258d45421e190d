//! Creating each media item at its path, with the file's times. A path the change-feed
//! mirror shows holding this very content is left alone (no request: what makes a re-push
//! of an unchanged tree cheap). A path holding other content answers 409 with its current
//! state. When that is the content the local file last had in common with the server (see
//! [`crate::sync_client::hash_cache`]), the local file is an edit of it, and the item is
//! updated; otherwise the conflict policy decides: skip it, overwrite it, or put ours beside
//! it as `name (1).ext`. An update and an overwrite are guarded by `expected_last_updated`,
//! so a change this run has not seen is never clobbered.

use std::collections::HashMap;
use std::time::SystemTime;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{ConflictPolicy, Planned, PushSummary};
use crate::domain::{ErrorCode, Sha256Hex};
use crate::sync_client::api::ApiError;
use crate::sync_client::hash_cache::mtime_ns;
use crate::sync_client::{Session, SyncError};

/// How many `name (N).ext` a rename tries before giving up.
const RENAMES: u32 = 99;

enum Placed {
    Created,
    /// The server's copy was the one the local file was edited from; now it holds the edit.
    Updated,
    /// The local file is the server's copy from before someone changed it there: left alone.
    Behind,
    /// A conflict, what became of it, whether the path now holds ours, and whether ours is on
    /// the server at all (false: skipped).
    Conflict {
        what: String,
        ours: bool,
        pushed: bool,
    },
}

/// Creates the items not in place yet; returns how many it tried (each may have changed the
/// volume).
pub(super) async fn place_all(
    session: &Session,
    planned: &[Planned],
    unavailable: &HashMap<(Sha256Hex, u64), String>,
    policy: ConflictPolicy,
    summary: &mut PushSummary,
) -> Result<usize, SyncError> {
    let mut work = Vec::new();
    for p in planned {
        if let Some(reason) = unavailable.get(&p.hash.key()) {
            summary.fail(&p.file.rel, reason.clone());
        } else if in_place(session, p) {
            session.cache.lock().expect("not poisoned").mark_synced(&p.file.rel, &p.media_path, p.file.identity);
        } else {
            work.push(p);
        }
    }
    let attempted = work.len();
    let mut results = futures_util::stream::iter(work)
        .map(|p| async move { (p, place(session, p, policy).await) })
        .buffer_unordered(session.concurrency);
    while let Some((p, result)) = results.next().await {
        let in_sync = matches!(result, Ok(Placed::Created | Placed::Updated | Placed::Conflict { ours: true, .. }));
        match result {
            Ok(Placed::Created) => {}
            Ok(Placed::Behind) => {
                summary.files_behind += 1;
                session.progress.line(behind_line(&p.media_path));
            }
            Ok(Placed::Updated) => {
                summary.files_updated += 1;
                session
                    .progress
                    .line(format!("updated {} (changed here since it was last pushed or pulled)", p.media_path));
            }
            Ok(Placed::Conflict { what, pushed, .. }) => {
                summary.conflicts += 1;
                summary.unresolved += u64::from(!pushed);
                session.progress.line(format!("conflict: {} {what}", p.media_path));
            }
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                if e.is_transient() {
                    summary.retry_later.insert(p.file.rel.clone());
                }
                let reason = if e.is(ErrorCode::StaleUpdate) {
                    "it changed on the server while being overwritten; run again".to_owned()
                } else if e.is(ErrorCode::UnknownContent) {
                    "the server does not hold its content (the upload did not complete)".to_owned()
                } else {
                    e.to_string()
                };
                summary.fail(&p.file.rel, reason);
            }
        }
        if in_sync {
            session.cache.lock().expect("not poisoned").mark_synced(&p.file.rel, &p.media_path, p.file.identity);
        }
    }
    Ok(attempted)
}

/// Whether the server's `file_hash` at the path is what this very local file last had in
/// common with it: the local file is an edit of the server's copy, not a stranger to it (nor
/// a new file that took the name of one pushed before).
pub(super) fn edited_from(session: &Session, p: &Planned, server_hash: &Sha256Hex) -> bool {
    let cache = session.cache.lock().expect("not poisoned");
    cache.edited_in_place(&p.file.rel, &p.media_path, server_hash, p.file.identity)
}

/// Whether the local file still holds what it last had in common with its path on the
/// server: if the server now holds other content there, the local copy is out of date.
pub(super) fn behind(session: &Session, p: &Planned) -> bool {
    let cache = session.cache.lock().expect("not poisoned");
    cache.synced_content(&p.file.rel, &p.media_path) == Some(&p.hash.file_hash)
}

/// What a person is told of a path that is out of date here.
pub(super) fn behind_line(media_path: &str) -> String {
    format!(
        "behind: {media_path} changed on the server since this copy was in sync with it; left alone (pull to get it)"
    )
}

/// Why a path holding other content on the server is a conflict, said so that the right way
/// out is clear (`server_hash`: what the server holds there, when known).
pub(super) fn conflict_reason(session: &Session, p: &Planned, server_hash: Option<&Sha256Hex>) -> String {
    let cache = session.cache.lock().expect("not poisoned");
    match cache.synced_content(&p.file.rel, &p.media_path) {
        Some(synced) if Some(synced) == server_hash => {
            "was in sync with the server, but the file here is another file now \
             (saved as a new file, or a new file under this name); skipped: --on-conflict overwrite pushes it, rename \
             pushes it beside"
                .into()
        }
        Some(_) => "changed both here and on the server since they were last in sync; skipped: pull --overwrite takes \
             the server's, push --on-conflict overwrite or rename keeps this one"
            .into(),
        None => "holds other content on the server; skipped (see --on-conflict)".into(),
    }
}

fn in_place(session: &Session, p: &Planned) -> bool {
    session
        .remote
        .get(&p.media_path)
        .is_some_and(|r| !r.is_deleted && r.file_hash == p.hash.file_hash && r.file_size == p.hash.size)
}

fn iso(at: SystemTime) -> String {
    crate::clock::iso(mtime_ns(at).div_euclid(1_000_000))
}

async fn place(session: &Session, p: &Planned, policy: ConflictPolicy) -> Result<Placed, ApiError> {
    let api = &session.api;
    let ctime = iso(p.file.created.unwrap_or(p.file.modified));
    let mtime = iso(p.file.modified);
    let content = json!({"file_hash": p.hash.file_hash, "file_size": p.hash.size, "ctime": ctime, "mtime": mtime});
    let create = |path: &str| {
        let mut body = content.clone();
        body["media_path"] = json!(path);
        async move { api.call("media", body).await }
    };
    let current = match create(&p.media_path).await {
        Ok(_) => return Ok(Placed::Created),
        Err(e) if e.is(ErrorCode::PathConflict) => e.body().cloned().unwrap_or(Value::Null),
        Err(e) => return Err(e),
    };
    let replace = |message: Option<&'static str>| {
        let media_id = current["media_id"].as_i64().unwrap_or_default();
        let mut body = content.clone();
        body["expected_last_updated"] = current["last_updated"].clone();
        async move {
            api.call(&format!("media/{media_id}"), body).await?;
            Ok(message.map_or(Placed::Updated, |m| Placed::Conflict { what: m.into(), ours: true, pushed: true }))
        }
    };
    let server_hash = current["file_hash"].as_str().and_then(|h| Sha256Hex::parse(h).ok());
    if server_hash.as_ref().is_some_and(|h| edited_from(session, p, h)) {
        return replace(None).await;
    }
    // changed there since this copy was in sync with it: whatever the policy, an old copy
    // never undoes a newer change
    if behind(session, p) {
        return Ok(Placed::Behind);
    }
    match policy {
        ConflictPolicy::Skip => {
            let what = conflict_reason(session, p, server_hash.as_ref());
            Ok(Placed::Conflict { what, ours: false, pushed: false })
        }
        ConflictPolicy::Overwrite => replace(Some("held other content on the server; overwritten")).await,
        ConflictPolicy::Rename => {
            for n in 1..=RENAMES {
                let renamed = renamed(&p.media_path, n);
                match create(&renamed).await {
                    Ok(_) => {
                        let what = format!("holds other content on the server; pushed as {renamed}");
                        return Ok(Placed::Conflict { what, ours: false, pushed: true });
                    }
                    Err(e) if e.is(ErrorCode::PathConflict) => continue,
                    Err(e) => return Err(e),
                }
            }
            let what = format!("holds other content, and so do its first {RENAMES} renames; skipped");
            Ok(Placed::Conflict { what, ours: false, pushed: false })
        }
    }
}

/// `/a/b.jpg` → `/a/b (n).jpg`; a leading dot is part of the name, not an extension.
fn renamed(path: &str, n: u32) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    format!("{dir}/{stem} ({n}){ext}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn renames_keep_the_extension() {
        assert_eq!(super::renamed("/a/b.jpg", 1), "/a/b (1).jpg");
        assert_eq!(super::renamed("/a/.profile", 2), "/a/.profile (2)");
        assert_eq!(super::renamed("/x.tar.gz", 3), "/x.tar (3).gz");
        assert_eq!(super::renamed("/noext", 1), "/noext (1)");
    }
}
