//! Receiving a body: batching, limits, hashing and the staging write, all in one read.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::pump::{Hashers, Pump};
use super::{BodyIdle, Expectation, ExpectedHash, IngestError, Mismatch, Raw};
use crate::blob_store::{BlobStore, StagingArea, StagingWriter};
use crate::catalog::BlobRecord;
use crate::domain::{ChunkHasher, Sha256Hex, chunk_size_for};

/// Bytes gathered before a batch is handed to the hashing and writing threads: large
/// enough that per-batch costs vanish, small enough that memory per upload stays low.
const BATCH_BYTES: usize = 1024 * 1024;
/// A batch is handed on after this long even when not full, so a slow client (a phone on a
/// weak link, a trickling dashcam) never has more than this much of its body in memory.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Where received bytes are written.
#[derive(Debug, Clone)]
pub(super) enum Destination {
    /// A new staging object of its own.
    Staging(StagingArea),
    /// At `offset` of the upload-staging object `key` (a part written in place); `hold` is
    /// kept until the last write has ended (see [`HeldWriter`]).
    InPlace { key: String, offset: u64, hold: Hold },
}

/// What a part written in place holds while its bytes may still reach the file (its locks).
pub type Hold = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// A writer that keeps `hold` as long as it lives. The pipeline writes on tasks of their own,
/// which go on after a request is cancelled: the locks a part is written under must last
/// until its last write has landed, not only as long as the request.
struct HeldWriter {
    inner: Box<dyn StagingWriter>,
    _hold: Hold,
}

#[async_trait::async_trait]
impl StagingWriter for HeldWriter {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), crate::blob_store::StoreError> {
        self.inner.write(batch).await
    }

    async fn finish(self: Box<Self>) -> Result<crate::blob_store::Staged, crate::blob_store::StoreError> {
        self.inner.finish().await
    }
}

pub(super) async fn receive<S, E>(
    store: &dyn BlobStore,
    destination: Destination,
    body: S,
    expect: &Expectation,
    idle: std::time::Duration,
) -> Result<Raw, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::error::Error + 'static,
{
    // some streams panic when polled after their end; the batching loop may poll once more
    let mut body = body.fuse();
    let announced = expect.size.or(expect.size_hint);
    let needs_chunks = expect.needs_device_hash() && announced.is_none_or(|size| chunk_size_for(size) > 0);
    let hashers = Hashers {
        whole: Some(Sha256::new()),
        // only where a device bound its top-hash and the file may exceed 16 MiB
        chunks: needs_chunks.then(|| ChunkHasher::new(announced)),
        checksum: None,
    };
    let writer = match destination {
        Destination::Staging(area) => store.stage(area).await?,
        Destination::InPlace { key, offset, hold } => {
            Box::new(HeldWriter { inner: store.write_in_place(&key, offset).await?, _hold: hold })
        }
    };
    let mut pump = Pump::new(writer, hashers, Vec::new());
    let mut total: u64 = 0;
    let fed = async {
        loop {
            // Gathering the next batch overlaps with the stages working on the previous ones.
            let batch = next_batch(&mut body, &mut total, expect, idle).await?;
            if batch.is_empty() {
                return Ok(());
            }
            pump.feed(batch).await?;
        }
    }
    .await;
    if let Err(failed) = fed {
        // when the body fails, every stage stops before the answer, so the staging writer is
        // gone (and its partial file removed) by the time the client hears of it
        let _ = pump.settle().await;
        drop(pump);
        return Err(failed);
    }
    let head = std::mem::take(&mut pump.head);
    let (writer, hashers) = pump.finish().await?;
    let (whole, chunks) = (hashers.whole.expect("hashed"), hashers.chunks);
    let staged = writer.finish().await?;
    let sha256 = Sha256Hex::from_digest(&whole.finalize());
    let chunked_hash = match chunks.and_then(|c| c.finish(total)) {
        Some(top) => Some(top),
        // the one second pass outside multipart assembly: a body of unannounced length over
        // 7.5 GB needs a larger chunk size than the one hashed while it streamed in
        None if needs_chunks && chunk_size_for(total) > 0 => match rehash_chunks(store, &staged, total).await {
            Ok(top) => Some(top),
            Err(e) => {
                // finished staging is no longer removed on drop
                let _ = store.discard(&staged).await;
                return Err(e);
            }
        },
        None => None,
    };
    Ok(Raw { staged, blob: BlobRecord { sha256, size: total, chunked_hash }, head })
}

async fn rehash_chunks(
    store: &dyn BlobStore,
    staged: &crate::blob_store::Staged,
    total: u64,
) -> Result<Sha256Hex, IngestError> {
    Ok(super::device_hash::top_hash_of(store.read_staged(staged).await?, total).await?)
}

pub(crate) async fn next_batch<S, E>(
    body: &mut S,
    total: &mut u64,
    expect: &Expectation,
    idle: std::time::Duration,
) -> Result<Vec<Bytes>, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::error::Error + 'static,
{
    let mut batch = Vec::new();
    let mut len = 0;
    let mut deadline = None;
    while len < BATCH_BYTES {
        let next = match deadline {
            // a body that sends nothing is held to `idle`: a stalled client cannot keep its
            // connection, task and staging file forever (slow-body clients)
            None => match tokio::time::timeout(idle, body.next()).await {
                Ok(next) => next,
                Err(_) => return Err(IngestError::Idle(idle)),
            },
            Some(deadline) => match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some(piece) = next else {
            break;
        };
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + BATCH_WAIT);
        let piece = piece.map_err(|e| match BodyIdle::behind(&e) {
            // the outer guard noticed first (this reader was busy when the client stopped)
            Some(BodyIdle(idle)) => IngestError::Idle(idle),
            None => IngestError::Body(e.to_string()),
        })?;
        *total += piece.len() as u64;
        if let Some(limit) = expect.max_size.filter(|limit| *total > *limit) {
            return Err(IngestError::TooLarge { limit });
        }
        if let Some(size) = expect.size.filter(|size| *total > *size) {
            return Err(IngestError::HashMismatch(Mismatch::Longer { bound: size }));
        }
        len += piece.len();
        if !piece.is_empty() {
            batch.push(piece);
        }
    }
    Ok(batch)
}

/// Checks received content against what the uploader bound; the message explains a mismatch.
pub(super) fn verify(blob: &BlobRecord, expect: &Expectation) -> Result<(), Mismatch> {
    if let Some(bound) = expect.size.filter(|size| *size != blob.size) {
        return Err(Mismatch::Size { received: blob.size, bound });
    }
    let (expected, actual, what) = match &expect.hash {
        None => return Ok(()),
        Some(ExpectedHash::Sha256(h)) => (h, &blob.sha256, "SHA-256"),
        // hashed while the bytes streamed in (`Expectation::needs_device_hash`)
        Some(ExpectedHash::Device(h)) => (h, blob.device_hash().unwrap_or(&blob.sha256), "file hash"),
    };
    if expected != actual {
        return Err(Mismatch::Hash { what, actual: actual.clone(), expected: expected.clone() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trickling_body_is_handed_on_without_waiting_for_a_full_batch() {
        let (send, receive) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let mut body = tokio_stream_of(receive);
        send.send(Ok(Bytes::from_static(b"first bytes"))).await.unwrap();
        let mut total = 0;
        // the sender stays open: without the batch deadline this would wait for 1 MiB forever
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            next_batch(&mut body, &mut total, &Expectation::default(), std::time::Duration::from_secs(30)).await
        })
        .await
        .expect("a partial batch is handed on")
        .unwrap();
        assert_eq!((batch, total), (vec![Bytes::from_static(b"first bytes")], 11));
        drop(send);
        let idle = std::time::Duration::from_secs(30);
        assert!(next_batch(&mut body, &mut total, &Expectation::default(), idle).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stall_the_request_guard_noticed_first_is_answered_as_one() {
        // what the HTTP layer's guard ends a silent body with (see `http::body_idle`)
        let stalled = axum::Error::new(BodyIdle(std::time::Duration::from_secs(31)));
        let mut body = futures_util::stream::iter([Err::<Bytes, _>(stalled)]);
        let idle = std::time::Duration::from_secs(30);
        let answer = next_batch(&mut body, &mut 0, &Expectation::default(), idle).await;
        assert!(matches!(answer, Err(IngestError::Idle(idle)) if idle.as_secs() == 31), "{answer:?}");
    }

    fn tokio_stream_of<T: Send + 'static>(
        mut receive: tokio::sync::mpsc::Receiver<T>,
    ) -> impl Stream<Item = T> + Send + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| receive.poll_recv(cx)))
    }
}
