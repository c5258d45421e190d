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

mod device_hash;
pub mod direct;
mod expectation;
mod in_place;
pub mod multipart;
mod pump;
mod read_back;
mod receive;
mod renditions;
mod staged;

// the resumable (tus) service appends with the same stages, request by request
pub use device_hash::top_hash_of;
pub use expectation::{BodyIdle, Expectation, ExpectedHash, IngestError, Mismatch};
pub use in_place::HashedInPlace;
pub(crate) use pump::{Checksum, Hashers, Pump};
use receive::Destination;
pub(crate) use receive::{Hold, next_batch};
use staged::{Owner, StagedUpload};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::Notify;

use crate::blob_store::{BlobStore, ByteStream, Placed, Staged, StagingArea};
use crate::catalog::{BlobRecord, BlobStep, ByteDeleter, Catalog, CatalogError};
use crate::domain::{Sha256Hex, UserId};

/// Bytes received, hashed and verified, waiting in staging to be committed. Dropped without
/// being committed (a later check refused them, the request failed), the staging object is
/// removed: no error path has to remember to.
#[derive(Debug)]
pub struct Received {
    staged: StagedUpload,
    pub blob: BlobRecord,
    /// The first bytes of the body (up to 512), for magic-number sniffing.
    pub head: Vec<u8>,
    /// This arrival asks for no playable rendition (a session's `no_transcode`).
    waive_rendition: bool,
}

impl Received {
    /// Commits without queueing a rendition for this arrival: the content gets one only if
    /// it arrives again through a path that does not waive it.
    pub fn waiving_rendition(self) -> Self {
        Self { waive_rendition: true, ..self }
    }

    pub fn staged(&self) -> &Staged {
        self.staged.staged.as_ref().expect("armed until kept or committed")
    }

    /// Keeps the staging object past this value (a part the catalog now records).
    pub fn keep(mut self) -> Staged {
        self.staged.staged.take().expect("armed until kept or committed")
    }
}

/// What the receiving stages produce, before the staging object is guarded.
pub(crate) struct Raw {
    staged: Staged,
    blob: BlobRecord,
    head: Vec<u8>,
}

/// A committed upload.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub blob: BlobRecord,
    pub placed: Placed,
    pub head: Vec<u8>,
}

impl Ingested {
    /// The hash device clients use for this content (API.md §1 `file_hash`), when known.
    pub fn device_hash(&self) -> Option<&Sha256Hex> {
        self.blob.device_hash()
    }
}

/// How long a body may send nothing unless configured (`FERRY_BODY_IDLE_TIMEOUT`).
const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn BlobStore>,
    catalog: Arc<dyn Catalog>,
    /// Woken when new content is committed (its media job was queued with it).
    wake: Option<Arc<Notify>>,
    /// Uploads finished and failed, bytes received and deduplicated, by family.
    metrics: Arc<crate::metrics::Metrics>,
    /// How long a body may send nothing before it is refused.
    body_idle: Duration,
    /// Commits of videos and HEIF photos queue their `transcode` job (FERRY_TRANSCODE is not off).
    renditions: bool,
}

impl Ingest {
    /// Refuses (`QuotaExceeded`) an upload of `size` bytes the account's quota has no room
    /// for, before its bytes are sent; the commit checks again, atomically.
    pub async fn check_quota(&self, user: UserId, size: u64) -> Result<(), IngestError> {
        match self.catalog.quota_room(user).await? {
            Some(room) if i64::try_from(size).map_or(true, |size| size > room) => {
                Err(CatalogError::QuotaExceeded(format!("the account's quota has room for {} more bytes", room.max(0)))
                    .into())
            }
            _ => Ok(()),
        }
    }

    /// The store and catalog the pipeline writes to (services built on it use the same).
    pub fn parts(&self) -> (Arc<dyn BlobStore>, Arc<dyn Catalog>) {
        (self.store.clone(), self.catalog.clone())
    }

    pub fn new(store: Arc<dyn BlobStore>, catalog: Arc<dyn Catalog>) -> Self {
        Self { store, catalog, wake: None, metrics: Arc::default(), body_idle: DEFAULT_BODY_IDLE, renditions: false }
    }

    /// Queues a `transcode` job for each arrival of a video or HEIF photo that does not waive it.
    pub fn queuing_renditions(self, renditions: bool) -> Self {
        Self { renditions, ..self }
    }

    /// Refuses bodies that send nothing for `idle` (`FERRY_BODY_IDLE_TIMEOUT`).
    pub fn idle_after(self, idle: Duration) -> Self {
        Self { body_idle: idle, ..self }
    }

    /// How long a body may send nothing (a tus PATCH is held to it too).
    pub fn body_idle(&self) -> Duration {
        self.body_idle
    }

    /// Wakes `wake` (the job runner) whenever a commit stores new content.
    pub fn waking(self, wake: Arc<Notify>) -> Self {
        Self { wake: Some(wake), ..self }
    }

    /// What the pipeline counts into (services that end uploads count there too).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Counts its uploads into `metrics`.
    pub fn counting(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// Receives, verifies and commits a body in one go, giving `holder` a hold on it.
    pub async fn ingest<S, E>(&self, body: S, expect: &Expectation, holder: UserId) -> Result<Ingested, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        let received = self.receive(body, expect).await?;
        self.commit(received, holder).await
    }

    /// Streams `body` into request staging, hashing it on the way, and verifies it against
    /// `expect`. On any error the staged bytes are gone.
    pub async fn receive<S, E>(&self, body: S, expect: &Expectation) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        self.receive_into(Destination::Staging(StagingArea::Request), body, expect, true).await
    }

    /// Receives one part of a multipart upload into upload staging (kept across restarts).
    pub async fn receive_part<S, E>(&self, body: S, expect: &Expectation) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        self.receive_into(Destination::Staging(StagingArea::Upload), body, expect, true).await
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
        // the server reading its own staging again: not a client's upload body
        self.receive_into(Destination::Staging(StagingArea::Request), Box::pin(body), expect, false).await
    }

    /// Verifies an object a client put straight into staging (direct-to-store uploads) by
    /// reading it back once through the same hashing as [`Ingest::receive`]; on any
    /// mismatch the object is discarded and nothing is recorded.
    pub async fn verify_staged(&self, staged: Staged, expect: &Expectation) -> Result<Received, IngestError> {
        let key = staged.clone();
        let checked = match read_back::read_back(self.store.as_ref(), staged, expect).await {
            Ok(raw) => receive::verify(&raw.blob, expect).map(|()| self.guard(raw, Owner::Request)),
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

    fn guard(&self, raw: Raw, owner: Owner) -> Received {
        let staged = StagedUpload { store: self.store.clone(), staged: Some(raw.staged), owner };
        Received { staged, blob: raw.blob, head: raw.head, waive_rendition: false }
    }

    /// Bytes received over several requests (a finished resumable upload), hashed as they
    /// came: committed like any [`Received`], but dropped uncommitted they stay, since the
    /// upload that names them may commit them again later.
    pub(crate) fn resumed(&self, staged: Staged, blob: BlobRecord, head: Vec<u8>) -> Received {
        let staged = StagedUpload { store: self.store.clone(), staged: Some(staged), owner: Owner::Elsewhere };
        Received { staged, blob, head, waive_rendition: false }
    }

    /// Content already at its address (a resumable upload whose commit went through before
    /// its filing failed): committing it checks the bytes are there and records nothing new
    /// but the hold.
    pub(crate) fn already_stored(&self, blob: BlobRecord, head: Vec<u8>) -> Received {
        let staged = StagedUpload { store: self.store.clone(), staged: None, owner: Owner::Elsewhere };
        Received { staged, blob, head, waive_rendition: false }
    }

    /// Discards staged objects (parts after completion, abort or expiry).
    pub async fn discard_staged(&self, staged: &[Staged]) -> Result<(), IngestError> {
        for object in staged {
            self.store.discard(object).await?;
        }
        Ok(())
    }

    /// `client_body`: counted as an upload body arriving (`/metrics`); else the server reading
    /// its own staging, counted only when it fails.
    async fn receive_into<S, E>(
        &self,
        destination: Destination,
        body: S,
        expect: &Expectation,
        client_body: bool,
    ) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        let arriving = client_body.then(|| self.metrics.upload_started());
        let outcome = async {
            let owner = match destination {
                Destination::Staging(_) => Owner::Request,
                Destination::InPlace { .. } => Owner::InPlace,
            };
            let raw = receive::receive(self.store.as_ref(), destination, body, expect, self.body_idle).await?;
            let verified = receive::verify(&raw.blob, expect);
            let received = self.guard(raw, owner);
            verified.map_err(IngestError::HashMismatch)?;
            Ok(received)
        }
        .await;
        match (&outcome, arriving) {
            (Ok(_), Some(arriving)) => arriving.received(),
            (Err(_), None) => self.metrics.upload_failed(),
            // a client body that failed: its guard counts it as it goes
            _ => {}
        }
        outcome
    }

    /// Moves received bytes to their content address and records the blob and `holder`'s
    /// hold in one catalog step. If the content is already stored, the staged copy is dropped.
    /// A holder over its quota is refused (`QuotaExceeded`) and nothing is kept.
    pub async fn commit(&self, received: Received, holder: UserId) -> Result<Ingested, IngestError> {
        self.commit_for(received, Some(holder)).await
    }

    /// Commits content no account holds: what uses it (a gallery event, for a client's
    /// thumbnail) keeps it, and it counts towards no quota.
    pub async fn commit_unheld(&self, received: Received) -> Result<Ingested, IngestError> {
        self.commit_for(received, None).await
    }

    async fn commit_for(&self, received: Received, holder: Option<UserId>) -> Result<Ingested, IngestError> {
        let (step, placed) = self.placement(&received);
        // on failure the staged copy goes with `received` (it may be gone already, moved)
        let outcome = self.catalog.commit_blob(&received.blob, holder, step).await;
        match &outcome {
            Ok(()) => {
                let already = placed.get().is_none_or(|p| *p == Placed::AlreadyPresent);
                self.metrics.upload_finished(received.blob.size, already);
            }
            Err(_) => self.metrics.upload_failed(),
        }
        match outcome {
            Ok(()) => {
                self.queue_rendition(&received).await;
                Ok(self.settle(received, &placed))
            }
            Err(CatalogError::QuotaExceeded(why)) => {
                // refused after the bytes moved (another upload of the account got there
                // first): they go now, unless someone else recorded the content meanwhile
                let store = self.store.clone();
                let delete: ByteDeleter = Arc::new(move |sha256| {
                    let store = store.clone();
                    Box::pin(async move { store.delete(&sha256).await.map_err(Into::into) })
                });
                if let Err(e) = self.catalog.resolve_intents_of(&received.blob.sha256, delete).await {
                    tracing::warn!(error = %e, "the bytes of an upload over its quota stay until the intent sweep");
                }
                Err(CatalogError::QuotaExceeded(why).into())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The byte step of committing `received` (move the staged copy to its content address),
    /// for a catalog step that records it: an upload's commit, or a thumbnail recorded with
    /// its media result. The slot says, once the step ran, whether the bytes were new.
    pub fn placement(&self, received: &Received) -> (BlobStep, Arc<OnceLock<Placed>>) {
        let placed = Arc::new(OnceLock::new());
        let (store, staged, sha256, slot) =
            (self.store.clone(), received.staged.staged.clone(), received.blob.sha256.clone(), placed.clone());
        let (size, link) = (received.blob.size, received.staged.owner == Owner::InPlace);
        let step: BlobStep = Box::new(move || {
            Box::pin(async move {
                let outcome = match staged {
                    Some(staged) if link => store.link_staged(&staged, &sha256).await?,
                    Some(staged) => store.commit(&staged, &sha256).await?,
                    // already stored: the bytes must still be there, whole
                    None if store.size_of(&sha256).await? == Some(size) => Placed::AlreadyPresent,
                    None => return Err(format!("blob {sha256} is not stored (or not whole)").into()),
                };
                let _ = slot.set(outcome);
                Ok(())
            })
        });
        (step, placed)
    }

    /// After a successful catalog step: the staging object is gone (moved or dropped), and
    /// the job runner is woken when new content queued its media job.
    pub fn settle(&self, mut received: Received, placed: &OnceLock<Placed>) -> Ingested {
        received.staged.staged = None;
        let placed = placed.get().copied().unwrap_or(Placed::AlreadyPresent);
        if let (Placed::Stored, Some(wake)) = (placed, &self.wake) {
            wake.notify_one();
        }
        Ingested { blob: received.blob.clone(), placed, head: std::mem::take(&mut received.head) }
    }
}
