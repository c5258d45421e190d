//! Where blob bytes live. [`BlobStore`] is a streaming contract with one implementation per
//! backend (local disk, S3-compatible storage); callers never know which. A store that can
//! take bytes straight from clients (S3 in direct mode) also offers [`DirectUploads`].
//!
//! Bytes reach a store in two steps: they are written to a *staging* object while they are
//! hashed and verified, then *committed* to their content address `sha256/<aa>/<bb>/<hash>`.
//! Nothing outside staging is ever partially written.

mod direct;
mod group_sync;
mod local;
mod local_parts;
mod local_resumable;
mod local_writer;
mod resumable;
mod s3;
mod s3_connect;
mod s3_resumable;
mod s3_writer;
mod sigv4;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::domain::{ByteRange, Sha256Hex};
pub use direct::{Assembled, DirectMultipart, DirectUploads, Presigned, StoredPart, composite_etag};
pub use local::{IDENTITY_FILE, LocalStore, blob_subpath, blobs_dir};
pub use resumable::ResumableWriter;
pub use s3::S3Store;
pub use s3_connect::s3_client;

/// A stream of blob bytes, read lazily in bounded pieces.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} is not in the store")]
    Missing(Sha256Hex),
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether the store refused for lack of space (a full disk or quota).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Io(e) if matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
    }

    /// Whether the store could not be reached (an S3 server down or restarting): worth retrying.
    pub fn is_unavailable(&self) -> bool {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, NotConnected, TimedOut};
        matches!(self, StoreError::Io(e) if matches!(e.kind(), NotConnected | ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut))
    }
}

/// Where a staging object lives. Request staging belongs to one request and is wiped at
/// start; upload staging holds parts of multipart uploads and survives restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingArea {
    Request,
    Upload,
}

/// A finished staging object: its store-specific key and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub key: String,
    pub size: u64,
}

/// Where a resumable staging object stands (see `resumable`): what any process sharing the
/// store needs to continue or finish it. Callers keep it between appends; `state` is the
/// store's own and opaque to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// The staging key of the finished object (`uploads/<ULID>`).
    pub key: String,
    /// Bytes the object holds.
    pub size: u64,
    /// The store's continuation (S3: its multipart upload, parts and tail); empty on disk.
    pub state: String,
}

/// Whether committing wrote new bytes or found the content already stored (dedup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Stored,
    AlreadyPresent,
}

/// Receives the bytes of one staging object. Implementations MUST remove the partial object
/// when the writer is dropped without [`StagingWriter::finish`] (a client that disconnects
/// leaves nothing behind).
#[async_trait]
pub trait StagingWriter: Send {
    /// Appends `batch` in order. Takes ownership so the write can run off the async threads.
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError>;
    /// Makes the bytes durable and returns the staging object.
    async fn finish(self: Box<Self>) -> Result<Staged, StoreError>;
}

/// The blob store contract. Implementations MUST:
/// - make a committed blob visible only whole (never a prefix of it);
/// - make [`BlobStore::commit`] idempotent: committing content that is already stored keeps
///   the stored copy and discards the staged one;
/// - stream every read and write (memory independent of blob size);
/// - keep staging objects of unfinished uploads until they are committed or discarded;
/// - keep every byte of a resumable staging object that a [`ResumableWriter::persist`]
///   returned a state for, durably and visible to every process sharing the store, until
///   the object is finished or discarded — across restarts too;
/// - leave every state a writer started from valid until it is superseded: appending never
///   changes what an earlier state describes, and an append continues exactly at the size of
///   the state it is given, whatever an abandoned writer left behind.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Opens a new staging object in `area`.
    async fn stage(&self, area: StagingArea) -> Result<Box<dyn StagingWriter>, StoreError>;
    /// Reads a staging object (a second pass or assembling parts).
    async fn read_staged(&self, staged: &Staged) -> Result<ByteStream, StoreError>;
    /// Moves a staged object to the content address of `sha256`.
    async fn commit(&self, staged: &Staged, sha256: &Sha256Hex) -> Result<Placed, StoreError>;
    /// Removes a staging object; removing one that is gone is not an error.
    async fn discard(&self, staged: &Staged) -> Result<(), StoreError>;
    /// Removes a staging object from a destructor (see `ingest::StagedUpload`), where nothing
    /// can be awaited: at once where that is cheap (a local unlink), else in a task of its own.
    fn discard_on_drop(self: std::sync::Arc<Self>, staged: Staged) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = self.discard(&staged).await {
                    tracing::warn!(error = %e, key = %staged.key, "could not remove a staging object");
                }
            });
        }
    }
    /// Whether parts whose place in the file is known in advance (the device family's) are
    /// written in place, into one staging object per upload (see `local_parts`).
    fn writes_parts_in_place(&self) -> bool {
        false
    }
    /// A writer at `offset` of the upload-staging object `key`, created when missing. Its
    /// other bytes stay, and so do this writer's when it is dropped unfinished.
    async fn write_in_place(&self, key: &str, _offset: u64) -> Result<Box<dyn StagingWriter>, StoreError> {
        Err(std::io::Error::other(format!("{} writes no parts in place ({key})", self.describe())).into())
    }
    /// Gives a staged object a second name at the content address of `sha256`, keeping the
    /// staged name (discarded once the catalog records the content).
    async fn link_staged(&self, staged: &Staged, _sha256: &Sha256Hex) -> Result<Placed, StoreError> {
        Err(std::io::Error::other(format!("{} links no staging ({})", self.describe(), staged.key)).into())
    }
    /// The file that holds a staged object, when the store keeps staging as local files: a
    /// completion of parts written in place hashes the regions it has not seen yet straight
    /// from it (see `ingest::multipart::frontier`). `None` elsewhere (S3).
    fn staged_file(&self, _staged: &Staged) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether a staged object has a second name (a completion linked it to a blob).
    async fn staged_is_linked(&self, _staged: &Staged) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Starts an empty resumable staging object in upload staging.
    async fn start_resumable(&self) -> Result<Resumable, StoreError>;
    /// A writer appending to `resumable` at its size.
    async fn append_resumable(&self, resumable: &Resumable) -> Result<Box<dyn ResumableWriter>, StoreError>;
    /// Once `current` is recorded in place of `superseded` (or `superseded` was never
    /// recorded and `current` stays), removes what only `superseded` used.
    async fn prune_resumable(&self, superseded: &Resumable, current: &Resumable) -> Result<(), StoreError>;
    /// Makes the object a finished staging object of exactly `resumable.size` bytes (read,
    /// committed and discarded like any); repeating it for the same state gives the same.
    async fn finish_resumable(&self, resumable: &Resumable) -> Result<Staged, StoreError>;
    /// Removes everything the object holds, finished or not; removing it twice is not an error.
    async fn discard_resumable(&self, resumable: &Resumable) -> Result<(), StoreError>;
    /// The staging keys the object uses (`admin check` counts them as in use).
    fn resumable_keys(&self, resumable: &Resumable) -> Vec<String>;
    /// The S3 multipart upload the object's state records, if any (`admin check`: any other
    /// open upload under its key belongs to an append that was never recorded).
    fn resumable_upload(&self, _resumable: &Resumable) -> Option<String> {
        None
    }

    /// Removes request staging left by a previous run (never upload staging); returns how many.
    /// A store shared by several servers removes only staging old enough to be abandoned.
    async fn clean_request_staging(&self) -> Result<usize, StoreError>;

    /// Removes staging a running server may treat as abandoned: on a store shared by
    /// replicas, finished request staging nobody committed, and direct PUTs never registered
    /// within `unregistered_after`. A store only this process writes leaves that to the
    /// start-up sweep (its request staging may be in use). Returns how many objects went.
    async fn sweep_staging(&self, _unregistered_after: std::time::Duration) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Every staging object with its last modification time (`admin check`).
    async fn list_staging(&self) -> Result<Vec<(String, std::time::SystemTime)>, StoreError>;

    /// The stored size of a blob, or `None` when it is not stored.
    async fn size_of(&self, sha256: &Sha256Hex) -> Result<Option<u64>, StoreError>;
    /// Streams a blob, or the inclusive `range` of it.
    async fn read(&self, sha256: &Sha256Hex, range: Option<ByteRange>) -> Result<ByteStream, StoreError>;
    /// The file that holds a blob, when the store keeps blobs as local files: external tools
    /// (ffmpeg) read it in place, read-only, instead of a copy. `None` elsewhere (S3).
    fn local_file(&self, _sha256: &Sha256Hex) -> Option<std::path::PathBuf> {
        None
    }
    /// Deletes a blob; deleting one that is gone is not an error.
    async fn delete(&self, sha256: &Sha256Hex) -> Result<(), StoreError>;
    /// Every stored blob with its last modification time (consistency checks).
    async fn list(&self) -> Result<Vec<(Sha256Hex, std::time::SystemTime)>, StoreError>;

    /// The identity this store was bound to (the catalog it belongs to, see
    /// `jobs::consistency::bind_store`); `None` for a store never bound.
    async fn identity(&self) -> Result<Option<String>, StoreError>;
    /// Records `id` as the store's identity unless one is recorded already (atomically: of
    /// two processes racing, one wins); returns the recorded identity.
    async fn bind_identity(&self, id: &str) -> Result<String, StoreError>;
    /// Whether any blob is stored.
    async fn has_blobs(&self) -> Result<bool, StoreError>;
    /// Where the store keeps its bytes, for messages (a directory, or a bucket and prefix).
    fn describe(&self) -> String;

    /// Presigned uploads straight into this store, when it offers and is configured for them.
    fn direct(&self) -> Option<&dyn DirectUploads> {
        None
    }
}
