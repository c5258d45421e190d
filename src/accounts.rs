//! Removing a user, device or volume: its uploads in flight end first through their own
//! services (which remove their staged bytes), then the catalog removes it and everything of
//! it in one transaction (see `catalog::Removals` for what goes with what).

use crate::catalog::{CatalogError, RemovalReport, Removals, Removed};
use crate::domain::UserId;
use crate::ingest::multipart::{MultipartUploads, UploadError};
use crate::resumable::{ResumableUploads, TusError};

#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("upload {0} is being completed; run the removal again in a moment")]
    Completing(String),
    #[error("tus upload {0} is being written to (a PATCH holds it); run the removal again when it ends")]
    Writing(String),
    #[error("cannot end upload {upload}: {reason}")]
    EndingUpload { upload: String, reason: String },
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub report: RemovalReport,
    /// Uploads in flight that were ended (their staged bytes removed).
    pub ended_uploads: usize,
}

/// The services a removal goes through.
pub struct Remover<'a> {
    pub catalog: &'a dyn Removals,
    pub uploads: &'a MultipartUploads,
    pub tus: &'a ResumableUploads,
}

impl Remover<'_> {
    /// Removes `what`, owned by `owner`.
    pub async fn remove(&self, what: Removed, owner: UserId) -> Result<Removal, RemovalError> {
        let in_flight = self.catalog.uploads_in_flight(what).await?;
        for upload in &in_flight.multipart {
            match self.uploads.abort(upload).await {
                // gone or completed meanwhile: the removal's transaction takes what is left
                Ok(()) | Err(UploadError::NoSuchUpload | UploadError::Completed) => {}
                Err(UploadError::Completing) => return Err(RemovalError::Completing(upload.clone())),
                Err(e) => return Err(RemovalError::EndingUpload { upload: upload.clone(), reason: e.to_string() }),
            }
        }
        for upload in &in_flight.tus {
            match self.tus.terminate(owner, upload).await {
                Ok(()) | Err(TusError::NotFound) => {}
                Err(TusError::Locked) => return Err(RemovalError::Writing(upload.clone())),
                Err(e) => return Err(RemovalError::EndingUpload { upload: upload.clone(), reason: e.to_string() }),
            }
        }
        let report = self.catalog.remove(what).await?;
        let ended_uploads = in_flight.multipart.len() + in_flight.tus.len();
        tracing::info!(?what, ?report, ended_uploads, "removed");
        Ok(Removal { report, ended_uploads })
    }
}
