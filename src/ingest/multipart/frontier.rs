//! The whole-file SHA-256 of an upload whose parts are written in place, carried forward as
//! its parts are recorded in order (as tus carries its hash state across PATCHes), so its
//! completion hashes only what the frontier has not reached. For a large push this takes
//! the completion's last serial pass over the file off the client's wait.
//!
//! Why that is right: a part's record says its region holds exactly the bytes whose SHA-256
//! it keeps (its writer hashed them as they streamed in, and a part is forgotten before its
//! region is written again). The frontier reads a region under that part's lock while its
//! record stands and remembers the record's digest; a completion starts from the frontier
//! only where every part it covered still has the same digest, so the same bytes. The
//! device family's top-hash is the SHA-256 of the part digests (the parts are its chunks),
//! so it needs no read at all.
//!
//! A frontier lives in this process only: a completion elsewhere (after a restart, on
//! another server) finds none and hashes the whole file.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::in_place::planned_offset;
use super::{MultipartUploads, UploadError};
use crate::blob_store::{Staged, StoreError};
use crate::catalog::{BlobRecord, Part, Upload};
use crate::domain::{Sha256Hex, chunk_size_for};
use crate::ingest::{HashedInPlace, IngestError, pump::HEAD_BYTES};

/// Uploads followed at once; past that, new uploads complete by reading their whole file.
const MAX_FOLLOWED: usize = 4096;
/// Bytes read per call while hashing a region.
const READ_BYTES: usize = 1 << 20;

/// The frontiers of the uploads this process follows, by upload id.
#[derive(Clone, Default)]
pub(super) struct Frontiers(Arc<Mutex<HashMap<String, Arc<Followed>>>>);

struct Followed {
    since: Instant,
    /// A part was recorded since the advancer last looked.
    wanted: AtomicBool,
    /// The upload completed, went or started over: nobody advances this one any more.
    closed: AtomicBool,
    /// Held by one advancer at a time, and only while it holds the upload's lock shared:
    /// a completion, holding it exclusively, always finds it free.
    state: tokio::sync::Mutex<Frontier>,
}

/// How far the whole-file hash has got: over parts 1..=`parts.len()`, whose digests (as
/// recorded when their regions were read) are `parts`.
#[derive(Clone, Default)]
struct Frontier {
    whole: Sha256,
    offset: u64,
    parts: Vec<Sha256Hex>,
}

impl Frontiers {
    /// The upload's entry, made when missing; `None` when too many are followed already.
    fn follow(&self, upload_id: &str, expiry: Duration) -> Option<Arc<Followed>> {
        let mut map = self.0.lock().expect("never poisoned");
        if !map.contains_key(upload_id) && map.len() >= MAX_FOLLOWED {
            // uploads completed or expired by another server leave their entry here
            map.retain(|_, followed| followed.since.elapsed() < expiry);
            if map.len() >= MAX_FOLLOWED {
                return None;
            }
        }
        let entry = map.entry(upload_id.to_owned()).or_insert_with(|| {
            Arc::new(Followed {
                since: Instant::now(),
                wanted: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                state: Default::default(),
            })
        });
        Some(entry.clone())
    }

    /// Stops following an upload; its frontier, when no advancer holds it (a caller holding
    /// the upload's lock exclusively is sure of that).
    fn close(&self, upload_id: &str) -> Option<Frontier> {
        let followed = self.0.lock().expect("never poisoned").remove(upload_id)?;
        followed.closed.store(true, Ordering::SeqCst);
        followed.state.try_lock().ok().map(|frontier| frontier.clone())
    }

    /// Forgets an upload that went or started its file over.
    pub(super) fn forget(&self, upload_id: &str) {
        self.close(upload_id);
    }
}

impl MultipartUploads {
    /// Moves the upload's frontier over the parts recorded in order, in the background (part
    /// `key`'s record is in the catalog by now).
    pub(super) fn advance_frontier(&self, upload: &Upload, key: &str) {
        let Some(path) = self.store.staged_file(&Staged { key: key.to_owned(), size: 0 }) else { return };
        let Some(file_size) = upload.file_size else { return };
        let Some(followed) = self.frontiers.follow(&upload.upload_id, self.expiry) else { return };
        followed.wanted.store(true, Ordering::SeqCst);
        let (this, id, key) = (self.clone(), upload.upload_id.clone(), key.to_owned());
        tokio::spawn(async move {
            loop {
                let upload_lock = this.locks.shared(&id).await;
                if followed.closed.load(Ordering::SeqCst) {
                    return;
                }
                // another advancer is at it, and will look again for this part
                let Ok(mut frontier) = followed.state.try_lock() else { return };
                followed.wanted.store(false, Ordering::SeqCst);
                let moved = match this.advance_one(&id, &key, &path, file_size, &mut frontier).await {
                    Ok(moved) => moved,
                    Err(e) => {
                        tracing::debug!(error = %e, upload = %id, "a frontier stopped (the completion reads the rest)");
                        false
                    }
                };
                drop(frontier);
                drop(upload_lock);
                if !moved && !followed.wanted.load(Ordering::SeqCst) {
                    return;
                }
            }
        });
    }

    /// Hashes the next part's region when its record is there; whether it did.
    async fn advance_one(
        &self,
        id: &str,
        key: &str,
        path: &Path,
        file_size: u64,
        frontier: &mut Frontier,
    ) -> Result<bool, UploadError> {
        let next = frontier.parts.len() as u32 + 1;
        let Some(offset) = planned_offset(file_size, next).filter(|offset| *offset == frontier.offset) else {
            return Ok(false);
        };
        // its writers hold this lock exclusively from before they forget the record until
        // their last byte landed
        let _part_lock = self.locks.shared(&format!("{id}#{next}")).await;
        let parts = self.catalog.parts(id).await?;
        let Some(part) = parts.into_iter().find(|p| p.part_num == next) else { return Ok(false) };
        let planned = match chunk_size_for(file_size) {
            0 => file_size,
            chunk => chunk.min(file_size - offset),
        };
        if part.staging_key != key || part.size != planned {
            return Ok(false);
        }
        let (whole, path) = (frontier.whole.clone(), path.to_owned());
        let (whole, read) = blocking(move || hash_region(&path, offset, Some(part.size), whole)).await?;
        if read != part.size {
            return Ok(false); // shorter than recorded: the completion finds out why
        }
        frontier.whole = whole;
        frontier.offset += read;
        frontier.parts.push(part.sha256);
        Ok(true)
    }

    /// Hashes an upload's staging object for its completion, which holds the upload's lock
    /// exclusively and has checked `parts` (1..=N, in order, the planned sizes, `total`
    /// bytes): from the frontier where its parts are still the ones recorded, else from the
    /// start.
    pub(super) async fn hash_in_place(
        &self,
        upload: &Upload,
        staged: Staged,
        parts: &[&Part],
    ) -> Result<HashedInPlace, IngestError> {
        let path = self.store.staged_file(&staged).ok_or_else(|| {
            IngestError::Store(StoreError::from(std::io::Error::other("parts written in place need a local file")))
        })?;
        let start = self.frontiers.close(&upload.upload_id).filter(|frontier| {
            frontier.parts.len() <= parts.len() && frontier.parts.iter().zip(parts).all(|(d, p)| *d == p.sha256)
        });
        let start = start.unwrap_or_default();
        let from = start.offset;
        let (whole, head, read) = blocking(move || {
            let mut head = vec![0u8; HEAD_BYTES];
            let got = File::open(&path)?.read_at(&mut head, 0)?;
            head.truncate(got);
            let (whole, read) = hash_region(&path, from, None, start.whole)?;
            Ok((whole, head, read))
        })
        .await?;
        let total = staged.size;
        let size = from + read;
        let digests: Vec<u8> =
            parts.iter().flat_map(|p| hex::decode(p.sha256.as_str()).expect("stored hashes are hex")).collect();
        // the device family's top-hash: over the chunk digests, which the part digests are
        let chunked_hash = (chunk_size_for(total) > 0 && size == total).then(|| Sha256Hex::of(&digests));
        let blob = BlobRecord { sha256: Sha256Hex::from_digest(&whole.finalize()), size, chunked_hash };
        Ok(HashedInPlace { staged: Staged { size, ..staged }, blob, head })
    }
}

/// Feeds the bytes of `path` from `offset` to `hasher`: `len` of them, or up to its end.
/// Returns the hasher and how many bytes there were.
fn hash_region(path: &Path, offset: u64, len: Option<u64>, mut hasher: Sha256) -> std::io::Result<(Sha256, u64)> {
    let file = File::open(path)?;
    let mut buffer = vec![0u8; READ_BYTES];
    let mut read = 0u64;
    loop {
        let want = len.map_or(READ_BYTES as u64, |len| (len - read).min(READ_BYTES as u64)) as usize;
        if want == 0 {
            break;
        }
        let got = file.read_at(&mut buffer[..want], offset + read)?;
        if got == 0 {
            break;
        }
        hasher.update(&buffer[..got]);
        read += got as u64;
    }
    Ok((hasher, read))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, IngestError> {
    let done = tokio::task::spawn_blocking(work).await.map_err(|e| std::io::Error::other(e.to_string()));
    Ok(done.and_then(|r| r).map_err(StoreError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_and_the_rest_hash_as_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let (first, read) = hash_region(&path, 0, Some(1_234_567), Sha256::new()).unwrap();
        assert_eq!(read, 1_234_567);
        let (whole, rest) = hash_region(&path, read, None, first).unwrap();
        assert_eq!(read + rest, bytes.len() as u64);
        assert_eq!(whole.finalize(), Sha256::digest(&bytes));
        let (_, past_the_end) = hash_region(&path, 2_999_999, Some(10), Sha256::new()).unwrap();
        assert_eq!(past_the_end, 1, "a short file reads short");
    }
}
