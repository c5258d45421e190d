//! tus uploads as a service (API.md §5): create, PATCH, HEAD, terminate, concatenate and
//! expire, for any face (the tus HTTP module, later the web page). Handlers parse headers
//! and render answers; everything below is here.
//!
//! - **State**: each upload is a catalog row ([`TusUploads`]) holding its offset, its
//!   staging (the blob store's resumable state, see `blob_store::resumable`) and its hashers'
//!   state at that offset (`hash_state`), so any replica continues it and the completing
//!   PATCH knows the file's hashes without reading a byte again.
//! - **One PATCH at a time**: a PATCH leases its upload in the catalog (`lease`); another
//!   PATCH meanwhile gets [`TusError::Locked`]. Progress is recorded under the lease and
//!   only from the offset the PATCH started at (`patch`), every 64 MiB and at its end — also
//!   when the client goes away mid-body: every byte durably written stays, and the lease is
//!   given back.
//! - **Completion**: when the offset reaches the length, the staging is finished and the file
//!   committed like any upload (dedup, the account's hold, media job) and filed — a library
//!   file in a folder (default `tus`) or a gallery event of a device — through the
//!   [`LibraryFiles`] and [`GalleryEvents`] services, before the PATCH answers (`finish`).
//!   If that commit fails, the upload stays *received* and the next request on it commits
//!   (or files from the store what an earlier attempt committed). A filing whose lease ran out
//!   meanwhile — another request holds the upload now and files it — is taken back, so an
//!   upload is filed once.
//! - **Concatenation**: partial uploads are kept unhashed; a final upload reads them once
//!   more through the pipeline, like an out-of-order multipart assembly (`finish`).
//! - **Expiry**: every PATCH renews the upload for `FERRY_UPLOAD_EXPIRY`; the expiry job
//!   ([`ResumableUploads::expire_one`]) removes the bytes of uploads whose time is up, which
//!   answer 410 for one more such period and 404 after.

mod error;
mod finish;
mod hash_state;
mod lease;
mod patch;

pub use error::TusError;

use lease::Leased;

use std::sync::Arc;
use std::time::Duration;

use crate::blob_store::{BlobStore, Resumable};
use crate::catalog::{
    Catalog, CatalogError, LeaseTerms, NewTusUpload, Termination, TusConcat, TusLease, TusState, TusTarget, TusUpload,
    User,
};
use crate::domain::{EventName, FolderKey, Sha256Hex, UploadMetadata, UserId};
use crate::gallery::GalleryEvents;
use crate::library::LibraryFiles;

use crate::ingest::{Ingest, IngestError};

/// The folder finished uploads go to when their metadata names none.
pub const DEFAULT_FOLDER: &str = "tus";

/// A creation request, its headers parsed.
#[derive(Debug, Clone)]
pub struct Creation {
    pub user: User,
    /// `None`: deferred (`Upload-Defer-Length: 1`), or a final upload's (the partials' sum).
    pub length: Option<u64>,
    pub metadata: Option<UploadMetadata>,
    pub concat: Option<ConcatRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcatRequest {
    Partial,
    /// The partial uploads' ids, in order.
    Final(Vec<String>),
}

/// A PATCH's headers.
#[derive(Debug, Clone)]
pub struct PatchRequest {
    pub offset: u64,
    /// `Upload-Length` on a PATCH (a deferred upload declaring its length).
    pub length: Option<u64>,
    pub checksum: Option<crate::domain::UploadChecksum>,
}

/// Where an upload stands, as HEAD and PATCH answers show it.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: String,
    pub offset: u64,
    pub length: Option<u64>,
    pub metadata: Option<String>,
    pub concat: Option<TusConcat>,
    /// When it expires unless continued; `None` once complete.
    pub expires_ms: Option<i64>,
    /// What it became (a library file, a gallery event), once committed.
    pub result: Option<serde_json::Value>,
}

impl Status {
    fn of(upload: &TusUpload) -> Self {
        let unfinished = !matches!(upload.state, TusState::Completed);
        Self {
            id: upload.id.clone(),
            offset: upload.offset,
            length: upload.length,
            metadata: upload.metadata.clone(),
            concat: upload.concat.clone(),
            expires_ms: unfinished.then_some(upload.expires_ms),
            result: upload.result.clone(),
        }
    }
}

/// The tus upload service (see the module docs).
#[derive(Clone)]
pub struct ResumableUploads {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn BlobStore>,
    ingest: Ingest,
    library: LibraryFiles,
    events: GalleryEvents,
    expiry: Duration,
    max_size: u64,
}

/// Where a finished upload goes and what it is called, from its metadata.
struct Filing {
    target: TusTarget,
    file_name: Option<String>,
    file_type: Option<String>,
    expect_sha256: Option<Sha256Hex>,
}

/// A catalog row that cannot be continued (the server's fault, not the client's: 500).
fn unusable(why: &str) -> TusError {
    IngestError::Catalog(CatalogError::Schema(format!("a tus upload's state is unusable: {why}"))).into()
}

/// A new upload id: 128 random bits, hex (unguessable; the URL is the upload's only name).
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether `raw` can be an upload id (anything else is no upload).
pub fn is_upload_id(raw: &str) -> bool {
    raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ResumableUploads {
    pub fn new(ingest: Ingest, library: LibraryFiles, events: GalleryEvents, config: &crate::config::Config) -> Self {
        let (store, catalog) = ingest.parts();
        Self { catalog, store, ingest, library, events, expiry: config.upload_expiry, max_size: config.max_upload_size }
    }

    /// The largest upload accepted (`Tus-Max-Size`).
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    fn expires_ms(&self) -> i64 {
        crate::clock::now_ms() + self.expiry.as_millis() as i64
    }

    /// Creates an upload. A final upload is concatenated, committed and filed before this
    /// returns; so is an empty one.
    #[tracing::instrument(skip_all, fields(user = %new.user.user_id))]
    pub async fn create(&self, new: Creation) -> Result<Status, TusError> {
        if new.length.is_some_and(|l| l > self.max_size) {
            return Err(TusError::TooLarge { limit: self.max_size });
        }
        if let Some(length) = new.length {
            self.ingest.check_quota(new.user.user_id, length).await?; // before a byte is sent
        }
        let filing = self.filing(&new.user, new.metadata.as_ref()).await?;
        let metadata = new.metadata.as_ref().map(|m| m.raw().to_owned());
        if let Some(ConcatRequest::Final(partials)) = &new.concat {
            return self.concatenate(&new.user, partials, filing, metadata).await;
        }
        let partial = new.concat == Some(ConcatRequest::Partial);
        let staging = self.store.start_resumable().await?;
        let hash_state = (!partial).then(|| {
            let fresh = hash_state::HashState::default();
            hash_state::HashState::encode(&fresh.whole, fresh.chunks.as_ref())
        });
        let record = NewTusUpload {
            id: new_id(),
            user_id: new.user.user_id,
            length: new.length,
            metadata,
            concat: partial.then_some(TusConcat::Partial),
            target: filing.target,
            file_name: filing.file_name,
            file_type: filing.file_type,
            expect_sha256: filing.expect_sha256,
            staging_key: staging.key.clone(),
            staging_state: staging.state.clone(),
            hash_state,
            expires_ms: self.expires_ms(),
        };
        let upload = match self.catalog.create_tus(&record).await {
            Ok(upload) => upload,
            Err(e) => {
                let _ = self.store.discard_resumable(&staging).await;
                return Err(e.into());
            }
        };
        if upload.length == Some(0) {
            // nothing to send: complete it now (clients consider it done once created)
            let empty = PatchRequest { offset: 0, length: None, checksum: None };
            let body = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
            return self.patch(new.user.user_id, &upload.id, empty, body).await;
        }
        Ok(Status::of(&upload))
    }

    /// Reads the metadata keys Ferry acts on (API.md §5); refuses bad ones before anything
    /// is created.
    async fn filing(&self, user: &User, metadata: Option<&UploadMetadata>) -> Result<Filing, TusError> {
        let text = |key: &str| {
            metadata.map(|m| m.text(key)).transpose().map(Option::flatten).map_err(|e| TusError::InvalidMetadata(e.0))
        };
        let (folder, device) = (text("folder_id")?, text("device")?);
        let file_name = text("filename")?;
        let target = match (folder, device) {
            (Some(_), Some(_)) => return Err(TusError::ConflictingTarget),
            (Some(folder), None) => TusTarget::Folder(
                FolderKey::parse(folder.trim())
                    .map_err(|e| TusError::InvalidMetadata(format!("folder_id: {e}")))?
                    .to_string(),
            ),
            (None, Some(device)) => {
                let found = crate::gallery::find_device(self.catalog.as_ref(), user, device.trim()).await?;
                let device = found.ok_or(TusError::UnknownDevice(device))?;
                if let Some(name) = &file_name {
                    EventName::parse(name).map_err(|e| TusError::InvalidMetadata(format!("filename: {e}")))?;
                }
                TusTarget::Device(device.device_id)
            }
            (None, None) => TusTarget::Folder(DEFAULT_FOLDER.to_owned()),
        };
        let expect_sha256 = text("sha256")?
            .map(|h| Sha256Hex::parse(h.trim()))
            .transpose()
            .map_err(|e| TusError::InvalidMetadata(format!("sha256: {e}")))?;
        Ok(Filing { target, file_name, file_type: text("filetype")?, expect_sha256 })
    }

    /// Where the user's upload stands. One whose commit failed earlier is committed now.
    #[tracing::instrument(skip_all, fields(upload = %id))]
    pub async fn head(&self, user: UserId, id: &str) -> Result<Status, TusError> {
        let upload = self.own(user, id).await?;
        if upload.expired(crate::clock::now_ms()) {
            return Err(TusError::Expired);
        }
        if upload.state == TusState::Received {
            return self.commit_pending(user, id).await;
        }
        Ok(Status::of(&upload))
    }

    async fn own(&self, user: UserId, id: &str) -> Result<TusUpload, TusError> {
        if !is_upload_id(id) {
            return Err(TusError::NotFound);
        }
        self.catalog.tus_upload(id, user).await?.ok_or(TusError::NotFound)
    }

    /// Leases the user's upload on `terms`, or says why not (from the row as the lease's
    /// transaction read it).
    async fn lease(&self, user: UserId, id: &str, token: &str, terms: LeaseTerms) -> Result<Leased, TusError> {
        if !is_upload_id(id) {
            return Err(TusError::NotFound);
        }
        let upload = match self.catalog.lease_tus(id, user, token, terms).await? {
            TusLease::Leased(upload) => return Ok(Leased::Held(upload)),
            TusLease::Missing => return Err(TusError::NotFound),
            TusLease::Refused(upload) => upload,
        };
        let now = crate::clock::now_ms();
        Err(if matches!(upload.concat, Some(TusConcat::Final(_))) {
            TusError::FinalUpload
        } else if upload.expired(now) {
            TusError::Expired
        } else if upload.leased(now) {
            TusError::Locked
        } else if let Some(sent) = terms.offset.filter(|o| *o != upload.offset) {
            TusError::OffsetMismatch { sent, offset: upload.offset }
        } else if let Some(sent) = terms.length.filter(|sent| *sent < upload.offset) {
            TusError::InvalidLength(format!("Upload-Length {sent} is below the upload's offset {}", upload.offset))
        } else if let (Some(sent), Some(length)) = (terms.length, upload.length)
            && sent != length
        {
            TusError::InvalidLength(format!("Upload-Length {sent} differs from the upload's length {length}"))
        } else if upload.state == TusState::Completed {
            // completed, and the request starts at its end: nothing left to do (a client
            // repeating the completing PATCH whose answer it lost)
            return Ok(Leased::Complete(upload));
        } else {
            // refused while free at the same offset: a lease that ran out between the refusal
            // and this look; the client tries again
            TusError::Locked
        })
    }

    /// Terminates the user's upload: its row and whatever bytes it still holds go (a
    /// completed upload's file stays where it was filed). While a request holds its lease (a
    /// PATCH writing, a concatenation using it) nothing changes: `Locked`.
    #[tracing::instrument(skip_all, fields(upload = %id))]
    pub async fn terminate(&self, user: UserId, id: &str) -> Result<(), TusError> {
        if !is_upload_id(id) {
            return Err(TusError::NotFound);
        }
        match self.catalog.terminate_tus(id, user).await? {
            Termination::Ended(upload) => {
                self.drop_bytes(&upload).await;
                Ok(())
            }
            Termination::NotFound => Err(TusError::NotFound),
            Termination::Locked => Err(TusError::Locked),
        }
    }

    /// The maintenance task that expires uploads, one per step (see [`Self::expire_one`]).
    pub fn expiry_task(&self) -> Arc<dyn crate::jobs::Periodic> {
        let uploads = self.clone();
        crate::jobs::periodic("expire_tus_uploads", std::time::Duration::ZERO, move || {
            let uploads = uploads.clone();
            Box::pin(async move {
                let expired = uploads.expire_one().await?;
                Ok(expired.map(|id| format!("expired tus upload {id}")))
            })
        })
    }

    /// Expires one upload whose time is up (its bytes go; it answers 410 for one more expiry
    /// period), or forgets old ones; `None` when there was nothing to do.
    pub async fn expire_one(&self) -> Result<Option<String>, TusError> {
        if let Some(upload) = self.catalog.expire_tus().await? {
            self.drop_bytes(&upload).await;
            self.ingest.metrics().upload_expired("tus");
            return Ok(Some(upload.id));
        }
        let forgotten = self.catalog.forget_tus(self.expiry).await?;
        Ok((forgotten > 0).then(|| format!("{forgotten} forgotten tus uploads")))
    }

    /// Removes the bytes of an upload the catalog no longer keeps. Failures are logged; what
    /// stays behind is reported by `ferry admin check`.
    async fn drop_bytes(&self, upload: &TusUpload) {
        let holds_bytes = matches!(upload.state, TusState::Open | TusState::Received)
            || (upload.state == TusState::Completed && upload.concat == Some(TusConcat::Partial));
        if !holds_bytes || upload.staging_key.is_empty() {
            return;
        }
        let staging =
            Resumable { key: upload.staging_key.clone(), size: upload.offset, state: upload.staging_state.clone() };
        if let Err(e) = self.store.discard_resumable(&staging).await {
            tracing::warn!(error = %e, upload = %upload.id, "could not remove a tus upload's bytes");
        }
    }
}
