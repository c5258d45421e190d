//! The one upload pipeline every API family uses (DESIGN.md "The core"):
//!
//! ```text
//! body → receive: one read; SHA-256 (+ chunked top-hash when needed) and the staging write
//!                 run side by side on blocking threads while the next batch arrives
//!      → verify:  bound size/hash, or the staged copy is discarded (400 hash_mismatch)
//!      → commit:  staged bytes move to their content address and the blob row + the
//!                 uploader's hold are recorded together (see `Catalog::commit_blob`)
//! ```
//! Memory per upload is at most two batches, whatever the body size.

pub mod direct;
pub mod multipart;
mod read_back;
mod receive;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::Notify;

use crate::blob_store::{BlobStore, ByteStream, Placed, Staged, StagingArea, StoreError};
use crate::catalog::{BlobRecord, BlobStep, Catalog, CatalogError};
use crate::domain::{Sha256Hex, UserId};

/// What the uploader promised about the bytes, and the limits that apply.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// Exact size bound by a signature or grant; other sizes are a `hash_mismatch`.
    pub size: Option<u64>,
    /// Hash bound by a signature or grant.
    pub hash: Option<ExpectedHash>,
    /// Largest body accepted; one byte more stops the upload with `TooLarge`.
    pub max_size: Option<u64>,
    /// Length announced by the transport (Content-Length): picks the chunk plan up front.
    pub size_hint: Option<u64>,
}

/// Which hash a client bound: the plain SHA-256, or the device family's `file_hash`
/// (the chunked top-hash for files over 16 MiB, the plain SHA-256 below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedHash {
    Sha256(Sha256Hex),
    Device(Sha256Hex),
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    HashMismatch(String),
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Bytes received, hashed and verified, waiting in staging to be committed or discarded.
#[derive(Debug)]
pub struct Received {
    pub staged: Staged,
    pub blob: BlobRecord,
    /// The first bytes of the body (up to 512), for magic-number sniffing.
    pub head: Vec<u8>,
}

/// A committed upload.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub blob: BlobRecord,
    pub placed: Placed,
    pub head: Vec<u8>,
}

impl Ingested {
    /// The hash device clients use for this content (API.md §1 `file_hash`).
    pub fn device_hash(&self) -> &Sha256Hex {
        self.blob.chunked_hash.as_ref().unwrap_or(&self.blob.sha256)
    }
}

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn BlobStore>,
    catalog: Arc<dyn Catalog>,
    /// Woken when new content is committed (its media job was queued with it).
    wake: Option<Arc<Notify>>,
}

impl Ingest {
    pub fn new(store: Arc<dyn BlobStore>, catalog: Arc<dyn Catalog>) -> Self {
        Self { store, catalog, wake: None }
    }

    /// Wakes `wake` (the job runner) whenever a commit stores new content.
    pub fn waking(self, wake: Arc<Notify>) -> Self {
        Self { wake: Some(wake), ..self }
    }

    /// Receives, verifies and commits a body in one go, giving `holder` a hold on it.
    pub async fn ingest<S, E>(&self, body: S, expect: &Expectation, holder: UserId) -> Result<Ingested, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let received = self.receive(body, expect).await?;
        self.commit(received, holder).await
    }

    /// Streams `body` into request staging, hashing it on the way, and verifies it against
    /// `expect`. On any error the staged bytes are gone.
    pub async fn receive<S, E>(&self, body: S, expect: &Expectation) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.receive_into(StagingArea::Request, body, expect).await
    }

    /// Receives one part of a multipart upload into upload staging (kept across restarts).
    pub async fn receive_part<S, E>(&self, body: S, expect: &Expectation) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.receive_into(StagingArea::Upload, body, expect).await
    }

    /// Streams staged parts, in order, through the pipeline as one body: the one second
    /// pass over upload bytes we allow (parts may arrive in any order).
    pub async fn assemble(&self, parts: &[Staged], expect: &Expectation) -> Result<Received, IngestError> {
        // unfold keeps one part's stream open at a time, in order
        let state = (self.store.clone(), parts.iter().cloned(), None::<ByteStream>);
        let body = futures_util::stream::unfold(state, |(store, mut rest, mut current)| async move {
            loop {
                if let Some(stream) = current.as_mut()
                    && let Some(piece) = stream.next().await
                {
                    return Some((piece, (store, rest, current)));
                }
                let part = rest.next()?;
                current = match store.read_staged(&part).await {
                    Ok(stream) => Some(stream),
                    Err(e) => return Some((Err(std::io::Error::other(e)), (store, rest, None))),
                };
            }
        });
        self.receive(Box::pin(body), expect).await
    }

    /// Verifies an object a client put straight into staging (direct-to-store uploads) by
    /// reading it back once through the same hashing as [`Ingest::receive`]; on any
    /// mismatch the object is discarded and nothing is recorded.
    pub async fn verify_staged(&self, staged: Staged, expect: &Expectation) -> Result<Received, IngestError> {
        let key = staged.clone();
        let checked = match read_back::read_back(self.store.as_ref(), staged, expect).await {
            Ok(received) => receive::verify(&received.blob, expect).map(|()| received),
            Err(IngestError::HashMismatch(mismatch)) => Err(mismatch),
            Err(other) => return Err(other),
        };
        match checked {
            Ok(received) => Ok(received),
            Err(mismatch) => {
                self.store.discard(&key).await?;
                Err(IngestError::HashMismatch(mismatch))
            }
        }
    }

    /// Discards staged objects (parts after completion, abort or expiry).
    pub async fn discard_staged(&self, staged: &[Staged]) -> Result<(), IngestError> {
        for object in staged {
            self.store.discard(object).await?;
        }
        Ok(())
    }

    async fn receive_into<S, E>(
        &self,
        area: StagingArea,
        body: S,
        expect: &Expectation,
    ) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let received = receive::receive(self.store.as_ref(), area, body, expect).await?;
        if let Err(mismatch) = receive::verify(&received.blob, expect) {
            self.store.discard(&received.staged).await?;
            return Err(IngestError::HashMismatch(mismatch));
        }
        Ok(received)
    }

    /// Moves received bytes to their content address and records the blob and `holder`'s
    /// hold in one catalog step. If the content is already stored, the staged copy is dropped.
    pub async fn commit(&self, received: Received, holder: UserId) -> Result<Ingested, IngestError> {
        let placed = Arc::new(OnceLock::new());
        let step: BlobStep = {
            let (store, staged, sha256, placed) =
                (self.store.clone(), received.staged.clone(), received.blob.sha256.clone(), placed.clone());
            Box::new(move || {
                Box::pin(async move {
                    let outcome = store.commit(&staged, &sha256).await?;
                    let _ = placed.set(outcome);
                    Ok(())
                })
            })
        };
        if let Err(err) = self.catalog.commit_blob(&received.blob, holder, step).await {
            // The staged copy may already be gone (moved or dropped); discarding is idempotent.
            let _ = self.store.discard(&received.staged).await;
            return Err(err.into());
        }
        let placed = placed.get().copied().unwrap_or(Placed::AlreadyPresent);
        if let (Placed::Stored, Some(wake)) = (placed, &self.wake) {
            wake.notify_one();
        }
        Ok(Ingested { blob: received.blob, placed, head: received.head })
    }

    /// Drops received bytes that will not be committed (a later check refused them).
    pub async fn discard(&self, received: Received) -> Result<(), IngestError> {
        Ok(self.store.discard(&received.staged).await?)
    }
}
