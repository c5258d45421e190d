//! What an uploader promised about its bytes (size, hash, limits) and how an upload fails.

use std::time::Duration;

use crate::blob_store::StoreError;
use crate::catalog::CatalogError;
use crate::domain::Sha256Hex;

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

impl Expectation {
    /// Whether the device family's top-hash is computed as the bytes stream in: only where a
    /// device bound it. Other content over 16 MiB gets it from the `device_hash` job.
    pub fn needs_device_hash(&self) -> bool {
        matches!(self.hash, Some(ExpectedHash::Device(_)))
    }
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
    HashMismatch(Mismatch),
    #[error("the request body could not be read: {0}")]
    Body(String),
    /// The body sent nothing for this long: the client stalled or went silent.
    #[error("no bytes arrived for {} s", .0.as_secs())]
    Idle(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The error a body ends with when its client stopped sending (the HTTP layer's guard on
/// every request body makes it): whoever reads the body answers [`IngestError::Idle`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no bytes of the body arrived for {} s", .0.as_secs())]
pub struct BodyIdle(pub Duration);

impl BodyIdle {
    /// The stall behind `error` (or what caused it), if that is why reading failed.
    pub fn behind(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if let Some(idle) = error.downcast_ref::<Self>() {
                return Some(*idle);
            }
            cause = error.source();
        }
        None
    }
}

/// How received bytes differ from what the uploader bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("received {received} bytes but {bound} were bound")]
    Size { received: u64, bound: u64 },
    #[error("the body is longer than the bound size of {bound} bytes")]
    Longer { bound: u64 },
    #[error("the received bytes have {what} {actual}, not the bound {expected}")]
    Hash { what: &'static str, actual: Sha256Hex, expected: Sha256Hex },
}
