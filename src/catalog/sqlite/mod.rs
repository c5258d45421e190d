//! The embedded catalog: SQLite in WAL mode. Writes go through a pool of exactly one
//! connection, so write transactions never fail with SQLITE_BUSY; reads use a separate pool
//! and see the last committed state. The blob critical section the [`Catalog`] contract asks
//! for is the `placement` lock: commits hold it shared while they place bytes (outside the
//! writer, so their fsyncs overlap) and record them, as does recording a thumbnail; collection
//! holds it exclusively while it removes the rows and then the bytes. The lock is in-process:
//! one server per data directory (`admin jobs run` beside a server does not collect).

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::*;
use crate::domain::{DeviceId, GrantId, Level, Name, ScopeSet, Sha256Hex, TokenId, UserId, VolumeId};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteCatalog {
    reader: SqlitePool,
    writer: SqlitePool,
    /// The blob critical section (see [`Catalog`]): commits place bytes under a shared hold,
    /// so concurrent uploads move and fsync their files at once instead of one after another
    /// on the single writer connection; collection holds it exclusively.
    placement: tokio::sync::RwLock<()>,
}

impl SqliteCatalog {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    /// A database migrated by a newer Ferry is refused rather than misread.
    pub async fn open(url: &str) -> CatalogResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against process crashes; fsync happens at checkpoints.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        check_schema_version(&writer).await?;
        MIGRATIONS.run(&writer).await.map_err(|e| CatalogError::Schema(e.to_string()))?;
        let reader = SqlitePoolOptions::new().max_connections(8).connect_with(options.read_only(true)).await?;
        Ok(Self { reader, writer, placement: tokio::sync::RwLock::new(()) })
    }
}

async fn check_schema_version(pool: &SqlitePool) -> CatalogResult<()> {
    let exists: Option<(String,)> =
        sqlx::query_as("select name from sqlite_master where type = 'table' and name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Ok(());
    }
    let newest: Option<(i64,)> =
        sqlx::query_as("select max(version) from _sqlx_migrations").fetch_optional(pool).await?;
    let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    match newest {
        Some((v,)) if v > known => Err(CatalogError::Schema(format!(
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

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn ping(&self) -> CatalogResult<()> {
        sqlx::query("select 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> CatalogResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("select value from settings where key = ?").bind(key).fetch_optional(&self.writer).await?;
        Ok(row.map(|(value,)| value))
    }

    async fn setting_once(&self, key: &str, fresh: &[u8]) -> CatalogResult<Vec<u8>> {
        sqlx::query("insert into settings (key, value) values (?, ?) on conflict (key) do nothing")
            .bind(key)
            .bind(fresh)
            .execute(&self.writer)
            .await?;
        Ok(self.setting(key).await?.expect("just stored"))
    }

    async fn create_user(&self, name: &Name, level: Level) -> CatalogResult<User> {
        identities::create_user(&self.writer, name, level).await
    }
    async fn user(&self, id: UserId) -> CatalogResult<Option<User>> {
        identities::user(&self.reader, id).await
    }
    async fn user_by_name(&self, name: &str) -> CatalogResult<Option<User>> {
        identities::user_by_name(&self.reader, name).await
    }
    async fn list_users(&self) -> CatalogResult<Vec<User>> {
        identities::list_users(&self.reader).await
    }
    async fn create_token(&self, user: UserId, scopes: ScopeSet, secret_hash: &str) -> CatalogResult<TokenRecord> {
        identities::create_token(&self.writer, user, scopes, secret_hash).await
    }
    async fn list_tokens(&self) -> CatalogResult<Vec<TokenRecord>> {
        identities::list_tokens(&self.reader).await
    }
    async fn revoke_token(&self, id: TokenId) -> CatalogResult<TokenRecord> {
        identities::revoke_token(&self.writer, id).await
    }
    async fn token_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>> {
        identities::token_by_hash(&self.reader, secret_hash).await
    }
    async fn create_device(&self, device: NewDevice) -> CatalogResult<Device> {
        identities::create_device(&self.writer, device).await
    }
    async fn list_devices(&self) -> CatalogResult<Vec<Device>> {
        identities::list_devices(&self.reader).await
    }
    async fn find_devices(&self, reference: &DeviceRef) -> CatalogResult<Vec<Device>> {
        identities::find_devices(&self.reader, reference).await
    }
    async fn device_by_key_hash(&self, key_hash: &str) -> CatalogResult<Option<(Device, User)>> {
        identities::device_by_key_hash(&self.reader, key_hash).await
    }
    async fn set_device_flag(&self, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device> {
        identities::set_device_flag(&self.writer, id, flag, on).await
    }
    async fn create_volume(&self, user: UserId, name: &Name) -> CatalogResult<Volume> {
        identities::create_volume(&self.writer, user, name).await
    }
    async fn list_volumes(&self) -> CatalogResult<Vec<Volume>> {
        identities::list_volumes(&self.reader).await
    }
    async fn volume_by_name(&self, user: UserId, name: &str) -> CatalogResult<Option<Volume>> {
        identities::volume_by_name(&self.reader, user, name).await
    }
    async fn create_grant(&self, grant: NewGrant) -> CatalogResult<Grant> {
        identities::create_grant(&self.writer, grant).await
    }
    async fn list_grants(&self) -> CatalogResult<Vec<Grant>> {
        identities::list_grants(&self.reader, None).await
    }
    async fn grant(&self, id: GrantId) -> CatalogResult<Option<Grant>> {
        identities::grant(&self.reader, id).await
    }
    async fn grants_of_device(&self, device: DeviceId) -> CatalogResult<Vec<Grant>> {
        identities::list_grants(&self.reader, Some(device)).await
    }
    async fn set_grant_disabled(&self, id: GrantId, disabled: bool) -> CatalogResult<Grant> {
        identities::set_grant_disabled(&self.writer, id, disabled).await
    }

    async fn blob(&self, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>> {
        blobs::blob(&self.reader, sha256).await
    }
    async fn all_blob_hashes(&self) -> CatalogResult<Vec<Sha256Hex>> {
        blobs::all_blob_hashes(&self.reader).await
    }
    async fn has_blobs(&self) -> CatalogResult<bool> {
        blobs::has_blobs(&self.reader).await
    }
    async fn holds(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool> {
        blobs::holds(&self.reader, user, sha256).await
    }
    async fn release_hold(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()> {
        blobs::release_hold(&self.writer, user, sha256).await
    }
    async fn commit_blob(&self, blob: &BlobRecord, holder: UserId, place_bytes: BlobStep) -> CatalogResult<()> {
        let _placing = self.placement.read().await;
        blobs::commit_blob(&self.reader, &self.writer, blob, holder, place_bytes).await
    }
    async fn collect_blob(
        &self,
        unused_for: Duration,
        delete_bytes: Box<dyn FnOnce(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send>,
    ) -> CatalogResult<Option<Sha256Hex>> {
        // most passes find nothing: look without the lock, so an idle collector never holds
        // back the uploads in flight (a waiting exclusive lock queues new shared holders)
        if !blobs::has_collectable(&self.reader, unused_for).await? {
            return Ok(None);
        }
        let _collecting = self.placement.write().await;
        blobs::collect_blob(&self.writer, unused_for, delete_bytes).await
    }
    async fn sweep_intents(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        // as with collection: look first, so an idle sweep never holds back uploads
        if intents::pending(&self.reader).await?.is_empty() {
            return Ok(0);
        }
        let _sweeping = self.placement.write().await;
        intents::sweep(&self.writer, older_than, delete_bytes).await
    }
    async fn pending_intents(&self) -> CatalogResult<Vec<Sha256Hex>> {
        intents::pending(&self.reader).await
    }

    async fn held_by_device_hash(&self, user: UserId, device_hashes: &[Sha256Hex]) -> CatalogResult<Vec<BlobRecord>> {
        blobs::held_by_device_hash(&self.reader, user, device_hashes).await
    }

    async fn create_media(
        &self,
        volume: VolumeId,
        path: &str,
        content: &MediaContent,
        by: Updater,
    ) -> CatalogResult<MediaCreated> {
        media::create(&self.writer, volume, path, content, by).await
    }
    async fn update_media(
        &self,
        volume: VolumeId,
        media_id: i64,
        content: &MediaContent,
        expected_last_updated_ms: Option<i64>,
        by: Updater,
    ) -> CatalogResult<MediaUpdated> {
        media::update(&self.writer, volume, media_id, content, expected_last_updated_ms, by).await
    }
    async fn delete_media(&self, volume: VolumeId, media_id: i64, by: Updater) -> CatalogResult<bool> {
        media::delete(&self.writer, volume, media_id, by).await
    }
    async fn media_item(&self, volume: VolumeId, media_id: i64) -> CatalogResult<Option<MediaItem>> {
        media::item(&self.reader, volume, media_id).await
    }
    async fn media_by_file_hash(&self, volume: VolumeId, file_hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaItem>> {
        media::by_file_hash(&self.reader, volume, file_hashes).await
    }
    async fn media_changes(&self, volume: VolumeId, after_seq: i64, limit: u32) -> CatalogResult<Vec<MediaItem>> {
        media::changes(&self.reader, volume, after_seq, limit).await
    }
    async fn purge_tombstones(&self, retention: Duration) -> CatalogResult<usize> {
        media::purge_tombstones(&self.writer, retention).await
    }

    async fn create_upload(&self, upload: &NewUpload) -> CatalogResult<Upload> {
        uploads::create(&self.writer, upload).await
    }
    async fn upload(&self, upload_id: &str) -> CatalogResult<Option<Upload>> {
        uploads::get(&self.reader, upload_id).await
    }
    async fn upload_by_file_key(&self, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>> {
        uploads::by_file_key(&self.reader, user, file_key).await
    }
    async fn open_device_upload(
        &self,
        user: UserId,
        grant: GrantId,
        file_hash: &Sha256Hex,
        file_size: u64,
    ) -> CatalogResult<Option<Upload>> {
        uploads::open_device_upload(&self.reader, user, grant, file_hash, file_size).await
    }
    async fn renew_upload(&self, upload_id: &str, expires_ms: i64) -> CatalogResult<()> {
        uploads::renew(&self.writer, upload_id, expires_ms).await
    }
    async fn put_part(&self, upload_id: &str, part: &Part) -> CatalogResult<Option<String>> {
        uploads::put_part(&self.writer, upload_id, part).await
    }
    async fn parts(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        uploads::parts(&self.reader, upload_id).await
    }
    async fn claim_completion(&self, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim> {
        uploads::claim_completion(&self.writer, upload_id, lease).await
    }
    async fn renew_completion(&self, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool> {
        uploads::renew_completion(&self.writer, upload_id, token, lease).await
    }
    async fn release_completion(&self, upload_id: &str, token: &str) -> CatalogResult<()> {
        uploads::release_completion(&self.writer, upload_id, token).await
    }
    async fn complete_upload(
        &self,
        upload_id: &str,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<()> {
        uploads::complete(&self.writer, upload_id, result, content).await
    }
    async fn put_file(
        &self,
        file: &NewUpload,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<Upload> {
        uploads::put_file(&self.writer, file, result, content).await
    }
    async fn abort_upload(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        uploads::abort(&self.writer, upload_id).await
    }
    async fn delete_upload(&self, upload_id: &str) -> CatalogResult<Option<Vec<Part>>> {
        uploads::delete(&self.writer, upload_id).await
    }
    async fn staging_in_use(&self) -> CatalogResult<Vec<String>> {
        // a direct-mode upload id is `<ULID>.<the S3 server's id>`
        let rows: Vec<(String,)> = sqlx::query_as(
            "select staging_key from upload_parts
             union
             select 'uploads/' || substr(id, 1, 26) from uploads where id like '%.%'",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }
    async fn expired_uploads(&self, limit: u32) -> CatalogResult<Vec<Upload>> {
        uploads::expired(&self.reader, limit).await
    }

    async fn folder(&self, user: UserId, key: &str) -> CatalogResult<Folder> {
        sessions::folder(&self.writer, user, key).await
    }
    async fn create_session(
        &self,
        ulid: &str,
        user: UserId,
        folder: &Folder,
        limits: &SessionLimits,
        expires_ms: i64,
    ) -> CatalogResult<Session> {
        sessions::create_session(&self.writer, ulid, user, folder, limits, expires_ms).await
    }
    async fn session(&self, ulid: &str) -> CatalogResult<Option<Session>> {
        sessions::session(&self.reader, ulid).await
    }
    async fn reserve_file_slot(&self, ulid: &str) -> CatalogResult<Result<(), SlotRefusal>> {
        sessions::reserve_file_slot(&self.writer, ulid).await
    }
    async fn reserve_bytes(&self, ulid: &str, bytes: u64) -> CatalogResult<bool> {
        sessions::reserve_bytes(&self.writer, ulid, bytes).await
    }
    async fn release_reservation(&self, ulid: &str, bytes: u64) -> CatalogResult<()> {
        sessions::release_reservation(&self.writer, ulid, bytes).await
    }
    async fn add_file(&self, file: &NewLibraryFile) -> CatalogResult<LibraryFile> {
        sessions::add_file(&self.writer, file).await
    }
    async fn finish_session(&self, ulid: &str) -> CatalogResult<Vec<LibraryFile>> {
        sessions::finish_session(&self.writer, ulid).await
    }
    async fn file(&self, user: UserId, file_id: &str) -> CatalogResult<Option<LibraryFile>> {
        sessions::file(&self.reader, user, file_id).await
    }
    async fn file_of_job(&self, job_id: i64) -> CatalogResult<Option<LibraryFile>> {
        sessions::file_of_job(&self.reader, job_id).await
    }
    async fn list_files(&self, user: Option<UserId>) -> CatalogResult<Vec<LibraryFile>> {
        sessions::list_files(&self.reader, user).await
    }
    async fn delete_expired_sessions(&self, expired_before_ms: i64, limit: u32) -> CatalogResult<usize> {
        sessions::delete_expired_sessions(&self.writer, expired_before_ms, limit).await
    }
    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>> {
        jobs::get(&self.reader, job_id).await
    }

    async fn claim_target(&self, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim> {
        targets::claim(&self.writer, target, lease_until_ms, expires_ms).await
    }
    async fn release_target(&self, target: &str, used: bool) -> CatalogResult<()> {
        targets::release(&self.writer, target, used).await
    }
    async fn forget_expired_targets(&self) -> CatalogResult<usize> {
        targets::forget_expired(&self.writer).await
    }

    async fn set_pull_url(&self, device: DeviceId, url: Option<&str>) -> CatalogResult<Device> {
        gallery::set_pull_url(&self.writer, device, url).await?;
        let found = identities::find_devices(&self.writer, &DeviceRef::Id(device)).await?;
        found.into_iter().next().ok_or_else(|| CatalogError::NotFound(format!("device {device}")))
    }
    async fn devices_with_pull_url(&self) -> CatalogResult<Vec<Device>> {
        Ok(identities::list_devices(&self.reader).await?.into_iter().filter(|d| d.pull_url.is_some()).collect())
    }
    async fn add_event(&self, event: &NewEvent) -> CatalogResult<Event> {
        gallery::add_event(&self.writer, event).await
    }
    async fn harvest_events(&self, events: &[NewEvent]) -> CatalogResult<usize> {
        gallery::harvest(&self.writer, events).await
    }
    async fn events(
        &self,
        device: DeviceId,
        media_type: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> CatalogResult<Vec<(Event, Option<MediaInfo>)>> {
        gallery::list(&self.reader, device, media_type, limit, offset).await
    }
    async fn event(&self, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
        gallery::get(&self.reader, device, id).await
    }
    async fn set_event_thumbnail(&self, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool> {
        gallery::set_thumbnail(&self.writer, device, id, thumbnail).await
    }
    async fn set_event_content(
        &self,
        device: DeviceId,
        id: &str,
        blob: &BlobRecord,
        content_type: &str,
    ) -> CatalogResult<bool> {
        gallery::set_content(&self.writer, device, id, blob, content_type).await
    }
    async fn delete_event(&self, device: DeviceId, id: &str) -> CatalogResult<bool> {
        gallery::delete(&self.writer, device, id).await
    }
    async fn event_stats(&self, device: DeviceId) -> CatalogResult<Vec<TypeStats>> {
        gallery::stats(&self.reader, device).await
    }

    async fn record_media(&self, info: &NewMediaInfo, thumbnail: Option<(BlobRecord, BlobStep)>) -> CatalogResult<()> {
        // a thumbnail's bytes are placed like an upload's (collection deletes bytes after its
        // transaction, so the writer alone no longer keeps the two apart)
        let _placing = self.placement.read().await;
        blob_media::record(&self.reader, &self.writer, info, thumbnail).await
    }
    async fn media_info(&self, hashes: &[Sha256Hex]) -> CatalogResult<Vec<MediaInfo>> {
        blob_media::infos(&self.reader, hashes).await
    }

    async fn enqueue_job(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> CatalogResult<i64> {
        jobs::enqueue(&self.writer, kind, payload, dedup_key).await
    }
    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>> {
        jobs::claim(&self.writer, lease).await
    }
    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
        jobs::finish(&self.writer, job_id, outcome).await
    }
    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
        jobs::list(&self.reader, status).await
    }
}
