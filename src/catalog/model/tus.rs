//! tus uploads (API.md §5) as the catalog keeps them: target, concatenation role, state,
//! and what a lease or a PATCH's progress carries.

use std::time::Duration;

use crate::domain::{DeviceId, Sha256Hex, UserId};

use super::BlobRecord;

/// Where a finished upload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TusTarget {
    /// A library file in the user's folder of this key.
    Folder(String),
    /// A gallery event of this device (of the same user).
    Device(DeviceId),
}

/// The concatenation extension's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TusConcat {
    /// Bytes for a final upload; never filed by itself.
    Partial,
    /// The concatenation of these partial uploads (their ids, in order).
    Final(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusState {
    /// Taking bytes.
    Open,
    /// Every byte is in and hashed, the staging finished; the commit is still to be made
    /// (it failed, or is in progress). Bytes stay until it is.
    Received,
    /// Committed (a partial upload: its bytes are finished staging, waiting for a final one).
    Completed,
    /// Expired before completing; its bytes are gone, and it answers 410 for a while.
    Expired,
}

impl TusState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TusState::Open => "open",
            TusState::Received => "received",
            TusState::Completed => "completed",
            TusState::Expired => "expired",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        [TusState::Open, TusState::Received, TusState::Completed, TusState::Expired]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A new upload's record.
#[derive(Debug, Clone)]
pub struct NewTusUpload {
    pub id: String,
    pub user_id: UserId,
    pub length: Option<u64>,
    /// `Upload-Metadata` as the client sent it.
    pub metadata: Option<String>,
    pub concat: Option<TusConcat>,
    pub target: TusTarget,
    pub file_name: Option<String>,
    pub file_type: Option<String>,
    /// The `sha256` metadata: what the whole file must hash to.
    pub expect_sha256: Option<Sha256Hex>,
    pub staging_key: String,
    pub staging_state: String,
    pub hash_state: Option<Vec<u8>>,
    pub expires_ms: i64,
}

/// What terminating an upload did.
#[derive(Debug)]
pub enum Termination {
    /// The upload is gone; as it was, so its bytes can go too.
    Ended(Box<TusUpload>),
    /// No such upload of this user.
    NotFound,
    /// A request holds its lease (a PATCH writing): nothing changed.
    Locked,
}

#[derive(Debug, Clone)]
pub struct TusUpload {
    pub id: String,
    pub user_id: UserId,
    pub length: Option<u64>,
    pub offset: u64,
    pub metadata: Option<String>,
    pub concat: Option<TusConcat>,
    pub target: TusTarget,
    pub file_name: Option<String>,
    pub file_type: Option<String>,
    pub expect_sha256: Option<Sha256Hex>,
    pub state: TusState,
    pub staging_key: String,
    /// The store's resumable state while open; empty once the staging is finished.
    pub staging_state: String,
    /// The hashers' state at `offset` (see `resumable`); `None` for partial uploads.
    pub hash_state: Option<Vec<u8>>,
    /// The file's first bytes (for sniffing), up to 512.
    pub head: Vec<u8>,
    /// What the bytes are, once all are in.
    pub content: Option<BlobRecord>,
    /// What the upload became (a library file, a gallery event), once committed.
    pub result: Option<serde_json::Value>,
    /// Until when a PATCH holds the upload.
    pub lease_until_ms: Option<i64>,
    pub expires_ms: i64,
}

impl TusUpload {
    /// Whether a running lease holds it (`now` in ms).
    pub fn leased(&self, now: i64) -> bool {
        self.lease_until_ms.is_some_and(|until| until >= now)
    }

    /// Whether it has expired (its row may still say open until the expiry job runs).
    pub fn expired(&self, now: i64) -> bool {
        self.state == TusState::Expired || (self.expires_ms < now && self.state != TusState::Completed)
    }
}

/// What a lease request found.
#[derive(Debug, Clone)]
pub enum TusLease {
    /// Leased, as it now stands.
    Leased(TusUpload),
    /// Not leased: it is held, expired, finished, at another offset or of another length.
    Refused(TusUpload),
    /// No such upload of this user.
    Missing,
}

/// The conditions a lease is taken under, beyond a free upload that is open or received.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseTerms {
    /// The offset the request starts from (`Upload-Offset`).
    pub offset: Option<u64>,
    /// A length the request declares (`Upload-Length` on a PATCH of a deferred upload):
    /// set when none is, refused when another one is or when it is below the offset.
    pub length: Option<u64>,
    pub lease: Duration,
}

/// What a PATCH made durable, recorded under its lease.
#[derive(Debug, Clone)]
pub struct TusProgress {
    /// The offset the recorded state started from (the PATCH's, or its last checkpoint's).
    pub from_offset: u64,
    pub offset: u64,
    pub state: TusState,
    pub staging_state: String,
    pub hash_state: Option<Vec<u8>>,
    pub head: Vec<u8>,
    pub content: Option<BlobRecord>,
    pub expires_ms: i64,
}
