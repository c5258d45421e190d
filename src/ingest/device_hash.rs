//! The device family's top-hash of bytes already stored, read once (the `device_hash` job
//! in `media`, and a body whose length was not announced).

use futures_util::StreamExt;
use tokio::task::spawn_blocking;

use crate::blob_store::{ByteStream, StoreError};
use crate::domain::{ChunkHasher, Sha256Hex};

/// Bytes gathered before one blocking hashing call.
const BATCH_BYTES: usize = 1024 * 1024;

/// The top-hash of `total` bytes read from `bytes`; an error when the stream breaks off or
/// holds another number of bytes.
pub async fn top_hash_of(mut bytes: ByteStream, total: u64) -> Result<Sha256Hex, StoreError> {
    let mut chunks = ChunkHasher::new(Some(total));
    let (mut batch, mut batch_len, mut read) = (Vec::new(), 0, 0u64);
    loop {
        let piece = bytes.next().await.transpose()?;
        if let Some(piece) = piece.as_ref() {
            read += piece.len() as u64;
            batch_len += piece.len();
            batch.push(piece.clone());
        }
        if batch_len >= BATCH_BYTES || (piece.is_none() && !batch.is_empty()) {
            let pieces = std::mem::take(&mut batch);
            chunks = spawn_blocking(move || {
                pieces.iter().for_each(|piece| chunks.update(piece));
                chunks
            })
            .await
            .expect("hashing does not panic");
            batch_len = 0;
        }
        if piece.is_none() {
            break;
        }
    }
    // (a top-hash exists only over 16 MiB: the callers never ask below)
    let top = chunks.finish(total).filter(|_| read == total);
    top.ok_or_else(|| StoreError::Io(std::io::Error::other(format!("read {read} bytes of {total} to hash"))))
}
