//! A PATCH: lease the upload, append the body to its staging while the hashes (restored
//! from the catalog) and any `Upload-Checksum` run over it in the same pass, and record the
//! new offset with the new staging and hash state — at 64 MiB checkpoints, at the end, and
//! when the body breaks off. A body whose checksum is to be checked is recorded only whole
//! and only when it matches. The PATCH that reaches the length completes the upload
//! (`finish`).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::hash_state::HashState;
use super::lease::{LEASE, Lease, new_token};
use super::{Leased, PatchRequest, ResumableUploads, Status, TusError, unusable};
use crate::blob_store::{Resumable, ResumableWriter};
use crate::catalog::{BlobRecord, LeaseTerms, TusConcat, TusProgress, TusState, TusUpload};
use crate::domain::{Sha256Hex, UserId};
use crate::ingest::{Checksum, Expectation, Hashers, IngestError, Mismatch, Pump, next_batch};

/// A long PATCH records its progress every this many bytes, so a crash of the server
/// costs the client at most this much again.
const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

impl ResumableUploads {
    /// Appends `body` to the user's upload at `req.offset` (see the module docs); returns
    /// where the upload stands after it.
    #[tracing::instrument(skip_all, fields(upload = %id, offset = req.offset))]
    pub async fn patch<S, E>(&self, user: UserId, id: &str, req: PatchRequest, body: S) -> Result<Status, TusError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        if req.length.is_some_and(|l| l > self.max_size) {
            return Err(TusError::TooLarge { limit: self.max_size });
        }
        let token = new_token();
        let terms = LeaseTerms { offset: Some(req.offset), length: req.length, lease: LEASE };
        let upload = match self.lease(user, id, &token, terms).await? {
            Leased::Held(upload) => upload,
            Leased::Complete(upload) => return Ok(Status::of(&upload)),
        };
        let lease = Lease::hold(self.catalog.clone(), vec![upload.id.clone()], token);
        let outcome = self.patch_leased(&lease, upload, req, body).await;
        lease.release().await;
        outcome
    }

    async fn patch_leased<S, E>(
        &self,
        lease: &Lease,
        upload: TusUpload,
        req: PatchRequest,
        body: S,
    ) -> Result<Status, TusError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        if upload.state == TusState::Received {
            // every byte is in; its commit failed before: this request makes it
            return self.commit_received(lease, upload).await;
        }
        let partial = upload.concat == Some(TusConcat::Partial);
        let hashers = match (&upload.hash_state, partial) {
            // partial uploads are hashed when a final upload reads them
            (_, true) => Hashers::default(),
            (Some(state), false) => {
                let restored = HashState::decode(state).map_err(|e| unusable(&e.0))?;
                Hashers { whole: Some(restored.whole), chunks: restored.chunks, checksum: None }
            }
            (None, false) => return Err(unusable("no hash state")),
        };
        let checksum = req.checksum.clone();
        let hashers = Hashers { checksum: checksum.as_ref().map(|c| Checksum::new(c.algorithm)), ..hashers };
        let mut recorded =
            Resumable { key: upload.staging_key.clone(), size: upload.offset, state: upload.staging_state.clone() };
        let writer = self.store.append_resumable(&recorded).await?;
        let mut pump = Pump::new(writer, hashers, upload.head.clone());
        // the room left: up to the length, or (deferred) up to the limit
        let room = upload.length.unwrap_or(self.max_size) - upload.offset;
        let expect = Expectation { max_size: Some(room), ..Expectation::default() };
        let arriving = self.ingest.metrics().upload_started();
        // fused: the batching loop may poll once more after the end
        let mut body = body.fuse();
        let idle = self.ingest.body_idle();
        let mut seen = 0;
        let mut checkpointed = 0;
        let streamed: Result<(), TusError> = async {
            loop {
                let batch = next_batch(&mut body, &mut seen, &expect, idle).await?;
                if batch.is_empty() {
                    return Ok(());
                }
                if !lease.valid() {
                    // its lease ran out (taken over, or not renewed in time): the client asks
                    // for the offset again (423), as after any concurrent PATCH
                    return Err(TusError::Locked);
                }
                pump.feed(batch).await?;
                if checksum.is_none() && pump.fed - checkpointed >= CHECKPOINT_BYTES {
                    checkpointed = pump.fed;
                    self.checkpoint(lease, &upload, &mut pump, &mut recorded, false).await?;
                }
            }
        }
        .await;
        if let Err(failed) = streamed {
            // a write that failed in the background leaves the writer behind the hashers:
            // such a state is never recorded (the next PATCH starts from the last record)
            let settled = pump.settle().await.is_ok();
            let broke_off = matches!(failed, TusError::Ingest(IngestError::Body(_) | IngestError::Idle(_)));
            if broke_off && settled && checksum.is_none() && lease.valid() {
                // the body broke off: what arrived stays, and HEAD shows it
                if let Err(e) = self.checkpoint(lease, &upload, &mut pump, &mut recorded, true).await {
                    tracing::warn!(error = %e, upload = %upload.id, "could not keep a broken-off PATCH's bytes");
                }
            }
            return Err(match (failed, upload.length) {
                (TusError::Ingest(IngestError::TooLarge { .. }), Some(length)) => TusError::PastLength { length },
                (TusError::Ingest(IngestError::TooLarge { .. }), None) => TusError::TooLarge { limit: self.max_size },
                (TusError::Ingest(IngestError::Body(why)), _) => TusError::Body(why),
                (other, _) => other,
            });
        }
        pump.settle().await?;
        let head = pump.head.clone();
        let (mut writer, hashers) = pump.finish().await?;
        if let (Some(expected), Some(computed)) = (&checksum, hashers.checksum)
            && computed.finish() != expected.digest
        {
            return Err(TusError::ChecksumMismatch);
        }
        arriving.received();
        let staging = writer.persist().await?;
        let offset = staging.size;
        if upload.length != Some(offset) {
            let hash_state = hashers.whole.as_ref().map(|whole| HashState::encode(whole, hashers.chunks.as_ref()));
            let progress = self.progress(&recorded, &staging, TusState::Open, hash_state, head, None);
            self.record(lease, &upload, &progress, &recorded, &staging, true).await?;
            let moved = TusUpload { offset, expires_ms: progress.expires_ms, ..upload };
            return Ok(Status::of(&moved));
        }
        if partial {
            let progress = self.progress(&recorded, &staging, TusState::Completed, None, head, None);
            self.record(lease, &upload, &progress, &recorded, &staging, true).await?;
            // the final upload finishes it again if this fails (finishing is repeatable)
            if let Err(e) = self.store.finish_resumable(&staging).await {
                tracing::warn!(error = %e, upload = %upload.id, "could not finish a partial upload's staging yet");
            }
            let done = TusUpload { offset, state: TusState::Completed, ..upload };
            return Ok(Status::of(&done));
        }
        let whole = hashers.whole.ok_or_else(|| unusable("no hash state"))?;
        let sha256 = Sha256Hex::from_digest(&sha2::Digest::finalize(whole));
        let chunked_hash = hashers.chunks.and_then(|c| c.finish(offset));
        if let Some(expected) = upload.expect_sha256.as_ref().filter(|e| **e != sha256) {
            // the PATCH is refused whole: its bytes are not recorded, nothing is committed
            let _ = self.store.prune_resumable(&staging, &recorded).await;
            return Err(TusError::HashMismatch(Mismatch::Hash {
                what: "SHA-256",
                actual: sha256,
                expected: expected.clone(),
            }));
        }
        let content = BlobRecord { sha256, size: offset, chunked_hash };
        let progress =
            self.progress(&recorded, &staging, TusState::Received, None, head.clone(), Some(content.clone()));
        self.record(lease, &upload, &progress, &recorded, &staging, false).await?;
        let received = TusUpload {
            offset,
            state: TusState::Received,
            staging_state: staging.state,
            head,
            content: Some(content),
            ..upload
        };
        self.commit_received(lease, received).await
    }

    fn progress(
        &self,
        from: &Resumable,
        to: &Resumable,
        state: TusState,
        hash_state: Option<Vec<u8>>,
        head: Vec<u8>,
        content: Option<BlobRecord>,
    ) -> TusProgress {
        TusProgress {
            from_offset: from.size,
            offset: to.size,
            state,
            staging_state: to.state.clone(),
            hash_state,
            head,
            content,
            expires_ms: self.expires_ms(),
        }
    }

    /// Records `progress` under the lease, then drops what only the superseded staging
    /// state used (or, refused, what only the new one used).
    async fn record(
        &self,
        lease: &Lease,
        upload: &TusUpload,
        progress: &TusProgress,
        recorded: &Resumable,
        staging: &Resumable,
        release: bool,
    ) -> Result<(), TusError> {
        let moved = self.catalog.advance_tus(lease.id(), &lease.token, progress, release).await?;
        let (gone, kept) = if moved { (recorded, staging) } else { (staging, recorded) };
        if let Err(e) = self.store.prune_resumable(gone, kept).await {
            tracing::warn!(error = %e, upload = %upload.id, "could not remove superseded staging");
        }
        if moved {
            return Ok(());
        }
        // terminated meanwhile, or the lease ran out and another request took it
        match self.catalog.tus_upload(&upload.id, upload.user_id).await? {
            None => Err(TusError::NotFound),
            Some(_) => Err(TusError::Locked),
        }
    }

    /// Makes what the pump took in so far durable and records it (`release`: for the last
    /// time in this request).
    async fn checkpoint(
        &self,
        lease: &Lease,
        upload: &TusUpload,
        pump: &mut Pump<Box<dyn ResumableWriter>>,
        recorded: &mut Resumable,
        release: bool,
    ) -> Result<(), TusError> {
        pump.settle().await?;
        let staging = pump.writer().persist().await?;
        if staging.size == recorded.size {
            return Ok(());
        }
        let hash_state = match pump.hashes() {
            (Some(whole), chunks) => Some(HashState::encode(whole, chunks)),
            (None, _) => None,
        };
        let progress = self.progress(recorded, &staging, TusState::Open, hash_state, pump.head.clone(), None);
        self.record(lease, upload, &progress, recorded, &staging, release).await?;
        *recorded = staging;
        Ok(())
    }
}
