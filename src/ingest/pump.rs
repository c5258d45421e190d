//! The pump under every upload: batches of a body go to the staging write and to each hash,
//! one stage per consumer, and each stage takes the next batch as soon as it has finished the
//! previous one, whatever the others are doing (a slow write does not hold the hashes back,
//! nor the other way round). Hashing runs on blocking threads.

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::spawn_blocking;

use super::IngestError;
use crate::blob_store::{ResumableWriter, StagingWriter, StoreError};
use crate::domain::{ChecksumAlgorithm, ChunkHasher};

/// The first bytes of a file kept for magic-number sniffing.
pub(crate) const HEAD_BYTES: usize = 512;

/// Where a pump writes: a staging object, or a resumable one.
#[async_trait]
pub(crate) trait BatchWriter: Send + 'static {
    async fn write_batch(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError>;
}

#[async_trait]
impl BatchWriter for Box<dyn StagingWriter> {
    async fn write_batch(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        self.write(batch).await
    }
}

#[async_trait]
impl BatchWriter for Box<dyn ResumableWriter> {
    async fn write_batch(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        self.write(batch).await
    }
}

/// A tus `Upload-Checksum` being computed over one request's body.
pub(crate) enum Checksum {
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

impl Checksum {
    pub(crate) fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Checksum::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Checksum::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, piece: &[u8]) {
        match self {
            Checksum::Sha1(h) => Digest::update(h, piece),
            Checksum::Sha256(h) => Digest::update(h, piece),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Checksum::Sha1(h) => h.finalize().to_vec(),
            Checksum::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The hashes a pump computes, each optional.
#[derive(Default)]
pub(crate) struct Hashers {
    /// The content key.
    pub whole: Option<Sha256>,
    /// The device family's chunked top-hash.
    pub chunks: Option<ChunkHasher>,
    /// A per-request checksum (tus).
    pub checksum: Option<Checksum>,
}

/// One step of the pipeline (the staging write, or one hash) with its own state.
struct Stage<T> {
    idle: Option<T>,
    busy: Option<tokio::task::JoinHandle<(T, Result<(), IngestError>)>>,
}

impl<T: Send + 'static> Stage<T> {
    fn new(state: T) -> Self {
        Self { idle: Some(state), busy: None }
    }

    /// Waits for the batch in progress; its error, if any, is returned (the state is back).
    async fn settle(&mut self) -> Result<(), IngestError> {
        if let Some(task) = self.busy.take() {
            let (state, result) = task.await.map_err(|e| IngestError::Body(e.to_string()))?;
            self.idle = Some(state);
            result?;
        }
        Ok(())
    }

    /// Hands `batch` to the stage once its previous batch is done.
    async fn feed<F, Fut>(&mut self, batch: Vec<Bytes>, work: F) -> Result<(), IngestError>
    where
        F: FnOnce(T, Vec<Bytes>) -> Fut,
        Fut: Future<Output = (T, Result<(), IngestError>)> + Send + 'static,
    {
        self.settle().await?;
        let state = self.idle.take().expect("a settled stage has its state");
        self.busy = Some(tokio::spawn(work(state, batch)));
        Ok(())
    }

    fn get(&self) -> Option<&T> {
        self.idle.as_ref()
    }

    fn get_mut(&mut self) -> Option<&mut T> {
        self.idle.as_mut()
    }

    fn take(mut self) -> T {
        self.idle.take().expect("a settled stage has its state")
    }
}

/// Feeds a batch to a hashing stage: hashing runs on a blocking thread.
async fn hash_batch<H: Send + 'static>(
    stage: &mut Stage<H>,
    batch: Vec<Bytes>,
    update: fn(&mut H, &[u8]),
) -> Result<(), IngestError> {
    stage
        .feed(batch, move |mut hasher, batch| async move {
            let hasher = spawn_blocking(move || {
                for piece in &batch {
                    update(&mut hasher, piece);
                }
                hasher
            })
            .await
            .expect("hashing does not panic");
            (hasher, Ok(()))
        })
        .await
}

/// A writer and hashers fed batch by batch, with the count of bytes fed and the first
/// [`HEAD_BYTES`] of the file.
pub(crate) struct Pump<W> {
    writer: Stage<W>,
    whole: Option<Stage<Sha256>>,
    chunks: Option<Stage<ChunkHasher>>,
    checksum: Option<Stage<Checksum>>,
    /// Bytes fed.
    pub fed: u64,
    /// The file's first bytes (continued from what earlier requests saw).
    pub head: Vec<u8>,
}

impl<W: BatchWriter> Pump<W> {
    pub(crate) fn new(writer: W, hashers: Hashers, head: Vec<u8>) -> Self {
        Self {
            writer: Stage::new(writer),
            whole: hashers.whole.map(Stage::new),
            chunks: hashers.chunks.map(Stage::new),
            checksum: hashers.checksum.map(Stage::new),
            fed: 0,
            head,
        }
    }

    /// Hands a (non-empty) batch to every stage.
    pub(crate) async fn feed(&mut self, batch: Vec<Bytes>) -> Result<(), IngestError> {
        if self.head.len() < HEAD_BYTES {
            for piece in &batch {
                let room = HEAD_BYTES - self.head.len();
                self.head.extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
        self.fed += batch.iter().map(|b| b.len() as u64).sum::<u64>();
        self.writer
            .feed(batch.clone(), |mut w: W, batch| async move {
                let written = w.write_batch(batch).await.map_err(IngestError::from);
                (w, written)
            })
            .await?;
        if let Some(chunks) = self.chunks.as_mut() {
            hash_batch(chunks, batch.clone(), |h, piece| h.update(piece)).await?;
        }
        if let Some(checksum) = self.checksum.as_mut() {
            hash_batch(checksum, batch.clone(), |h, piece| h.update(piece)).await?;
        }
        if let Some(whole) = self.whole.as_mut() {
            hash_batch(whole, batch, |h, piece| Digest::update(h, piece)).await?;
        }
        Ok(())
    }

    /// Waits until every stage has taken in all it was fed; the first error is returned,
    /// after all of them have stopped (a failed write leaves nothing running).
    pub(crate) async fn settle(&mut self) -> Result<(), IngestError> {
        let written = self.writer.settle().await;
        let mut hashed = Ok(());
        if let Some(stage) = self.whole.as_mut() {
            hashed = hashed.and(stage.settle().await);
        }
        if let Some(stage) = self.chunks.as_mut() {
            hashed = hashed.and(stage.settle().await);
        }
        if let Some(stage) = self.checksum.as_mut() {
            hashed = hashed.and(stage.settle().await);
        }
        written.and(hashed)
    }

    /// The writer, between batches (after [`Pump::settle`]).
    pub(crate) fn writer(&mut self) -> &mut W {
        self.writer.get_mut().expect("settled")
    }

    /// The whole-file and chunk hashers as they stand (after [`Pump::settle`]).
    pub(crate) fn hashes(&self) -> (Option<&Sha256>, Option<&ChunkHasher>) {
        (self.whole.as_ref().and_then(Stage::get), self.chunks.as_ref().and_then(Stage::get))
    }

    /// Settles and gives the writer and hashers back.
    pub(crate) async fn finish(mut self) -> Result<(W, Hashers), IngestError> {
        self.settle().await?;
        let hashers = Hashers {
            whole: self.whole.map(Stage::take),
            chunks: self.chunks.map(Stage::take),
            checksum: self.checksum.map(Stage::take),
        };
        Ok((self.writer.take(), hashers))
    }
}
