//! Verifying bytes that reached staging without passing through Ferry (direct-to-S3 mode):
//! they are read back once, hashed exactly as `receive` hashes a body, and checked against
//! what the client bound before anything is recorded.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::task::spawn_blocking;

use super::{Expectation, IngestError, Mismatch, Raw};
use crate::blob_store::{BlobStore, Staged, StoreError};
use crate::catalog::BlobRecord;
use crate::domain::{ChunkHasher, Sha256Hex, chunk_size_for};

/// Bytes hashed per blocking call, as in `receive`.
const BATCH_BYTES: usize = 1024 * 1024;
const HEAD_BYTES: usize = 64;

/// Streams `staged` through SHA-256 (and the chunked top-hash for files over 16 MiB).
pub(super) async fn read_back(store: &dyn BlobStore, staged: Staged, expect: &Expectation) -> Result<Raw, IngestError> {
    let size = expect.size.unwrap_or(staged.size);
    let mut stream = store.read_staged(&staged).await?;
    let mut hashers = (Sha256::new(), (chunk_size_for(size) > 0).then(|| ChunkHasher::new(Some(size))));
    let (mut total, mut head) = (0u64, Vec::new());
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0;
    loop {
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
            let (mut whole, mut chunks) = hashers;
            let pieces = std::mem::take(&mut batch);
            hashers = spawn_blocking(move || {
                for piece in &pieces {
                    whole.update(piece);
                    if let Some(chunks) = chunks.as_mut() {
                        chunks.update(piece);
                    }
                }
                (whole, chunks)
            })
            .await
            .expect("hashing does not panic");
            batch_len = 0;
        }
        if piece.is_none() {
            break;
        }
    }
    let (whole, chunks) = hashers;
    let chunked_hash = match chunks {
        Some(chunks) if total == size => chunks.finish(total),
        // a short object: its hashes cannot match; verify reports the size
        _ => None,
    };
    let blob = BlobRecord { sha256: Sha256Hex::from_digest(&whole.finalize()), size: total, chunked_hash };
    Ok(Raw { staged: Staged { size: total, ..staged }, blob, head })
}
