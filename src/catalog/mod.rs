//! The catalog: every piece of state Ferry keeps besides blob bytes — identities, blobs and
//! the holds accounts have on them, uploads in flight, jobs.
//!
//! [`Catalog`] is the contract; `sqlite` is the embedded implementation and `postgres` the
//! one replicas share; both pass the same conformance suite in `tests/api`.
//! Implementations see no HTTP types and no blob bytes: where bytes and rows must change
//! together (committing or collecting a blob) the caller passes the byte step in as a
//! callback that runs inside the catalog's critical section for that blob.

pub mod migrate;
mod model;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use crate::domain::{DeviceId, GrantId, Level, Name, ScopeSet, Sha256Hex, TokenId, UserId, VolumeId};
pub use model::*;

/// Errors of the catalog layer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the write; the text names what already exists.
    #[error("{0}")]
    Conflict(String),
    /// The byte step passed into a catalog transaction failed; nothing was recorded.
    #[error("{0}")]
    Step(BoxError),
    /// The write belongs to something that has finished or gone meanwhile (a session
    /// finished while a file was streaming into it); nothing was recorded.
    #[error("{0}")]
    Gone(String),
    /// The catalog's storage is full; nothing was recorded.
    #[error("the catalog has no space left: {0}")]
    Full(String),
    #[error("catalog schema: {0}")]
    Schema(String),
    #[error("catalog backend: {0}")]
    Backend(sqlx::Error),
}

impl From<sqlx::Error> for CatalogError {
    fn from(err: sqlx::Error) -> Self {
        // SQLITE_FULL (13, extended codes keep it in the low byte), PostgreSQL's disk_full
        // (53100), or the OS refusing a write: the same "no space" to whoever asked
        let full = match &err {
            sqlx::Error::Database(db) => {
                db.code().is_some_and(|code| code == "53100" || code.parse::<i64>().is_ok_and(|c| c & 0xff == 13))
            }
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        };
        if full { CatalogError::Full(err.to_string()) } else { CatalogError::Backend(err) }
    }
}

/// The `settings` key of the signing secret.
pub const SIGNING_SECRET: &str = "signing_secret";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type CatalogResult<T> = Result<T, CatalogError>;

/// A step on blob bytes run inside a catalog critical section (see module docs).
pub type BlobStep = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// Removes the stored bytes of a blob, inside the catalog's critical section for it (a sweep
/// may call it for several blobs).
pub type ByteDeleter = std::sync::Arc<dyn Fn(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// The catalog contract. Implementations MUST make every method atomic (all of its writes
/// or none), MUST serialise [`Catalog::commit_blob`] and [`Catalog::collect_blob`] for the
/// same SHA-256 (so collection never deletes bytes a commit has just relied on), and MUST
/// answer batch methods with a bounded number of queries, not one per item.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// A cheap round trip proving the catalog answers (readiness).
    async fn ping(&self) -> CatalogResult<()>;

    /// Returns the stored signing secret, storing `fresh` first when there is none yet (so
    /// all replicas end up with the first one ever stored).
    async fn signing_secret(&self, fresh: &[u8]) -> CatalogResult<Vec<u8>> {
        self.setting_once(SIGNING_SECRET, fresh).await
    }
    /// A shared setting (see `settings` in the migrations), `None` when unset.
    async fn setting(&self, key: &str) -> CatalogResult<Option<Vec<u8>>>;
    /// The setting `key`, storing `fresh` first when it is unset; every process racing to
    /// set it ends up with the first value ever stored.
    async fn setting_once(&self, key: &str, fresh: &[u8]) -> CatalogResult<Vec<u8>>;

    // --- identities ---
    async fn create_user(&self, name: &Name, level: Level) -> CatalogResult<User>;
    async fn user(&self, id: UserId) -> CatalogResult<Option<User>>;
    async fn user_by_name(&self, name: &str) -> CatalogResult<Option<User>>;
    async fn list_users(&self) -> CatalogResult<Vec<User>>;

    async fn create_token(&self, user: UserId, scopes: ScopeSet, secret_hash: &str) -> CatalogResult<TokenRecord>;
    async fn list_tokens(&self) -> CatalogResult<Vec<TokenRecord>>;
    async fn revoke_token(&self, id: TokenId) -> CatalogResult<TokenRecord>;
    /// The live (not revoked) token with this secret hash and its user.
    async fn token_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>>;

    async fn create_device(&self, device: NewDevice) -> CatalogResult<Device>;
    async fn list_devices(&self) -> CatalogResult<Vec<Device>>;
    /// Every device `reference` can mean (more than one only for an ambiguous bare name).
    async fn find_devices(&self, reference: &DeviceRef) -> CatalogResult<Vec<Device>>;
    async fn device_by_key_hash(&self, key_hash: &str) -> CatalogResult<Option<(Device, User)>>;
    async fn set_device_flag(&self, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device>;

    async fn create_volume(&self, user: UserId, name: &Name) -> CatalogResult<Volume>;
    async fn list_volumes(&self) -> CatalogResult<Vec<Volume>>;
    async fn volume_by_name(&self, user: UserId, name: &str) -> CatalogResult<Option<Volume>>;

    async fn create_grant(&self, grant: NewGrant) -> CatalogResult<Grant>;
    async fn list_grants(&self) -> CatalogResult<Vec<Grant>>;
    async fn grant(&self, id: GrantId) -> CatalogResult<Option<Grant>>;
    async fn grants_of_device(&self, device: DeviceId) -> CatalogResult<Vec<Grant>>;
    async fn set_grant_disabled(&self, id: GrantId, disabled: bool) -> CatalogResult<Grant>;

    // --- blobs and holds ---
    async fn blob(&self, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>>;
    async fn all_blob_hashes(&self) -> CatalogResult<Vec<Sha256Hex>>;
    /// Whether any blob is recorded (binding a blob store to this catalog).
    async fn has_blobs(&self) -> CatalogResult<bool>;
    /// True when `user` holds this content.
    async fn holds(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool>;

    /// Ends `user`'s hold on content (the bytes stay until GC finds nothing else needs them).
    async fn release_hold(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()>;

    /// Records verified content and `holder`'s hold on it. `place_bytes` (moving staged
    /// bytes to their content address) runs first inside the blob's critical section; if it
    /// fails nothing is recorded. Idempotent for content already recorded. When the content is
    /// not recorded yet, a `place` intent is written before the bytes move and removed with
    /// the rows that record them, so a crash in between leaves bytes the sweep
    /// ([`Catalog::sweep_intents`]) removes. When the blob row is new, the same transaction
    /// queues its media job ([`crate::media::PROCESS_KIND`], keyed by
    /// [`crate::media::process_key`]): every new content is processed once, and a crash
    /// cannot leave content recorded but never processed.
    async fn commit_blob(&self, blob: &BlobRecord, holder: UserId, place_bytes: BlobStep) -> CatalogResult<()>;

    /// Collects one blob that nothing holds or references and that was last used before
    /// `unused_for` ago, inside the blob's critical section: its rows go together with a
    /// `collect` intent being written, then `delete_bytes` runs, then the intent goes. A crash
    /// or a failed delete leaves the intent, and the sweep removes the bytes; a row without
    /// bytes never exists. Returns the collected hash, or `None` when nothing is collectable.
    async fn collect_blob(
        &self,
        unused_for: Duration,
        delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
    ) -> CatalogResult<Option<Sha256Hex>>;

    /// Finishes what a crash or a failed step left behind: for every intent written more than
    /// `older_than` ago, inside its blob's critical section, the bytes are removed unless the
    /// content is recorded (a `place` whose rows were never written, a `collect` whose bytes
    /// may remain), then the intent goes. Bytes no intent names are never touched. Returns
    /// how many intents were resolved.
    async fn sweep_intents(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize>;
    /// Contents with an unresolved intent (reported by `admin check`, never repaired by it).
    async fn pending_intents(&self) -> CatalogResult<Vec<Sha256Hex>>;

    /// Blobs `user` holds whose device-family hash (chunked hash, or SHA-256 up to 16 MiB)
    /// is among `device_hashes`. One query for the whole batch.
    async fn held_by_device_hash(&self, user: UserId, device_hashes: &[Sha256Hex]) -> CatalogResult<Vec<BlobRecord>>;

    // --- media items (device family) ---
    /// Creates the item at `path`, or answers what is there (see [`MediaCreated`]). The
    /// volume's change counter moves in the same transaction.
    async fn create_media(
        &self,
        volume: VolumeId,
        path: &str,
        content: &MediaContent,
        by: Updater,
    ) -> CatalogResult<MediaCreated>;
    /// Sets new content on an item (undeleting it); `expected_last_updated_ms` guards
    /// against lost updates.
    async fn update_media(
        &self,
        volume: VolumeId,
        media_id: i64,
        content: &MediaContent,
        expected_last_updated_ms: Option<i64>,
        by: Updater,
    ) -> CatalogResult<MediaUpdated>;
    /// Soft-deletes an item (a tombstone stays for the change feed); `false` when absent.
    async fn delete_media(&self, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool>;
    async fn media_item(&self, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>>;
    /// Items of a volume whose content has one of these device hashes.
    async fn media_by_file_hash(&self, volume: VolumeId, file_hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>>;
    /// The change feed: items changed after `after_seq`, in change order, at most `limit`.
    async fn media_changes(&self, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>>;
    /// Removes tombstones older than `retention` and releases the holds only they kept.
    async fn purge_tombstones(&self, retention: Duration) -> CatalogResult<usize>;

    // --- uploads in parts ---
    async fn create_upload(&self, upload: &NewUpload) -> CatalogResult<Upload>;
    async fn upload(&self, upload_id: &str) -> CatalogResult<Option<Upload>>;
    async fn upload_by_file_key(&self, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>>;
    /// The newest open, unexpired device-family upload `user` started through `grant` for
    /// this content (`file_hash`, `file_size`), so a repeated start resumes it.
    async fn open_device_upload(
        &self,
        user: UserId,
        grant: GrantId,
        file_hash: &Sha256Hex,
        file_size: u64,
    ) -> CatalogResult<Option<Upload>>;
    /// Sets a new expiry (a repeated start renews an unfinished upload).
    async fn renew_upload(&self, upload_id: &str, expires_ms: i64) -> CatalogResult<()>;
    /// Records a part of an open upload (`NotFound` once it is completed or gone); returns the
    /// staging key of the part it replaced (a retry), if any.
    async fn put_part(&self, upload_id: &str, part: &Part) -> CatalogResult<Option<String>>;
    async fn parts(&self, upload_id: &str) -> CatalogResult<Vec<Part>>;
    /// Claims an open upload for completing it, for `lease` (see [`CompletionClaim`]). A
    /// claim whose lease has passed (its completer died) can be claimed again.
    async fn claim_completion(&self, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim>;
    /// Extends a claim this completer still holds; `false` when it is no longer its own.
    async fn renew_completion(&self, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool>;
    /// Gives a claim back after a completion that failed (the upload stays open).
    async fn release_completion(&self, upload_id: &str, token: &str) -> CatalogResult<()>;
    /// Marks an open upload completed with the answer to replay and the content it produced
    /// (which it then keeps alive), and forgets its parts. The state is checked in the same
    /// transaction: `NotFound` when the upload is gone (aborted or expired meanwhile),
    /// `Conflict` when it was completed already.
    async fn complete_upload(
        &self,
        upload_id: &str,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<()>;
    /// Stores a whole file under `file_key` (a single PUT): replaces a completed file of that
    /// key; refused with `Conflict` while a multipart upload of the key is open.
    async fn put_file(
        &self,
        file: &NewUpload,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<Upload>;
    /// Aborts an open upload that no completion holds, and returns its parts (whose staging
    /// the caller discards): `NotFound` when it is gone, `Conflict` when it is completed or
    /// being completed (an acknowledged completion is never undone).
    async fn abort_upload(&self, upload_id: &str) -> CatalogResult<Vec<Part>>;
    /// Deletes an expired upload (open, or completed and kept only for repeated answers)
    /// unless a completion holds it, and returns its parts; `None` when it was not deleted.
    async fn delete_upload(&self, upload_id: &str) -> CatalogResult<Option<Vec<Part>>>;
    /// Staging keys unfinished uploads still use: their parts, and the objects direct-mode
    /// uploads are assembled into (`uploads/<ULID>`) (`admin check`).
    async fn staging_in_use(&self) -> CatalogResult<Vec<String>>;
    /// Uploads whose expiry has passed: unfinished ones, and completed device-family ones
    /// (kept until then only so a repeated completion gets the same answer).
    async fn expired_uploads(&self, limit: u32) -> CatalogResult<Vec<Upload>>;

    // --- upload sessions and the library (session family) ---
    /// The user's folder with this key, created on first use.
    async fn folder(&self, user: UserId, key: &str) -> CatalogResult<Folder>;
    async fn create_session(
        &self,
        ulid: &str,
        user: UserId,
        folder: &Folder,
        limits: &SessionLimits,
        expires_ms: i64,
    ) -> CatalogResult<Session>;
    async fn session(&self, ulid: &str) -> CatalogResult<Option<Session>>;
    /// Atomically reserves one file slot, refusing when the session is finished, expired or
    /// full (autofinish sessions hold one file).
    async fn reserve_file_slot(&self, ulid: &str) -> CatalogResult<Result<(), SlotRefusal>>;
    /// Atomically reserves `bytes` of the session's total; `false` when over `max_size`.
    async fn reserve_bytes(&self, ulid: &str, bytes: u64) -> CatalogResult<bool>;
    /// Gives back a slot (and bytes) of an upload that was refused or failed.
    async fn release_reservation(&self, ulid: &str, bytes: u64) -> CatalogResult<()>;
    /// Records a library file; with a session, finishes it when it autofinishes. A watch
    /// key already recorded answers `Conflict` (the file was ingested before); a session
    /// finished meanwhile answers `Gone` (a finish lists exactly the files it finished with).
    async fn add_file(&self, file: &NewLibraryFile) -> CatalogResult<LibraryFile>;
    /// Finishes a session (idempotent) and lists its files.
    async fn finish_session(&self, ulid: &str) -> CatalogResult<Vec<LibraryFile>>;
    async fn file(&self, user: UserId, file_id: &str) -> CatalogResult<Option<LibraryFile>>;
    async fn file_of_job(&self, job_id: i64) -> CatalogResult<Option<LibraryFile>>;
    /// Library files, oldest first; of one user when given.
    async fn list_files(&self, user: Option<UserId>) -> CatalogResult<Vec<LibraryFile>>;
    /// Deletes sessions that expired before `expired_before_ms` (their files stay in the
    /// library); returns how many.
    async fn delete_expired_sessions(&self, expired_before_ms: i64, limit: u32) -> CatalogResult<usize>;
    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>>;

    // --- signed targets used once ---
    /// Claims a one-time signed target before its body is read: `Claimed` for the first
    /// upload through it (held until `lease_until_ms`, or given back by
    /// [`Catalog::release_target`]); `Used` after a successful one; `InFlight` while another
    /// upload holds it. The row may be forgotten after `expires_ms` (the URL's own expiry).
    async fn claim_target(&self, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim>;
    /// Ends a claim: `used` marks the target used for good; otherwise the claim is given back.
    async fn release_target(&self, target: &str, used: bool) -> CatalogResult<()>;
    /// Forgets targets whose URLs have expired; returns how many.
    async fn forget_expired_targets(&self) -> CatalogResult<usize>;

    // --- device gallery ---
    async fn set_pull_url(&self, device: DeviceId, url: Option<&str>) -> CatalogResult<Device>;
    async fn devices_with_pull_url(&self) -> CatalogResult<Vec<Device>>;
    /// Records an event; an existing id, watch key or (device, source name) is a `Conflict`.
    async fn add_event(&self, event: &NewEvent) -> CatalogResult<Event>;
    /// Records harvested events, skipping names already known; returns how many are new.
    async fn harvest_events(&self, events: &[NewEvent]) -> CatalogResult<usize>;
    /// A device's events, newest first (ties by id, so pages are deterministic), not deleted,
    /// each with what media processing recorded for its file (one query for the listing).
    async fn events(
        &self,
        device: DeviceId,
        media_type: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> CatalogResult<Vec<(Event, Option<MediaInfo>)>>;
    async fn event(&self, device: DeviceId, id: &str) -> CatalogResult<Option<Event>>;
    async fn set_event_thumbnail(&self, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool>;
    /// Gives a harvested event its bytes (a pull finished).
    async fn set_event_content(
        &self,
        device: DeviceId,
        id: &str,
        blob: &BlobRecord,
        content_type: &str,
    ) -> CatalogResult<bool>;
    async fn delete_event(&self, device: DeviceId, id: &str) -> CatalogResult<bool>;
    /// Counts and sizes per media type in one aggregate query (deleted excluded).
    async fn event_stats(&self, device: DeviceId) -> CatalogResult<Vec<TypeStats>>;

    // --- media understanding ---
    /// Records what processing learnt about a blob, replacing an earlier result. With a
    /// thumbnail, its `place_bytes` runs first inside the thumbnail blob's critical section
    /// and its blob row is recorded without a hold: the result row keeps it alive (and goes
    /// with the processed blob). `NotFound` when the processed blob is gone (collected
    /// meanwhile); then nothing is recorded and no bytes are placed.
    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()>;
    /// Recorded results for these blobs, in one query; blobs not processed yet are absent.
    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>>;

    // --- jobs ---
    /// Queues a job; a job with the same `dedup_key` that is not finished is not queued twice.
    async fn enqueue_job(&self, kind: &str, payload: &serde_json::Value, dedup_key: Option<&str>)
    -> CatalogResult<i64>;
    /// Claims the oldest runnable job, leasing it for `lease` (an expired lease makes a
    /// running job claimable again, so a dead worker's job is retried).
    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>>;
    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()>;
    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>>;
}
