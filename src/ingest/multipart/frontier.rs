//! The whole-file SHA-256 of an upload whose parts are written in place, carried forward as
//! its parts are recorded in order (as tus carries its hash state across PATCHes), so its
//! completion hashes only what the frontier has not reached. For a large push this takes
//! the completion's last serial pass over the file off the client's wait.
//!
//! Why that is right: the frontier reads a region under its part's lock while the part's
//! record stands (writers hold that lock from before they forget the record until their last
//! byte landed). A part this process wrote and recorded holds exactly the bytes whose digest
//! its writer computed as they streamed in, so its region is hashed once, into the
//! whole-file state. Any other part (recorded before a restart) is hashed on its own too,
//! and the frontier goes on only when that digest is the one recorded: a power loss can roll
//! back the catalog's forgetting of a part whose wrong re-send had reached the disk, leaving
//! a record over other bytes. A completion starts from the frontier only where every part
//! it covered still has the digest the frontier saw, so the same bytes, and hashes the rest
//! by the same rule. The device family's top-hash is the SHA-256 of the part digests (the
//! parts are its chunks), so a region that is not what its part recorded makes it refuse the
//! file.
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

use super::in_place::{planned_offset, planned_size};
use super::{MultipartUploads, UploadError};
use crate::blob_store::{Staged, StoreError};
use crate::catalog::{BlobRecord, Part, Upload};
use crate::domain::{Sha256Hex, chunk_size_for};
use crate::ingest::{HashedInPlace, IngestError, pump::HEAD_BYTES};

/// Uploads followed at once; past that, new uploads complete by reading their whole file.
const MAX_FOLLOWED: usize = 1024;
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
    /// The parts this process wrote whose records stand, by number: their sizes and
    /// digests. A writer takes its part out under the part's lock before it forgets the
    /// record, and puts it back once it recorded the part again.
    written_here: Mutex<WrittenHere>,
    /// Held by one advancer at a time, and only while it holds the upload's lock shared:
    /// a completion, holding it exclusively, always finds it free.
    state: tokio::sync::Mutex<Frontier>,
}

/// Part number → (size, digest) of the parts this process wrote whose records stand.
type WrittenHere = HashMap<u32, (u64, [u8; 32])>;

/// How far the whole-file hash has got: over parts 1..=`parts.len()`, whose regions had the
/// digests `parts` (each the one recorded) when they were read.
#[derive(Clone, Default)]
struct Frontier {
    whole: Sha256,
    offset: u64,
    parts: Vec<[u8; 32]>,
    /// The next part's record whose region was found not to hold it: not read again until
    /// the part is written again.
    refused: Option<[u8; 32]>,
}

impl Frontiers {
    /// The upload's entry, made when missing; `None` when too many are followed already.
    fn follow(&self, upload_id: &str, expiry: Duration) -> Option<Arc<Followed>> {
        let mut map = self.0.lock().expect("never poisoned");
        if !map.contains_key(upload_id) && map.len() >= MAX_FOLLOWED {
            // uploads completed or expired by another server leave their entry here
            map.retain(|_, followed| {
                let keep = followed.since.elapsed() < expiry;
                followed.closed.store(!keep, Ordering::SeqCst);
                keep
            });
            if map.len() >= MAX_FOLLOWED {
                return None;
            }
        }
        let entry = map.entry(upload_id.to_owned()).or_insert_with(|| {
            Arc::new(Followed {
                since: Instant::now(),
                wanted: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                written_here: Default::default(),
                state: Default::default(),
            })
        });
        Some(entry.clone())
    }

    /// The upload's frontier, when no advancer holds it (a caller holding the upload's lock
    /// exclusively is sure of that), and the digests of the parts this process wrote.
    fn snapshot(&self, upload_id: &str) -> (Option<Frontier>, WrittenHere) {
        let Some(followed) = self.0.lock().expect("never poisoned").get(upload_id).cloned() else {
            return Default::default();
        };
        let frontier = followed.state.try_lock().ok().map(|frontier| frontier.clone());
        (frontier, followed.written_here.lock().expect("never poisoned").clone())
    }

    /// A writer of part `part_num` is about to forget its record and write its region again.
    pub(super) fn unvouch(&self, upload_id: &str, part_num: u32) {
        if let Some(followed) = self.0.lock().expect("never poisoned").get(upload_id) {
            followed.written_here.lock().expect("never poisoned").remove(&part_num);
        }
    }

    /// Stops following an upload that completed, went or started its file over.
    pub(super) fn forget(&self, upload_id: &str) {
        if let Some(followed) = self.0.lock().expect("never poisoned").remove(upload_id) {
            followed.closed.store(true, Ordering::SeqCst);
        }
    }
}

impl MultipartUploads {
    /// Moves the upload's frontier over the parts recorded in order, in the background:
    /// `part`, which this process just wrote into `key` and recorded, may let it go on.
    pub(super) fn advance_frontier(&self, upload: &Upload, key: &str, part: &Part) {
        let Some(path) = self.store.staged_file(&Staged { key: key.to_owned(), size: 0 }) else { return };
        let Some(file_size) = upload.file_size else { return };
        let Some(followed) = self.frontiers.follow(&upload.upload_id, self.expiry) else { return };
        if let Some(digest) = digest_of(part) {
            followed.written_here.lock().expect("never poisoned").insert(part.part_num, (part.size, digest));
        }
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
                let moved = match this.advance_one(&id, (&key, &path), file_size, &followed, &mut frontier).await {
                    Ok(moved) => moved,
                    Err(e) => {
                        // the upload went, or the file cannot be read: its completion (if any)
                        // reads the whole file and finds out
                        tracing::debug!(error = %e, upload = %id, "a frontier stopped");
                        this.frontiers.forget(&id);
                        return;
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
        (key, path): (&str, &Path),
        file_size: u64,
        followed: &Followed,
        frontier: &mut Frontier,
    ) -> Result<bool, UploadError> {
        let next = frontier.parts.len() as u32 + 1;
        let Some(offset) = planned_offset(file_size, next).filter(|offset| *offset == frontier.offset) else {
            return Ok(false);
        };
        // its writers hold this lock exclusively from before they forget the record until
        // their last byte landed
        let _part_lock = self.locks.shared(&format!("{id}#{next}")).await;
        let planned = planned_size(file_size, next);
        let vouched = followed.written_here.lock().expect("never poisoned").get(&next).copied();
        let (size, recorded) = match vouched {
            Some(written) => written,
            None => {
                // recorded before this process started: the record is all there is to go by
                let parts = self.catalog.parts(id).await?;
                let Some(part) = parts.into_iter().find(|p| p.part_num == next && p.staging_key == key) else {
                    return Ok(false);
                };
                let Some(recorded) = digest_of(&part) else { return Ok(false) };
                (part.size, recorded)
            }
        };
        if Some(size) != planned || (vouched.is_none() && frontier.refused == Some(recorded)) {
            return Ok(false);
        }
        let (whole, path) = (frontier.whole.clone(), path.to_owned());
        let own = vouched.is_none();
        let (whole, digest, read) = blocking(move || hash_region(&path, offset, size, whole, own)).await?;
        tracing::trace!(upload = %id, part = next, vouched = !own, "the frontier moved");
        if read != size || digest.is_some_and(|digest| digest != recorded) {
            // not what its record says: the completion reads it again, and refuses the file
            tracing::warn!(upload = %id, part = next, "a part's region does not hold its recorded bytes");
            frontier.refused = Some(recorded);
            return Ok(false);
        }
        frontier.whole = whole;
        frontier.offset += read;
        frontier.parts.push(recorded);
        frontier.refused = None;
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
        let (start, written_here) = self.frontiers.snapshot(&upload.upload_id);
        let start = start.filter(|frontier| {
            frontier.parts.len() <= parts.len()
                && frontier.parts.iter().zip(parts).all(|(digest, p)| digest_of(p).as_ref() == Some(digest))
        });
        let start = start.unwrap_or_default();
        let total = staged.size;
        // the rest, part by part, into the whole-file state; a region this process did not
        // write is hashed on its own too, for its digest (see the module docs)
        let rest: Vec<(u64, Option<[u8; 32]>)> = parts[start.parts.len()..]
            .iter()
            .map(|p| (p.size, digest_of(p).filter(|d| written_here.get(&p.part_num) == Some(&(p.size, *d)))))
            .collect();
        let Frontier { whole, offset: from, parts: mut digests, .. } = start;
        tracing::debug!(upload = %upload.upload_id, from, total = staged.size, "hashing what the frontier has not reached");
        let (whole, digests, head, size) = blocking(move || {
            let file = File::open(&path)?;
            let mut head = vec![0u8; HEAD_BYTES];
            let got = file.read_at(&mut head, 0)?;
            head.truncate(got);
            let size = file.metadata()?.len();
            if size != total {
                return Ok((whole, digests, head, size)); // refused for its size below
            }
            let (mut whole, mut offset) = (whole, from);
            for (len, vouched) in rest {
                let (next, digest, read) = hash_region(&path, offset, len, whole, vouched.is_none())?;
                (whole, offset) = (next, offset + read);
                digests.extend(vouched.or(digest));
            }
            Ok((whole, digests, head, size))
        })
        .await?;
        let chunked_hash = (chunk_size_for(total) > 0 && size == total).then(|| Sha256Hex::of(&digests.concat()));
        let blob = BlobRecord { sha256: Sha256Hex::from_digest(&whole.finalize()), size, chunked_hash };
        Ok(HashedInPlace { staged: Staged { size, ..staged }, blob, head })
    }
}

/// A part record's digest as bytes.
fn digest_of(part: &Part) -> Option<[u8; 32]> {
    hex::decode(part.sha256.as_str()).ok()?.try_into().ok()
}

/// The whole-file state, a region's own digest (when asked for) and its length.
type Hashed = (Sha256, Option<[u8; 32]>, u64);

/// Feeds `len` bytes of `path` from `offset` to `whole`, and hashes them on their own too
/// when `own`. Returns `whole`, that digest and how many bytes there were (fewer at the end
/// of a short file).
fn hash_region(path: &Path, offset: u64, len: u64, mut whole: Sha256, own: bool) -> std::io::Result<Hashed> {
    let file = File::open(path)?;
    let mut own = own.then(Sha256::new);
    let mut buffer = vec![0u8; READ_BYTES];
    let mut read = 0u64;
    while read < len {
        let want = (len - read).min(READ_BYTES as u64) as usize;
        let got = file.read_at(&mut buffer[..want], offset + read)?;
        if got == 0 {
            break;
        }
        whole.update(&buffer[..got]);
        if let Some(own) = own.as_mut() {
            own.update(&buffer[..got]);
        }
        read += got as u64;
    }
    Ok((whole, own.map(|own| own.finalize().into()), read))
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
        let (first, digest, read) = hash_region(&path, 0, 1_234_567, Sha256::new(), true).unwrap();
        assert_eq!(read, 1_234_567);
        assert_eq!(digest, Some(<[u8; 32]>::from(Sha256::digest(&bytes[..1_234_567]))));
        let (whole, digest, rest) = hash_region(&path, read, 3_000_000 - read, first, false).unwrap();
        assert_eq!((read + rest, digest), (bytes.len() as u64, None));
        assert_eq!(whole.finalize(), Sha256::digest(&bytes));
        let (_, _, past_the_end) = hash_region(&path, 2_999_999, 10, Sha256::new(), true).unwrap();
        assert_eq!(past_the_end, 1, "a short file reads short");
    }
}
