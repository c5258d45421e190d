//! Downloads: signed GET URLs from `download` (in batches), each content fetched once into
//! `.ferry-partial/` inside the folder, resumed with `Range` after an interruption, hashed
//! as it arrives (the kept prefix is read once more after a resume), verified against the
//! item's `file_hash`, given its mtime, fsynced and renamed into place. Further paths of the
//! same content are copies of the verified file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures_util::StreamExt;
use indicatif::ProgressBar;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{PullSummary, Target};
use crate::domain::{Sha256Hex, chunk_size_for};
use crate::sync_client::api::{ApiError, Transient, error_chain, origin_of, refused_by, stalled_for, with_retries};
use crate::sync_client::content::{DeviceHasher, FileHash};
use crate::sync_client::progress::Phase;
use crate::sync_client::remote::RemoteItem;
use crate::sync_client::walk::{FileIdentity, PARTIAL_DIR, Stamp};
use crate::sync_client::{Failure, Session, SyncError};

/// Hashes per `download` request.
const URL_BATCH: usize = 1000;

#[derive(Debug)]
enum FetchError {
    Api(ApiError),
    /// The answer began and then broke off: tried again (from where it stopped), and in the
    /// end a failure of this file alone — the server answered, so it is not unreachable.
    BrokeOff(String),
    Local(String),
}

impl Transient for FetchError {
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Api(e) => e.is_transient(),
            FetchError::BrokeOff(_) => true,
            FetchError::Local(_) => false,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            FetchError::Api(e) => Transient::retry_after(e),
            FetchError::BrokeOff(_) | FetchError::Local(_) => None,
        }
    }
}

fn local(what: &str) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Local(format!("{what}: {e}"))
}

/// One content to fetch (`item`: the first path's) and the local paths it goes to.
struct Wanted {
    item: RemoteItem,
    targets: Vec<Target>,
}

pub(super) async fn download_all(
    session: &Session,
    wanted: Vec<Target>,
    summary: &mut PullSummary,
) -> Result<(), SyncError> {
    let mut by_content: Vec<Wanted> = Vec::new();
    let mut index: HashMap<(Sha256Hex, u64), usize> = HashMap::new();
    for target in wanted {
        let key = (target.item.file_hash.clone(), target.item.file_size);
        match index.get(&key) {
            Some(i) => by_content[*i].targets.push(target),
            None => {
                index.insert(key, by_content.len());
                by_content.push(Wanted { item: target.item.clone(), targets: vec![target] });
            }
        }
    }
    let mut unfinished = HashSet::new();
    if by_content.is_empty() {
        clear_stale_partials(session, &unfinished);
        return Ok(());
    }
    let total = by_content.iter().map(|w| w.item.file_size).sum();
    // counted in paths, as the summary counts them (a content at two paths is two files)
    let files = by_content.iter().map(|w| w.targets.len() as u64).sum();
    let phase = session.progress.phase("downloading", total, files);
    let received = Arc::new(AtomicU64::new(0));
    for batch in by_content.chunks(URL_BATCH) {
        let hashes: Vec<&Sha256Hex> = batch.iter().map(|w| &w.item.file_hash).collect();
        let answer = session.api.call("download", json!({"hash_list": hashes})).await?;
        let urls: HashMap<String, String> = answer["download_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["file_hash"].as_str()?.to_owned(), e["url"].as_str()?.to_owned())))
            .collect();
        let mut fetches = futures_util::stream::iter(batch)
            .map(|wanted| {
                let (phase, received, urls) = (phase.clone(), received.clone(), &urls);
                async move {
                    let result = match urls.get(wanted.item.file_hash.as_str()) {
                        Some(url) => fetch(session, wanted, url, &phase, &received).await,
                        None => {
                            Err(FetchError::Local("the server offers no download of it (deleted meanwhile?)".into()))
                        }
                    };
                    (wanted, result)
                }
            })
            .buffer_unordered(session.concurrency);
        while let Some((wanted, result)) = fetches.next().await {
            for _ in &wanted.targets {
                phase.file_done();
            }
            match result {
                Ok(kept) => {
                    for target in &wanted.targets {
                        let rel = &target.rel;
                        if kept.contains(rel) {
                            summary.conflicts += 1;
                            session.progress.line(format!("conflict: {rel} changed here during the pull; kept"));
                        } else {
                            summary.files_downloaded += 1;
                            let size = indicatif::HumanBytes(wanted.item.file_size);
                            session.progress.line(format!("downloaded {rel} ({size})"));
                        }
                    }
                }
                Err(FetchError::Api(e)) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    let reason = match e {
                        FetchError::Api(e) => e.to_string(),
                        FetchError::BrokeOff(why) => format!("the download broke off ({why}); run again to go on"),
                        FetchError::Local(why) => why,
                    };
                    for target in &wanted.targets {
                        summary.failures.push(Failure { path: target.rel.clone(), reason: reason.clone() });
                    }
                    unfinished.insert(partial_name(&wanted.item));
                }
            }
        }
    }
    phase.finish();
    summary.bytes_received = received.load(Ordering::Relaxed);
    clear_stale_partials(session, &unfinished);
    Ok(())
}

/// The name of a content's partial download in `.ferry-partial/`.
fn partial_name(item: &RemoteItem) -> String {
    format!("{}-{}", item.file_hash, item.file_size)
}

/// After a run, `.ferry-partial/` keeps the partial downloads of contents that failed in it
/// and of any content the volume still holds (a run with other filters resumes them); what an
/// earlier interrupted run left of a content the volume no longer holds (changed or deleted on
/// the server since) goes, and so does the folder once empty.
fn clear_stale_partials(session: &Session, unfinished: &HashSet<String>) {
    let dir = session.root.join(PARTIAL_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let held: HashSet<String> = session.remote.under("/").filter(|i| !i.is_deleted).map(partial_name).collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !unfinished.contains(&name) && !held.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Fetches one content (resuming a partial download), then puts it at each of its paths;
/// returns the paths left alone because their local file changed meanwhile.
async fn fetch(
    session: &Session,
    wanted: &Wanted,
    url: &str,
    phase: &Phase,
    received: &AtomicU64,
) -> Result<Vec<String>, FetchError> {
    let item = &wanted.item;
    let partial_dir = session.root.join(PARTIAL_DIR);
    tokio::fs::create_dir_all(&partial_dir).await.map_err(local("creating .ferry-partial"))?;
    let partial = partial_dir.join(partial_name(item));
    let bar = if chunk_size_for(item.file_size) > 0 {
        session.progress.file_bar(&wanted.targets[0].rel, item.file_size, 0)
    } else {
        ProgressBar::hidden()
    };
    // what an earlier run fetched counts as done (fetch_once starts over if it was wrong)
    let kept = tokio::fs::metadata(&partial).await.map_or(0, |m| m.len()).min(item.file_size);
    phase.skip_bytes(kept);
    let fetched = with_retries(|| fetch_once(session, url, &partial, item.file_size, phase, &bar, received)).await;
    bar.finish_and_clear();
    let hashed = fetched?;
    if hashed.file_hash != item.file_hash {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(FetchError::Local("the downloaded bytes do not match its file_hash (discarded); run again".into()));
    }
    let mtime = item.mtime.as_deref().and_then(parse_time);
    let mut source = partial;
    let mut kept = Vec::new();
    for target in &wanted.targets {
        let (rel, dest) = (&target.rel, session.root.join(&target.rel));
        if now_at(&dest) != target.seen {
            // changed (or made) here since the pull looked: the local file wins
            kept.push(rel.clone());
            continue;
        }
        let temp = if source.starts_with(&partial_dir) {
            source.clone()
        } else {
            // a further path of the same content: a copy of the verified file
            let temp = partial_dir.join(format!("{}-{}.copy", item.file_hash, item.file_size));
            tokio::fs::copy(&source, &temp).await.map_err(local("copying"))?;
            temp
        };
        if let Some((stamp, identity)) = place(&temp, &dest, mtime).await? {
            let mut cache = session.cache.lock().expect("not poisoned");
            cache.insert(rel, stamp, hashed.clone());
            cache.mark_synced(rel, &target.item.media_path, identity);
        }
        source = dest;
    }
    if source == partial_dir.join(partial_name(item)) {
        // every path kept its local file: the verified download is not wanted
        let _ = tokio::fs::remove_file(&source).await;
    }
    Ok(kept)
}

/// A local file's stamp (`None`: no file there), as [`Target::seen`] holds it.
fn now_at(path: &Path) -> Option<Stamp> {
    let meta = std::fs::symlink_metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    Stamp::of(&meta).ok()
}

/// Gives `temp` its mtime, makes it durable and renames it to `dest`; returns the stamp and
/// identity of the file put in place, read through its handle the moment after the rename
/// (which moves the ctime). `None`: it was written to at once, so it is not recorded as the
/// server's content (the next run reads it).
async fn place(
    temp: &Path,
    dest: &Path,
    mtime: Option<SystemTime>,
) -> Result<Option<(Stamp, Option<FileIdentity>)>, FetchError> {
    let file = std::fs::OpenOptions::new().write(true).open(temp).map_err(local("opening the download"))?;
    if let Some(at) = mtime {
        file.set_modified(at).map_err(local("setting its mtime"))?;
    }
    file.sync_all().map_err(local("syncing"))?;
    let written = file.metadata().and_then(|m| Stamp::of(&m)).map_err(local("reading it"))?;
    let parent = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    tokio::fs::create_dir_all(&parent).await.map_err(local("creating its folder"))?;
    if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) {
        return Err(FetchError::Local("a folder is in its place".into()));
    }
    tokio::fs::rename(temp, dest).await.map_err(local("moving it into place"))?;
    let placed = file.metadata().and_then(|m| Ok((Stamp::of(&m)?, FileIdentity::of(&m))));
    let (stamp, identity) = placed.map_err(local("reading it in place"))?;
    drop(file);
    std::fs::File::open(&parent).and_then(|d| d.sync_all()).map_err(local("syncing its folder"))?;
    let untouched = (stamp.size, stamp.mtime_ns) == (written.size, written.mtime_ns);
    Ok(untouched.then_some((stamp, identity)))
}

fn parse_time(raw: &str) -> Option<SystemTime> {
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = at.unix_timestamp_nanos();
    let base = SystemTime::UNIX_EPOCH;
    if nanos >= 0 {
        base.checked_add(std::time::Duration::from_nanos(u64::try_from(nanos).ok()?))
    } else {
        base.checked_sub(std::time::Duration::from_nanos(u64::try_from(-nanos).ok()?))
    }
}

/// One attempt: hashes what the partial file holds, asks for the rest with `Range`, and
/// appends it while hashing; returns the whole file's hash.
async fn fetch_once(
    session: &Session,
    url: &str,
    partial: &Path,
    size: u64,
    phase: &Phase,
    bar: &ProgressBar,
    received: &AtomicU64,
) -> Result<FileHash, FetchError> {
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(partial)
        .await
        .map_err(local("opening the partial download"))?;
    let mut have = file.metadata().await.map_err(local("reading the partial download"))?.len();
    if have > size {
        file.set_len(0).await.map_err(local("resetting the partial download"))?;
        have = 0;
    }
    let mut hasher = DeviceHasher::new(size);
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = have;
    while left > 0 {
        let read = file.read(&mut buffer[..left.min(1 << 20) as usize]).await.map_err(local("reading"))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        left -= read as u64;
    }
    bar.set_position(have);
    bar.reset_eta();
    if have < size {
        let mut request = session.api.http().get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let stall = session.api.stall();
        let response = tokio::time::timeout(stall, request.send())
            .await
            .map_err(|_| stalled(url, stall))?
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Api(refused_by(response).await));
        }
        if have > 0 && status != reqwest::StatusCode::PARTIAL_CONTENT {
            // the whole file came back: start over
            file.set_len(0).await.map_err(local("resetting the partial download"))?;
            hasher = DeviceHasher::new(size);
            bar.set_position(0);
        }
        let mut body = response.bytes_stream();
        let silent = || FetchError::BrokeOff(stalled_for(stall));
        while let Some(chunk) = tokio::time::timeout(stall, body.next()).await.map_err(|_| silent())? {
            let chunk = chunk.map_err(|e| FetchError::BrokeOff(error_chain(&e)))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(local("writing"))?;
            phase.add_bytes(chunk.len() as u64);
            bar.inc(chunk.len() as u64);
            received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        file.flush().await.map_err(local("writing"))?;
    }
    hasher.finish().map_err(|_| FetchError::BrokeOff("it ended early".into()))
}

fn stalled(url: &str, stall: std::time::Duration) -> FetchError {
    FetchError::Api(ApiError::Unreachable { url: origin_of(url), reason: stalled_for(stall) })
}

fn unreachable(url: &str, e: &reqwest::Error) -> FetchError {
    FetchError::Api(ApiError::Unreachable { url: origin_of(url), reason: error_chain(e) })
}
