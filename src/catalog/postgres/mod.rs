//! The server catalog: PostgreSQL, for one Ferry or several replicas sharing a catalog.
//! Every method is one transaction on a pooled connection, and the critical sections the
//! [`Catalog`] contract asks for are PostgreSQL locks rather than a single writer:
//!
//! - committing and collecting a blob take a transaction-scoped advisory lock keyed by its
//!   SHA-256 (`blob_lock`), so they serialise per blob and never across blobs;
//! - every media write first increments its volume's change counter; the row lock that
//!   update takes orders the writers of one volume until they commit, so counter order is
//!   commit order (a change feed never skips) and two creates of one path see each other;
//! - jobs are claimed with `for update skip locked` under a lease;
//! - uniqueness is left to constraints, whose violations become [`CatalogError::Conflict`].
//!
//! SQL differs from `sqlite` only where the dialects do (placeholders, booleans, arrays).

mod blob_media;
mod blobs;
mod gallery;
mod identities;
mod intents;
mod jobs;
mod media;
mod sessions;
mod targets;
mod uploads;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use super::*;
use crate::domain::{DeviceId, GrantId, Level, Name, ScopeSet, Sha256Hex, TokenId, UserId, VolumeId};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long opening waits for the server before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgCatalog {
    pool: PgPool,
}

impl PgCatalog {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) and
    /// migrates it. Fails within [`CONNECT_TIMEOUT`] when the server cannot be reached, with a
    /// message naming the server (never the password); a database migrated by a newer Ferry is
    /// refused rather than misread.
    pub async fn open(url: &str) -> CatalogResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        // One direct connection first: the pool retries a refused connection until its
        // timeout and then reports only "timed out", where this reports the cause at once.
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(probe)) => probe.close().await?,
            Ok(Err(e)) => return Err(unreachable(&options, &cause(&e), io_kind(&e))),
            Err(_) => {
                let waited = format!("no answer within {}s", CONNECT_TIMEOUT.as_secs());
                return Err(unreachable(&options, &waited, std::io::ErrorKind::TimedOut));
            }
        }
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(CONNECT_TIMEOUT).connect_with(options).await?;
        check_schema_version(&pool).await?;
        MIGRATIONS.run(&pool).await.map_err(|e| CatalogError::Schema(e.to_string()))?;
        Ok(Self { pool })
    }
}

/// "HOST:PORT (database DB, user USER)": where a URL points, without its password.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{} (database {}, user {})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

fn unreachable(options: &PgConnectOptions, cause: &str, kind: std::io::ErrorKind) -> CatalogError {
    let message = format!("cannot connect to PostgreSQL at {}: {cause}", describe(options));
    CatalogError::Backend(sqlx::Error::Io(std::io::Error::new(kind, message)))
}

/// The server's own words for a failed connection (refused, unknown database, bad password).
fn cause(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_owned(),
        other => other.to_string(),
    }
}

fn io_kind(err: &sqlx::Error) -> std::io::ErrorKind {
    match err {
        sqlx::Error::Io(e) => e.kind(),
        _ => std::io::ErrorKind::Other,
    }
}

async fn check_schema_version(pool: &PgPool) -> CatalogResult<()> {
    let (exists,): (bool,) =
        sqlx::query_as("select to_regclass('_sqlx_migrations') is not null").fetch_one(pool).await?;
    if !exists {
        return Ok(());
    }
    let (newest,): (Option<i64>,) = sqlx::query_as("select max(version) from _sqlx_migrations").fetch_one(pool).await?;
    let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    match newest {
        Some(v) if v > known => Err(CatalogError::Schema(format!(
            "the catalog was migrated by a newer Ferry (schema {v}, this binary knows up to {known})"
        ))),
        _ => Ok(()),
    }
}

/// Maps a uniqueness violation to [`CatalogError::Conflict`] with a message people can act on.
pub(super) fn on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> CatalogError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => CatalogError::Conflict(message()),
        _ => CatalogError::from(err),
    }
}

/// Takes the transaction-scoped advisory lock named by `key` (released at commit or rollback).
/// Lock names are hashed into PostgreSQL's 64-bit advisory key space; a collision only makes
/// two unrelated names wait for each other.
pub(super) async fn advisory_lock(tx: &mut Transaction<'_, Postgres>, key: &str) -> CatalogResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut **tx).await?;
    Ok(())
}

pub(super) fn parse_hash(raw: &str) -> CatalogResult<Sha256Hex> {
    Sha256Hex::parse(raw).map_err(|e| CatalogError::Schema(e.to_string()))
}

/// A batch of hashes as one `text[]` parameter.
pub(super) fn hash_array(hashes: &[Sha256Hex]) -> Vec<&str> {
    hashes.iter().map(Sha256Hex::as_str).collect()
}

#[async_trait]
impl Catalog for PgCatalog {
    async fn ping(&self) -> CatalogResult<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> CatalogResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("select value from settings where key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|(value,)| value))
    }

    async fn setting_once(&self, key: &str, fresh: &[u8]) -> CatalogResult<Vec<u8>> {
        sqlx::query("insert into settings (key, value) values ($1, $2) on conflict (key) do nothing")
            .bind(key)
            .bind(fresh)
            .execute(&self.pool)
            .await?;
        Ok(self.setting(key).await?.expect("just stored"))
    }

    async fn create_user(&self, name: &Name, level: Level) -> CatalogResult<User> {
        identities::create_user(&self.pool, name, level).await
    }
    async fn user(&self, id: UserId) -> CatalogResult<Option<User>> {
        identities::user(&self.pool, id).await
    }
    async fn user_by_name(&self, name: &str) -> CatalogResult<Option<User>> {
        identities::user_by_name(&self.pool, name).await
    }
    async fn list_users(&self) -> CatalogResult<Vec<User>> {
        identities::list_users(&self.pool).await
    }
    async fn create_token(&self, user: UserId, scopes: ScopeSet, secret_hash: &str) -> CatalogResult<TokenRecord> {
        identities::create_token(&self.pool, user, scopes, secret_hash).await
    }
    async fn list_tokens(&self) -> CatalogResult<Vec<TokenRecord>> {
        identities::list_tokens(&self.pool).await
    }
    async fn revoke_token(&self, id: TokenId) -> CatalogResult<TokenRecord> {
        identities::revoke_token(&self.pool, id).await
    }
    async fn token_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>> {
        identities::token_by_hash(&self.pool, secret_hash).await
    }
    async fn create_device(&self, device: NewDevice) -> CatalogResult<Device> {
        identities::create_device(&self.pool, device).await
    }
    async fn list_devices(&self) -> CatalogResult<Vec<Device>> {
        identities::list_devices(&self.pool).await
    }
    async fn find_devices(&self, reference: &DeviceRef) -> CatalogResult<Vec<Device>> {
        identities::find_devices(&self.pool, reference).await
    }
    async fn device_by_key_hash(&self, key_hash: &str) -> CatalogResult<Option<(Device, User)>> {
        identities::device_by_key_hash(&self.pool, key_hash).await
    }
    async fn set_device_flag(&self, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device> {
        identities::set_device_flag(&self.pool, id, flag, on).await
    }
    async fn create_volume(&self, user: UserId, name: &Name) -> CatalogResult<Volume> {
        identities::create_volume(&self.pool, user, name).await
    }
    async fn list_volumes(&self) -> CatalogResult<Vec<Volume>> {
        identities::list_volumes(&self.pool).await
    }
    async fn volume_by_name(&self, user: UserId, name: &str) -> CatalogResult<Option<Volume>> {
        identities::volume_by_name(&self.pool, user, name).await
    }
    async fn create_grant(&self, grant: NewGrant) -> CatalogResult<Grant> {
        identities::create_grant(&self.pool, grant).await
    }
    async fn list_grants(&self) -> CatalogResult<Vec<Grant>> {
        identities::list_grants(&self.pool, None).await
    }
    async fn grant(&self, id: GrantId) -> CatalogResult<Option<Grant>> {
        identities::grant(&self.pool, id).await
    }
    async fn grants_of_device(&self, device: DeviceId) -> CatalogResult<Vec<Grant>> {
        identities::list_grants(&self.pool, Some(device)).await
    }
    async fn set_grant_disabled(&self, id: GrantId, disabled: bool) -> CatalogResult<Grant> {
        identities::set_grant_disabled(&self.pool, id, disabled).await
    }

    async fn blob(&self, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>> {
        blobs::blob(&self.pool, sha256).await
    }
    async fn all_blob_hashes(&self) -> CatalogResult<Vec<Sha256Hex>> {
        blobs::all_blob_hashes(&self.pool).await
    }
    async fn has_blobs(&self) -> CatalogResult<bool> {
        blobs::has_blobs(&self.pool).await
    }
    async fn holds(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool> {
        blobs::holds(&self.pool, user, sha256).await
    }
    async fn release_hold(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()> {
        blobs::release_hold(&self.pool, user, sha256).await
    }
    async fn commit_blob(&self, blob: &BlobRecord, holder: UserId, place_bytes: BlobStep) -> CatalogResult<()> {
        blobs::commit_blob(&self.pool, blob, holder, place_bytes).await
    }
    async fn collect_blob(
        &self,
        unused_for: Duration,
        delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
    ) -> CatalogResult<Option<Sha256Hex>> {
        blobs::collect_blob(&self.pool, unused_for, delete_bytes).await
    }
    async fn sweep_intents(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        intents::sweep(&self.pool, older_than, delete_bytes).await
    }
    async fn pending_intents(&self) -> CatalogResult<Vec<Sha256Hex>> {
        intents::pending(&self.pool).await
    }
    async fn held_by_device_hash(&self, user: UserId, device_hashes: &[Sha256Hex]) -> CatalogResult<Vec<BlobRecord>> {
        blobs::held_by_device_hash(&self.pool, user, device_hashes).await
    }

    async fn create_media(
        &self,
        volume: VolumeId,
        path: &str,
        content: &MediaContent,
        by: Updater,
    ) -> CatalogResult<MediaCreated> {
        media::create(&self.pool, volume, path, content, by).await
    }
    async fn update_media(
        &self,
        volume: VolumeId,
        media_id: i64,
        content: &MediaContent,
        expected_last_updated_ms: Option<i64>,
        by: Updater,
    ) -> CatalogResult<MediaUpdated> {
        media::update(&self.pool, volume, media_id, content, expected_last_updated_ms, by).await
    }
    async fn delete_media(&self, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool> {
        media::delete(&self.pool, volume, media_id, by).await
    }
    async fn media_item(&self, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>> {
        media::item(&self.pool, volume, media_id).await
    }
    async fn media_by_file_hash(&self, volume: VolumeId, file_hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>> {
        media::by_file_hash(&self.pool, volume, file_hashes).await
    }
    async fn media_changes(&self, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>> {
        media::changes(&self.pool, volume, after_seq, limit).await
    }
    async fn purge_tombstones(&self, retention: Duration) -> CatalogResult<usize> {
        media::purge_tombstones(&self.pool, retention).await
    }

    async fn create_upload(&self, upload: &NewUpload) -> CatalogResult<Upload> {
        uploads::create(&self.pool, upload).await
    }
    async fn upload(&self, upload_id: &str) -> CatalogResult<Option<Upload>> {
        uploads::get(&self.pool, upload_id).await
    }
    async fn upload_by_file_key(&self, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>> {
        uploads::by_file_key(&self.pool, user, file_key).await
    }
    async fn open_device_upload(
        &self,
        user: UserId,
        grant: GrantId,
        file_hash: &Sha256Hex,
        file_size: u64,
    ) -> CatalogResult<Option<Upload>> {
        uploads::open_device_upload(&self.pool, user, grant, file_hash, file_size).await
    }
    async fn renew_upload(&self, upload_id: &str, expires_ms: i64) -> CatalogResult<()> {
        uploads::renew(&self.pool, upload_id, expires_ms).await
    }
    async fn put_part(&self, upload_id: &str, part: &Part) -> CatalogResult<Option<String>> {
        uploads::put_part(&self.pool, upload_id, part).await
    }
    async fn parts(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        uploads::parts(&self.pool, upload_id).await
    }
    async fn claim_completion(&self, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim> {
        uploads::claim_completion(&self.pool, upload_id, lease).await
    }
    async fn renew_completion(&self, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool> {
        uploads::renew_completion(&self.pool, upload_id, token, lease).await
    }
    async fn release_completion(&self, upload_id: &str, token: &str) -> CatalogResult<()> {
        uploads::release_completion(&self.pool, upload_id, token).await
    }
    async fn complete_upload(
        &self,
        upload_id: &str,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<()> {
        uploads::complete(&self.pool, upload_id, result, content).await
    }
    async fn put_file(
        &self,
        file: &NewUpload,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<Upload> {
        uploads::put_file(&self.pool, file, result, content).await
    }
    async fn abort_upload(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        uploads::abort(&self.pool, upload_id).await
    }
    async fn delete_upload(&self, upload_id: &str) -> CatalogResult<Option<Vec<Part>>> {
        uploads::delete(&self.pool, upload_id).await
    }
    async fn staging_in_use(&self) -> CatalogResult<Vec<String>> {
        // a direct-mode upload id is `<ULID>.<the S3 server's id>`
        let rows: Vec<(String,)> = sqlx::query_as(
            "select staging_key from upload_parts
             union
             select 'uploads/' || substr(id, 1, 26) from uploads where id like '%.%'",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }
    async fn expired_uploads(&self, limit: u32) -> CatalogResult<Vec<Upload>> {
        uploads::expired(&self.pool, limit).await
    }

    async fn folder(&self, user: UserId, key: &str) -> CatalogResult<Folder> {
        sessions::folder(&self.pool, user, key).await
    }
    async fn create_session(
        &self,
        ulid: &str,
        user: UserId,
        folder: &Folder,
        limits: &SessionLimits,
        expires_ms: i64,
    ) -> CatalogResult<Session> {
        sessions::create_session(&self.pool, ulid, user, folder, limits, expires_ms).await
    }
    async fn session(&self, ulid: &str) -> CatalogResult<Option<Session>> {
        sessions::session(&self.pool, ulid).await
    }
    async fn reserve_file_slot(&self, ulid: &str) -> CatalogResult<Result<(), SlotRefusal>> {
        sessions::reserve_file_slot(&self.pool, ulid).await
    }
    async fn reserve_bytes(&self, ulid: &str, bytes: u64) -> CatalogResult<bool> {
        sessions::reserve_bytes(&self.pool, ulid, bytes).await
    }
    async fn release_reservation(&self, ulid: &str, bytes: u64) -> CatalogResult<()> {
        sessions::release_reservation(&self.pool, ulid, bytes).await
    }
    async fn add_file(&self, file: &NewLibraryFile) -> CatalogResult<LibraryFile> {
        sessions::add_file(&self.pool, file).await
    }
    async fn finish_session(&self, ulid: &str) -> CatalogResult<Vec<LibraryFile>> {
        sessions::finish_session(&self.pool, ulid).await
    }
    async fn file(&self, user: UserId, file_id: &str) -> CatalogResult<Option<LibraryFile>> {
        sessions::file(&self.pool, user, file_id).await
    }
    async fn file_of_job(&self, job_id: i64) -> CatalogResult<Option<LibraryFile>> {
        sessions::file_of_job(&self.pool, job_id).await
    }
    async fn list_files(&self, user: Option<UserId>) -> CatalogResult<Vec<LibraryFile>> {
        sessions::list_files(&self.pool, user).await
    }
    async fn delete_expired_sessions(&self, expired_before_ms: i64, limit: u32) -> CatalogResult<usize> {
        sessions::delete_expired_sessions(&self.pool, expired_before_ms, limit).await
    }
    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>> {
        jobs::get(&self.pool, job_id).await
    }

    async fn claim_target(&self, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim> {
        targets::claim(&self.pool, target, lease_until_ms, expires_ms).await
    }
    async fn release_target(&self, target: &str, used: bool) -> CatalogResult<()> {
        targets::release(&self.pool, target, used).await
    }
    async fn forget_expired_targets(&self) -> CatalogResult<usize> {
        targets::forget_expired(&self.pool).await
    }

    async fn set_pull_url(&self, device: DeviceId, url: Option<&str>) -> CatalogResult<Device> {
        gallery::set_pull_url(&self.pool, device, url).await?;
        let found = identities::find_devices(&self.pool, &DeviceRef::Id(device)).await?;
        found.into_iter().next().ok_or_else(|| CatalogError::NotFound(format!("device {device}")))
    }
    async fn devices_with_pull_url(&self) -> CatalogResult<Vec<Device>> {
        Ok(identities::list_devices(&self.pool).await?.into_iter().filter(|d| d.pull_url.is_some()).collect())
    }
    async fn add_event(&self, event: &NewEvent) -> CatalogResult<Event> {
        gallery::add_event(&self.pool, event).await
    }
    async fn harvest_events(&self, events: &[NewEvent]) -> CatalogResult<usize> {
        gallery::harvest(&self.pool, events).await
    }
    async fn events(
        &self,
        device: DeviceId,
        media_type: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> CatalogResult<Vec<(Event, Option<MediaInfo>)>> {
        gallery::list(&self.pool, device, media_type, limit, offset).await
    }
    async fn event(&self, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
        gallery::get(&self.pool, device, id).await
    }
    async fn set_event_thumbnail(&self, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool> {
        gallery::set_thumbnail(&self.pool, device, id, thumbnail).await
    }
    async fn set_event_content(
        &self,
        device: DeviceId,
        id: &str,
        blob: &BlobRecord,
        content_type: &str,
    ) -> CatalogResult<bool> {
        gallery::set_content(&self.pool, device, id, blob, content_type).await
    }
    async fn delete_event(&self, device: DeviceId, id: &str) -> CatalogResult<bool> {
        gallery::delete(&self.pool, device, id).await
    }
    async fn event_stats(&self, device: DeviceId) -> CatalogResult<Vec<TypeStats>> {
        gallery::stats(&self.pool, device).await
    }

    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()> {
        blob_media::record(&self.pool, info, thumbnail).await
    }
    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
        blob_media::infos(&self.pool, hashes).await
    }

    async fn enqueue_job(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> CatalogResult<i64> {
        jobs::enqueue(&self.pool, kind, payload, dedup_key).await
    }
    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>> {
        jobs::claim(&self.pool, lease).await
    }
    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
        jobs::finish(&self.pool, job_id, outcome).await
    }
    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
        jobs::list(&self.pool, status).await
    }
}
