//! The hashing phase: cached hashes for unchanged files, the rest read once each, several at
//! a time (on 2 cores SHA-256 runs at disk speed; more threads help with slow disks). The
//! cache is saved every few seconds, so a killed run keeps most of its hashing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::PushSummary;
use crate::sync_client::content::{FileHash, hash_file};
use crate::sync_client::walk::LocalFile;
use crate::sync_client::{Session, SyncError};

const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Every file with its hash; files that could not be read become failures.
pub(super) async fn hash_all(
    session: &Session,
    files: Vec<LocalFile>,
    summary: &mut PushSummary,
) -> Result<Vec<(LocalFile, FileHash)>, SyncError> {
    let mut known = Vec::with_capacity(files.len());
    let mut unknown = Vec::new();
    {
        let mut cache = session.cache.lock().expect("not poisoned");
        for file in files {
            match cache.get(&file.rel, file.stamp()) {
                Some(hash) => {
                    let hash = hash.clone();
                    known.push((file, hash));
                }
                None => unknown.push(file),
            }
        }
    }
    if unknown.is_empty() {
        return Ok(known);
    }
    let total: u64 = unknown.iter().map(|f| f.size).sum();
    let phase = session.progress.phase("hashing", total, unknown.len() as u64);
    let threads = session.concurrency.min(std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let cache = session.cache.clone();
    let worker_phase = phase.clone();
    let results = tokio::task::spawn_blocking(move || {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, std::io::Result<FileHash>)>> = Mutex::new(Vec::with_capacity(unknown.len()));
        let last_save = Mutex::new(Instant::now());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = unknown.get(index) else { break };
                        let hashed = hash_file(&file.abs, file.size, &|bytes| worker_phase.add_bytes(bytes));
                        worker_phase.file_done();
                        if let Ok(hash) = &hashed {
                            cache.lock().expect("not poisoned").insert(&file.rel, file.stamp(), hash.clone());
                            // one thread saves at a time, writing outside the cache's lock so
                            // the others go on hashing meanwhile
                            if let Ok(mut last) = last_save.try_lock()
                                && last.elapsed() >= SAVE_EVERY
                            {
                                *last = Instant::now();
                                let snapshot = cache.lock().expect("not poisoned").snapshot();
                                // a failed save only costs a re-hash later (the next save
                                // writes what this one did not)
                                if let Ok(Some(snapshot)) = snapshot {
                                    let _ = snapshot.write();
                                }
                            }
                        }
                        results.lock().expect("not poisoned").push((index, hashed));
                    }
                });
            }
        });
        (unknown, results.into_inner().expect("not poisoned"))
    })
    .await
    .map_err(|e| SyncError::Usage(format!("hashing stopped: {e}")))?;
    phase.finish();
    session.save_cache()?;
    let (unknown, mut results) = results;
    results.sort_by_key(|(index, _)| *index);
    for ((_, hashed), file) in results.into_iter().zip(unknown) {
        match hashed {
            Ok(hash) => {
                summary.files_hashed += 1;
                known.push((file, hash));
            }
            Err(e) => summary
                .failures
                .push(crate::sync_client::Failure { path: file.rel, reason: format!("could not read it: {e}") }),
        }
    }
    known.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
    Ok(known)
}
