//! How a tus request fails (each answered with the protocol's status, see `http/tus`).

use crate::blob_store::StoreError;
use crate::catalog::CatalogError;
use crate::ingest::{IngestError, Mismatch};

#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error("no such upload")]
    NotFound,
    #[error("this upload has expired")]
    Expired,
    #[error("another request is writing to this upload; try again shortly")]
    Locked,
    #[error("Upload-Offset {sent} is not the upload's offset {offset}")]
    OffsetMismatch { sent: u64, offset: u64 },
    #[error("{0}")]
    InvalidLength(String),
    #[error("the upload would exceed the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body goes past the upload's length of {length} bytes")]
    PastLength { length: u64 },
    #[error("the body does not match its Upload-Checksum; its bytes were discarded")]
    ChecksumMismatch,
    #[error("{0}")]
    HashMismatch(Mismatch),
    #[error("Upload-Metadata names both folder_id and device; an upload goes to one")]
    ConflictingTarget,
    #[error("no device '{0}' in this account")]
    UnknownDevice(String),
    #[error("{0}")]
    InvalidMetadata(String),
    #[error("a final upload takes no PATCH")]
    FinalUpload,
    #[error("{0}")]
    InvalidConcat(String),
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    #[error(transparent)]
    Event(#[from] crate::gallery::EventError),
}

impl From<CatalogError> for TusError {
    fn from(err: CatalogError) -> Self {
        TusError::Ingest(err.into())
    }
}

impl From<StoreError> for TusError {
    fn from(err: StoreError) -> Self {
        TusError::Ingest(err.into())
    }
}
