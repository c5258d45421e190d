//! Verifying bytes that reached staging without passing through Ferry (direct-to-S3 mode):
//! they are read back once, hashed exactly as `receive` hashes a body, and checked against
//! what the client bound before anything is recorded.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::task::{JoinHandle, spawn_blocking};

use super::{Expectation, IngestError, Mismatch, Raw};
use crate::blob_store::{BlobStore, Staged, StoreError};
use crate::catalog::BlobRecord;
use crate::domain::{ChunkHasher, Sha256Hex, chunk_size_for};

/// Bytes hashed per blocking call, as in `receive`.
const BATCH_BYTES: usize = 1024 * 1024;
const HEAD_BYTES: usize = 64;

/// Streams `staged` through SHA-256 (and the chunked top-hash where a device bound it).
pub(super) async fn read_back(store: &dyn BlobStore, staged: Staged, expect: &Expectation) -> Result<Raw, IngestError> {
    let size = expect.size.unwrap_or(staged.size);
    let mut stream = store.read_staged(&staged).await?;
    let chunks = expect.needs_device_hash() && chunk_size_for(size) > 0;
    let fresh = (Sha256::new(), chunks.then(|| ChunkHasher::new(Some(size))));
    let mut hashing = Hashing::Idle(Box::new(fresh));
    let (mut total, mut head) = (0u64, Vec::new());
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0;
    loop {
        // the next batch is read while the previous one is hashed
        let piece = stream.next().await.transpose().map_err(StoreError::from)?;
        if let Some(piece) = &piece {
            total += piece.len() as u64;
            if expect.size.is_some_and(|bound| total > bound) {
                return Err(IngestError::HashMismatch(Mismatch::Longer { bound: size }));
            }
            head.extend_from_slice(&piece[..piece.len().min(HEAD_BYTES - head.len())]);
            batch_len += piece.len();
            batch.push(piece.clone());
        }
        if batch_len >= BATCH_BYTES || (piece.is_none() && !batch.is_empty()) {
            hashing = hashing.then(std::mem::take(&mut batch)).await;
            batch_len = 0;
        }
        if piece.is_none() {
            break;
        }
    }
    let hashers = hashing.done().await;
    let (whole, chunks) = hashers;
    let chunked_hash = match chunks {
        Some(chunks) if total == size => chunks.finish(total),
        // a short object: its hashes cannot match; verify reports the size
        _ => None,
    };
    let blob = BlobRecord { sha256: Sha256Hex::from_digest(&whole.finalize()), size: total, chunked_hash };
    Ok(Raw { staged: Staged { size: total, ..staged }, blob, head })
}

/// The two hashes of a read-back, each on a thread of its own (as `receive` runs them): a
/// completion of parts written in place reads a whole large file here while its client waits.
enum Hashing {
    Idle(Box<(Sha256, Option<ChunkHasher>)>),
    Busy(JoinHandle<Sha256>, Option<JoinHandle<ChunkHasher>>),
}

impl Hashing {
    /// Waits for the batch before, then starts hashing `pieces`.
    async fn then(self, pieces: Vec<Bytes>) -> Self {
        let (mut whole, chunks) = self.done().await;
        let chunks = chunks.map(|mut chunks| {
            let pieces = pieces.clone();
            spawn_blocking(move || {
                pieces.iter().for_each(|piece| chunks.update(piece));
                chunks
            })
        });
        let whole = spawn_blocking(move || {
            pieces.iter().for_each(|piece| whole.update(piece));
            whole
        });
        Hashing::Busy(whole, chunks)
    }

    async fn done(self) -> (Sha256, Option<ChunkHasher>) {
        match self {
            Hashing::Idle(hashers) => *hashers,
            Hashing::Busy(whole, chunks) => {
                let whole = whole.await.expect("hashing does not panic");
                let chunks = match chunks {
                    Some(task) => Some(task.await.expect("hashing does not panic")),
                    None => None,
                };
                (whole, chunks)
            }
        }
    }
}
