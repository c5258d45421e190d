//! Uploads in parts, for both families that have them: the presigned multipart family
//! (API.md §2: N parts of at least 5 MiB, ETags) and the device family's chunked multipart
//! (API.md §1: the parts are the chunks of the file-hashing rule, each bound to its digest).
//! Parts are staged by Ferry (each PUT streams through the pipeline into upload staging) or,
//! in direct mode, held by the S3 server itself. This module is the one place an upload is
//! started, takes a part, completes, is aborted or expires; handlers only parse and render.
//!
//! Every state change is checked in the catalog transaction that makes it: a completion
//! claims the upload first (a second completion waits for the first's answer, an abort is
//! refused while it runs, a crashed completer's claim runs out and is taken over), and an
//! abort deletes only an open, unclaimed upload — so an acknowledged completion is never
//! undone and a winning abort makes the completion fail.

mod complete;
mod frontier;
mod in_place;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

pub use complete::{Completed, Completion, PartRule};

use super::{Expectation, Ingest, IngestError};
use crate::blob_store::{BlobStore, DirectMultipart, Staged, StoreError};
use crate::catalog::{CatalogError, NewUpload, Part, Upload, UploadFamily, Uploads};
use crate::domain::GrantId;
use crate::domain::{Sha256Hex, UserId};
use crate::signing::{Signer, targets};

/// Why an upload step was refused. Handlers map each to their family's code and status.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("this upload was aborted or has expired")]
    NoSuchUpload,
    #[error("this upload is already complete")]
    Completed,
    #[error("this upload is being completed; repeat the request for its answer")]
    Completing,
    #[error("part {0} was never uploaded")]
    MissingPart(u32),
    #[error("{0}")]
    EtagMismatch(String),
    /// A part of the wrong size (below S3's minimum, or not its planned size).
    #[error("{0}")]
    PartSize(String),
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl From<CatalogError> for UploadError {
    fn from(err: CatalogError) -> Self {
        UploadError::Ingest(IngestError::Catalog(err))
    }
}

impl From<StoreError> for UploadError {
    fn from(err: StoreError) -> Self {
        UploadError::Ingest(IngestError::Store(err))
    }
}

/// What a new upload is for.
#[derive(Debug, Clone)]
pub struct NewMultipart {
    pub family: UploadFamily,
    pub user: UserId,
    /// Device family: the grant it goes through.
    pub grant: Option<GrantId>,
    /// Multipart family: the client's `file_id`.
    pub file_key: Option<String>,
    /// Device family: the announced size and file hash.
    pub file_size: Option<u64>,
    pub file_hash: Option<Sha256Hex>,
    pub part_count: u32,
    pub content_type: Option<String>,
}

/// A part Ferry already holds of a resumed upload: the client need not send it again, and
/// completes with this ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPart {
    pub part_num: u32,
    pub etag: String,
}

/// The multipart upload service (see the module docs).
#[derive(Clone)]
pub struct MultipartUploads {
    catalog: Arc<dyn Uploads>,
    store: Arc<dyn BlobStore>,
    ingest: Ingest,
    signer: Signer,
    expiry: Duration,
    url_ttl: Duration,
    max_size: u64,
    /// Parts written in place take turns with each other and with their completion.
    locks: in_place::InPlaceLocks,
    /// How far the whole-file hash of each upload written in place has got.
    frontiers: frontier::Frontiers,
}

impl MultipartUploads {
    pub fn new(ingest: Ingest, signer: Signer, config: &crate::config::Config) -> Self {
        Self {
            catalog: ingest.catalog.clone(),
            store: ingest.store.clone(),
            ingest,
            signer,
            expiry: config.upload_expiry,
            url_ttl: config.signed_url_ttl,
            max_size: config.max_upload_size,
            locks: Default::default(),
            frontiers: Default::default(),
        }
    }

    fn expires_ms(&self) -> i64 {
        crate::clock::now_ms() + self.expiry.as_millis() as i64
    }

    /// Starts an upload: in direct mode the S3 server opens its own multipart upload, whose
    /// id travels inside Ferry's upload id.
    pub async fn start(&self, new: NewMultipart) -> Result<Upload, UploadError> {
        if new.file_size.is_some_and(|size| size > self.max_size) {
            return Err(UploadError::TooLarge { limit: self.max_size });
        }
        let upload_id = match self.store.direct() {
            Some(direct) => direct.start_multipart().await?.upload_id(),
            None => ulid::Ulid::new().to_string(),
        };
        let record = NewUpload {
            upload_id,
            family: new.family,
            user_id: new.user,
            grant_id: new.grant,
            file_key: new.file_key,
            file_size: new.file_size,
            file_hash: new.file_hash,
            part_count: Some(new.part_count),
            content_type: new.content_type,
            expires_ms: self.expires_ms(),
        };
        match self.catalog.create_upload(&record).await {
            Ok(upload) => Ok(upload),
            Err(err) => {
                // the store's upload must not outlive the refused start
                if let (Some(direct), Some(held)) = (self.store.direct(), DirectMultipart::parse(&record.upload_id)) {
                    let _ = direct.abort_multipart(&held).await;
                }
                Err(err.into())
            }
        }
    }

    /// Starts a device-family upload of `new.file_hash`, or resumes the caller's unfinished
    /// one of the same content through the same grant (API.md §5, "Device multipart resume"):
    /// same upload, renewed, with the parts already held. `plan` is each part's size and
    /// SHA-256; a held part counts only when it is the planned one. Only the caller's own
    /// uploads are looked up, so another account learns nothing and gets its own upload.
    pub async fn start_or_resume(
        &self,
        new: NewMultipart,
        plan: &[(u64, Sha256Hex)],
    ) -> Result<(Upload, Vec<HeldPart>), UploadError> {
        if let (Some(grant), Some(hash), Some(size)) = (new.grant, &new.file_hash, new.file_size)
            && let Some(open) = self.catalog.open_device_upload(new.user, grant, hash, size).await?
            && open.part_count == Some(new.part_count)
            && let Some(held) = self.held_parts(&open, plan).await?
        {
            self.renew(&open).await?;
            return Ok((open, held));
        }
        Ok((self.start(new).await?, Vec::new()))
    }

    /// The planned parts an open upload holds: staged by Ferry (its part records), or held
    /// by the S3 server (its listing; a part whose ETag it does not list is not reported,
    /// since completing needs it). `None` when the S3 server no longer has the upload.
    async fn held_parts(
        &self,
        upload: &Upload,
        plan: &[(u64, Sha256Hex)],
    ) -> Result<Option<Vec<HeldPart>>, UploadError> {
        let planned = |num: u32| num.checked_sub(1).and_then(|i| plan.get(i as usize));
        if let (Some(direct), Some(held)) = (self.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
            let Some(stored) = direct.list_parts(&held).await? else { return Ok(None) };
            return Ok(Some(
                stored
                    .into_iter()
                    .filter(|p| planned(p.part_num).is_some_and(|(size, _)| *size == p.size))
                    .filter_map(|p| Some(HeldPart { part_num: p.part_num, etag: p.etag? }))
                    .collect(),
            ));
        }
        let parts = self.catalog.parts(&upload.upload_id).await?;
        Ok(Some(
            parts
                .into_iter()
                .filter(|p| planned(p.part_num).is_some_and(|(size, sha256)| *size == p.size && *sha256 == p.sha256))
                .map(|p| HeldPart { part_num: p.part_num, etag: p.etag })
                .collect(),
        ))
    }

    /// Renews an unfinished upload that is started again (its URLs are issued afresh).
    pub async fn renew(&self, upload: &Upload) -> Result<(), UploadError> {
        Ok(self.catalog.renew_upload(&upload.upload_id, self.expires_ms()).await?)
    }

    /// The URLs parts 1..=N are PUT to, on Ferry's upload host (`base`) or presigned
    /// straight to S3; `bound` gives each part's exact size and SHA-256 when known (the
    /// device family's plan), which the URL then enforces.
    pub async fn part_urls(
        &self,
        upload: &Upload,
        base: &str,
        bound: Option<&[(u64, Sha256Hex)]>,
    ) -> Result<Vec<String>, UploadError> {
        let count = upload.part_count.unwrap_or(0);
        let bound_of = |num: u32| bound.and_then(|b| b.get(num as usize - 1));
        if let (Some(direct), Some(held)) = (self.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
            let mut urls = Vec::with_capacity(count as usize);
            for num in 1..=count {
                let size = bound_of(num).map(|(size, _)| *size);
                urls.push(direct.presign_part(&held, num, size, self.url_ttl).await?);
            }
            return Ok(urls);
        }
        let expires = crate::clock::now_secs() + self.url_ttl.as_secs() as i64;
        Ok((1..=count)
            .map(|num| {
                let bound = bound_of(num).map(|(size, sha256)| (*size, sha256));
                targets::part_put(&self.signer, base, &upload.upload_id, num, bound, expires)
            })
            .collect())
    }

    /// Receives part `part_num` of an open upload into upload staging; returns its ETag
    /// (derived from the SHA-256 computed while it streamed in). A retried part replaces
    /// the earlier one.
    pub async fn put_part<S, E>(
        &self,
        upload_id: &str,
        part_num: u32,
        body: S,
        expect: &Expectation,
    ) -> Result<String, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        let upload = match self.catalog.upload(upload_id).await? {
            None => return Err(UploadError::NoSuchUpload),
            Some(u) if u.completed => return Err(UploadError::Completed),
            Some(u) => u,
        };
        crate::metrics::now_serving(upload.family.as_str());
        if self.store.writes_parts_in_place()
            && let Some(key) = self.in_place_key(&upload, &self.catalog.parts(upload_id).await?)
        {
            return self.put_part_in_place(&upload, &key, part_num, body, expect).await;
        }
        let received = self.ingest.receive_part(body, expect).await?;
        let etag = received.blob.sha256.to_string();
        let part = Part {
            part_num,
            staging_key: received.staged().key.clone(),
            size: received.blob.size,
            sha256: received.blob.sha256.clone(),
            etag: etag.clone(),
        };
        match self.catalog.put_part(upload_id, &part).await {
            Ok(replaced) => {
                received.keep(); // recorded: it stays until the upload completes or goes
                if let Some(key) = replaced {
                    self.ingest.discard_staged(&[Staged { key, size: 0 }]).await?;
                }
                Ok(etag)
            }
            Err(err) => {
                drop(received); // refused: its staged copy goes
                Err(in_place::refused(err))
            }
        }
    }

    /// Aborts an open upload: its parts go (from staging, or the S3 server's upload). An
    /// upload that is completed or being completed is refused: an acknowledged completion
    /// is never undone.
    pub async fn abort(&self, upload_id: &str) -> Result<(), UploadError> {
        let parts = match self.catalog.abort_upload(upload_id).await {
            Ok(parts) => parts,
            Err(CatalogError::NotFound(_)) => return Err(UploadError::NoSuchUpload),
            Err(CatalogError::Conflict(message)) if message.contains("being completed") => {
                return Err(UploadError::Completing);
            }
            Err(CatalogError::Conflict(_)) => return Err(UploadError::Completed),
            Err(other) => return Err(other.into()),
        };
        self.drop_bytes(upload_id, parts).await;
        Ok(())
    }

    /// Deletes the user's completed file `file_key`; its bytes follow the retention rule of
    /// every delete. `false` when the user has no such file.
    pub async fn delete_file(&self, user: UserId, file_key: &str) -> Result<bool, UploadError> {
        Ok(self.catalog.delete_multipart_file(user, file_key).await?)
    }

    /// Expires one upload whose time is up (unfinished, or a completed device-family upload
    /// kept only to answer repeats); `None` when there is none.
    pub async fn expire_one(&self) -> Result<Option<String>, UploadError> {
        let Some(upload) = self.catalog.expired_uploads(1).await?.pop() else { return Ok(None) };
        // a completion that holds it is left alone (the listing skips it from now on)
        if let Some(parts) = self.catalog.delete_upload(&upload.upload_id).await? {
            self.drop_bytes(&upload.upload_id, parts).await;
            if !upload.completed {
                self.ingest.metrics().upload_expired(upload.family.as_str());
            }
        }
        Ok(Some(upload.upload_id))
    }

    /// Removes what an upload that is gone from the catalog held: staged parts, or the S3
    /// server's upload and any object it was assembled into. Failures are logged; what stays
    /// behind is reported by `ferry admin check`.
    async fn drop_bytes(&self, upload_id: &str, parts: Vec<Part>) {
        self.frontiers.forget(upload_id);
        if let (Some(direct), Some(held)) = (self.store.direct(), DirectMultipart::parse(upload_id))
            && let Err(e) = direct.abort_multipart(&held).await
        {
            tracing::warn!(error = %e, upload = upload_id, "could not abort the S3 server's upload");
        }
        let mut staged: Vec<Staged> = parts.into_iter().map(|p| Staged { key: p.staging_key, size: p.size }).collect();
        if self.store.writes_parts_in_place() && upload_id.parse::<ulid::Ulid>().is_ok() {
            // parts written in place: their file, even when none was recorded yet
            staged.push(Staged { key: format!("uploads/{upload_id}"), size: 0 });
        }
        if let Err(e) = self.ingest.discard_staged(&staged).await {
            tracing::warn!(error = %e, upload = upload_id, "could not remove an upload's parts");
        }
    }
}
