//! Completing uploads: a received upload's finished staging is committed and filed (a
//! library file, or a gallery event) through the services every other face uses, then the
//! upload is marked completed — all before the request that completed it answers. A final
//! upload (concatenation) reads its partial uploads once more through the pipeline.

use serde_json::{Value, json};

use super::lease::{LEASE, Lease, new_token};
use super::{Filing, Leased, ResumableUploads, Status, TusError, unusable};
use crate::blob_store::Resumable;
use crate::catalog::{DeviceRef, LeaseTerms, NewTusUpload, TusConcat, TusState, TusTarget, TusUpload, User};
use crate::domain::UserId;
use crate::gallery::NewGalleryEvent;
use crate::ingest::{Expectation, ExpectedHash, IngestError, Received};
use crate::library::{Folder, NewFile};

impl ResumableUploads {
    /// Commits a received upload under a lease held by this request, files it and marks it
    /// completed. On failure the upload stays received (its bytes too), for the next request.
    pub(super) async fn commit_received(&self, lease: &Lease, upload: TusUpload) -> Result<Status, TusError> {
        let content = upload.content.clone().ok_or_else(|| unusable("a received upload without content"))?;
        let staging =
            Resumable { key: upload.staging_key.clone(), size: upload.offset, state: upload.staging_state.clone() };
        // An earlier attempt may have committed the bytes (moving them out of staging) and then
        // failed to file them; or the account stored the same content otherwise. Then the file
        // is filed from the store, and what is left of the staging goes.
        let stored = self.catalog.holds(upload.user_id, &content.sha256).await?;
        let received = match stored {
            true => self.ingest.already_stored(content, upload.head.clone()),
            false => self.ingest.resumed(self.store.finish_resumable(&staging).await?, content, upload.head.clone()),
        };
        if !lease.valid() {
            return Err(TusError::Locked); // renewals failed: another request may hold it by now
        }
        let result = self.file(upload.user_id, &upload, received).await?;
        if stored && let Err(e) = self.store.discard_resumable(&staging).await {
            tracing::warn!(error = %e, upload = %upload.id, "could not remove the staging of a tus upload filed from the store");
        }
        let expires_ms = self.expires_ms();
        if !self.catalog.complete_tus(lease.id(), &lease.token, &result, expires_ms).await? {
            // the lease ran out while filing and another request holds the upload now: it files
            // the upload itself (or has), so this filing is taken back
            self.unfile(upload.user_id, &upload.target, &result).await;
            return Err(TusError::Locked);
        }
        let done = TusUpload { state: TusState::Completed, result: Some(result), ..upload };
        Ok(Status::of(&done))
    }

    /// A HEAD on a received upload: commits it if no other request is at it.
    pub(super) async fn commit_pending(&self, user: UserId, id: &str) -> Result<Status, TusError> {
        let token = new_token();
        let upload = match self.lease(user, id, &token, LeaseTerms { lease: LEASE, ..LeaseTerms::default() }).await? {
            Leased::Held(upload) => upload,
            Leased::Complete(upload) => return Ok(Status::of(&upload)),
        };
        let lease = Lease::hold(self.catalog.clone(), vec![upload.id.clone()], token);
        let outcome = match upload.state {
            TusState::Received => self.commit_received(&lease, upload).await,
            _ => Ok(Status::of(&upload)),
        };
        lease.release().await;
        outcome
    }

    /// Files committed bytes where the upload's metadata says; returns what it became.
    async fn file(&self, user: UserId, upload: &TusUpload, received: Received) -> Result<Value, TusError> {
        match &upload.target {
            TusTarget::Folder(key) => {
                let new = NewFile {
                    file_name: upload.file_name.clone(),
                    content_type: upload.file_type.clone(),
                    ..NewFile::in_folder(user, Folder::Key(key.clone()))
                };
                let file = self.library.add(new, received).await?;
                Ok(json!({"file_id": file.file_id, "folder_id": key}))
            }
            TusTarget::Device(device_id) => {
                let device = self
                    .catalog
                    .find_devices(&DeviceRef::Id(*device_id))
                    .await?
                    .into_iter()
                    .find(|d| d.user_id == user)
                    .ok_or_else(|| TusError::UnknownDevice(device_id.to_string()))?;
                let new = NewGalleryEvent {
                    name: upload.file_name.clone().unwrap_or_else(|| upload.id.clone()),
                    content_type: upload.file_type.clone(),
                    file_name: upload.file_name.clone(),
                    ..NewGalleryEvent::default()
                };
                let event = self.events.create(&device, new, received, None).await?;
                Ok(json!({"event_id": event.id, "device": device.device_name}))
            }
        }
    }

    /// Takes back a filing whose upload another request took over meanwhile (a lease that ran
    /// out): that request files it, so exactly one filing stays.
    async fn unfile(&self, user: UserId, target: &TusTarget, result: &Value) {
        let undone = match target {
            TusTarget::Folder(_) => match result["file_id"].as_str() {
                Some(id) => self.library.delete(Some(user), id).await.map(drop).map_err(|e| e.to_string()),
                None => Ok(()),
            },
            TusTarget::Device(device) => match result["event_id"].as_str() {
                Some(id) => self.events.delete(*device, id).await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
        };
        if let Err(e) = undone {
            tracing::warn!(error = %e, %result, "could not take back a tus filing that lost its lease");
        }
    }

    /// Creates a final upload from the user's completed partial uploads: they are read once
    /// more, in order, through the pipeline (verified against the `sha256` metadata), the
    /// file is committed and filed, the final upload recorded and the partials removed.
    pub(super) async fn concatenate(
        &self,
        user: &User,
        partial_ids: &[String],
        filing: Filing,
        metadata: Option<String>,
    ) -> Result<Status, TusError> {
        if partial_ids.is_empty() {
            return Err(TusError::InvalidConcat("a final upload names at least one partial upload".into()));
        }
        let token = new_token();
        let partials = match self.catalog.lease_partials(partial_ids, user.user_id, &token, LEASE).await? {
            Ok(partials) => partials,
            Err(found) => return Err(self.partials_refused(partial_ids, &found)),
        };
        let lease = Lease::hold(self.catalog.clone(), partial_ids.to_vec(), token);
        let outcome = self.concatenate_leased(&lease, user, partials, filing, metadata).await;
        lease.release().await;
        outcome
    }

    async fn concatenate_leased(
        &self,
        lease: &Lease,
        user: &User,
        partials: Vec<TusUpload>,
        filing: Filing,
        metadata: Option<String>,
    ) -> Result<Status, TusError> {
        let length: u64 = partials.iter().map(|p| p.offset).sum();
        if length > self.max_size {
            return Err(TusError::TooLarge { limit: self.max_size });
        }
        let mut staged = Vec::with_capacity(partials.len());
        for partial in &partials {
            let staging = Resumable {
                key: partial.staging_key.clone(),
                size: partial.offset,
                state: partial.staging_state.clone(),
            };
            staged.push(self.store.finish_resumable(&staging).await?);
        }
        let expect = Expectation {
            size: Some(length),
            size_hint: Some(length),
            hash: filing.expect_sha256.clone().map(ExpectedHash::Sha256),
            max_size: None,
        };
        let received = match self.ingest.assemble(&staged, &expect).await {
            Ok(received) => received,
            Err(IngestError::HashMismatch(why)) => return Err(TusError::HashMismatch(why)),
            Err(other) => return Err(other.into()),
        };
        let content = received.blob.clone();
        let ids: Vec<String> = partials.iter().map(|p| p.id.clone()).collect();
        let record = NewTusUpload {
            id: super::new_id(),
            user_id: user.user_id,
            length: Some(length),
            metadata,
            concat: Some(TusConcat::Final(ids.clone())),
            target: filing.target,
            file_name: filing.file_name,
            file_type: filing.file_type,
            expect_sha256: filing.expect_sha256,
            staging_key: String::new(),
            staging_state: String::new(),
            hash_state: None,
            expires_ms: self.expires_ms(),
        };
        let probe = TusUpload {
            id: record.id.clone(),
            user_id: user.user_id,
            length: Some(length),
            offset: length,
            metadata: record.metadata.clone(),
            concat: record.concat.clone(),
            target: record.target.clone(),
            file_name: record.file_name.clone(),
            file_type: record.file_type.clone(),
            expect_sha256: record.expect_sha256.clone(),
            state: TusState::Completed,
            staging_key: String::new(),
            staging_state: String::new(),
            hash_state: None,
            head: Vec::new(),
            content: Some(content.clone()),
            result: None,
            lease_until_ms: None,
            expires_ms: record.expires_ms,
        };
        if !lease.valid() {
            return Err(TusError::Locked);
        }
        let result = self.file(user.user_id, &probe, received).await?;
        if !self.catalog.finish_concat(&record, &content, &result, &ids, &lease.token).await? {
            self.unfile(user.user_id, &probe.target, &result).await;
            return Err(TusError::Locked);
        }
        for (partial, staged) in partials.iter().zip(&staged) {
            if let Err(e) = self.store.discard(staged).await {
                tracing::warn!(error = %e, upload = %partial.id, "could not remove a concatenated partial upload");
            }
        }
        Ok(Status::of(&TusUpload { result: Some(result), ..probe }))
    }

    /// Why partial uploads cannot make a final upload (`found`: each as the lease saw it).
    fn partials_refused(&self, ids: &[String], found: &[Option<TusUpload>]) -> TusError {
        let now = crate::clock::now_ms();
        let mut seen = std::collections::HashSet::new();
        for (id, upload) in ids.iter().zip(found) {
            if !seen.insert(id) {
                return TusError::InvalidConcat(format!("partial upload {id} is named twice"));
            }
            let Some(upload) = upload else {
                return TusError::InvalidConcat(format!("no partial upload {id}"));
            };
            if upload.concat != Some(TusConcat::Partial) {
                return TusError::InvalidConcat(format!("upload {id} is not a partial upload"));
            }
            if upload.expired(now) || upload.expires_ms < now {
                return TusError::Expired;
            }
            if upload.state != TusState::Completed {
                return TusError::InvalidConcat(format!("partial upload {id} is not complete"));
            }
            if upload.leased(now) {
                return TusError::Locked;
            }
        }
        TusError::InvalidConcat("the partial uploads cannot be concatenated".into())
    }
}
