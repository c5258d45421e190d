//! The library of the upload-session family: folders, upload sessions with their limits, and
//! the files stored in folders (by session uploads, remote fetches, blob imports, watch
//! folders). Reservations are single guarded updates, so concurrent uploads to one session
//! cannot pass its limits.

use async_trait::async_trait;

use super::db::Exec;
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, FILE, SESSION};
use super::*;
use crate::clock::now_ms;
use crate::domain::UserId;

#[async_trait]
pub trait Library: Send + Sync {
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
    /// Deletes a library file (of `user` when given); its content stays held for the
    /// retention. `false` when there is no such file.
    async fn delete_file(&self, user: Option<UserId>, file_id: &str) -> CatalogResult<bool>;
    /// Deletes sessions that expired before `expired_before_ms` (their files stay in the
    /// library); returns how many.
    async fn delete_expired_sessions(&self, expired_before_ms: i64, limit: u32) -> CatalogResult<usize>;
}

async fn session_in(exec: &mut dyn Exec, ulid: &str) -> CatalogResult<Option<Session>> {
    let sql = format!("select {SESSION} from sessions s join folders f on f.id = s.folder_id where s.ulid = $1");
    exec.opt(&sql, params![ulid]).await?.map(|r| rows::session(&r, 0)).transpose()
}

async fn files_where(exec: &mut dyn Exec, condition: &str, params: &[db::Value]) -> CatalogResult<Vec<LibraryFile>> {
    let sql = format!(
        "select {FILE} from files x join folders f on f.id = x.folder_id where {condition} order by x.created_ms, x.id"
    );
    let rows = exec.rows(&sql, params).await?;
    rows.iter().map(|r| rows::library_file(r, 0)).collect()
}

#[async_trait]
impl Library for SqlCatalog {
    async fn folder(&self, user: UserId, key: &str) -> CatalogResult<Folder> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "insert into folders (user_id, folder_key, created_ms) values ($1, $2, $3) on conflict do nothing",
            params![user.0, key, now_ms()],
        )
        .await?;
        let id = tx.one("select id from folders where user_id = $1 and folder_key = $2", params![user.0, key]).await?;
        tx.commit().await?;
        Ok(Folder { id: id.get(0)?, user_id: user, key: key.to_owned() })
    }

    async fn create_session(
        &self,
        ulid: &str,
        user: UserId,
        folder: &Folder,
        limits: &SessionLimits,
        expires_ms: i64,
    ) -> CatalogResult<Session> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "insert into sessions (ulid, user_id, folder_id, max_filesize, max_files, max_size, file_extensions,
                                   no_transcode, hide_response, autofinish, expires_ms, created_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            params![
                ulid,
                user.0,
                folder.id,
                limits.max_filesize,
                limits.max_files,
                limits.max_size,
                limits.file_extensions.as_ref().map(|list| list.join(",")),
                limits.no_transcode,
                limits.hide_response,
                limits.autofinish,
                expires_ms,
                now_ms()
            ],
        )
        .await?;
        let session = session_in(&mut tx, ulid).await?;
        tx.commit().await?;
        session.ok_or_else(|| CatalogError::NotFound(format!("session {ulid}")))
    }

    async fn session(&self, ulid: &str) -> CatalogResult<Option<Session>> {
        session_in(&mut self.db.read().await?, ulid).await
    }

    async fn reserve_file_slot(&self, ulid: &str) -> CatalogResult<Result<(), SlotRefusal>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let taken = tx
            .exec(
                "update sessions set reserved_files = reserved_files + 1
                 where ulid = $1 and finished_ms is null and expires_ms > $2
                   and (max_files is null or reserved_files < max_files)
                   and (not autofinish or reserved_files < 1)",
                params![ulid, now],
            )
            .await?;
        let session = session_in(&mut tx, ulid).await?;
        tx.commit().await?;
        if taken == 1 {
            return Ok(Ok(()));
        }
        // refused: say why
        let Some(s) = session else { return Ok(Err(SlotRefusal::Missing)) };
        Ok(Err(if s.finished {
            SlotRefusal::Finished
        } else if s.expires_ms <= now {
            SlotRefusal::Expired
        } else {
            SlotRefusal::TooManyFiles
        }))
    }

    async fn reserve_bytes(&self, ulid: &str, bytes: u64) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let taken = tx
            .exec(
                "update sessions set reserved_bytes = reserved_bytes + $1
                 where ulid = $2 and (max_size is null or reserved_bytes + $1 <= max_size)",
                params![bytes, ulid],
            )
            .await?;
        tx.commit().await?;
        Ok(taken == 1)
    }

    async fn release_reservation(&self, ulid: &str, bytes: u64) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        let dialect = tx.dialect();
        let (files, size) = (dialect.greatest("reserved_files - 1", "0"), dialect.greatest("reserved_bytes - $1", "0"));
        let sql = format!("update sessions set reserved_files = {files}, reserved_bytes = {size} where ulid = $2");
        tx.exec(&sql, params![bytes, ulid]).await?;
        tx.commit().await
    }

    async fn add_file(&self, file: &NewLibraryFile) -> CatalogResult<LibraryFile> {
        let mut tx = self.db.begin().await?;
        if let Some(ulid) = &file.session_ulid {
            // a finish lists exactly the files it finished with: on PostgreSQL the share lock
            // makes a finish (which updates the row) wait for this insert, or this check see
            // its result; SQLite's single writer makes them one step
            let lock = tx.dialect().for_share();
            let sql = format!("select 1 from sessions where ulid = $1 and finished_ms is null{lock}");
            if tx.opt(&sql, params![ulid]).await?.is_none() {
                return Err(CatalogError::Gone(format!(
                    "upload session {ulid} was finished while the file was arriving"
                )));
            }
        }
        let id = ulid::Ulid::new().to_string();
        tx.exec(
            "insert into files (id, user_id, folder_id, session_ulid, job_id, watch_key, title, sha256, size,
                                content_type, created_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            params![
                &id,
                file.user_id.0,
                file.folder_id,
                &file.session_ulid,
                file.job_id,
                &file.watch_key,
                &file.title,
                &file.blob.sha256,
                file.blob.size,
                &file.content_type,
                now_ms()
            ],
        )
        .await
        .map_err(|e| e.on_unique(|| "this watched file was ingested before".into()))?;
        if let Some(ulid) = &file.session_ulid {
            tx.exec(
                "update sessions set finished_ms = coalesce(finished_ms, $1) where ulid = $2 and autofinish",
                params![now_ms(), ulid],
            )
            .await?;
        }
        let stored = files_where(&mut tx, "x.id = $1", params![&id]).await?.pop();
        tx.commit().await?;
        stored.ok_or_else(|| CatalogError::NotFound(format!("file {id}")))
    }

    async fn finish_session(&self, ulid: &str) -> CatalogResult<Vec<LibraryFile>> {
        let mut tx = self.db.begin().await?;
        tx.exec("update sessions set finished_ms = coalesce(finished_ms, $1) where ulid = $2", params![now_ms(), ulid])
            .await?;
        let files = files_where(&mut tx, "x.session_ulid = $1", params![ulid]).await?;
        tx.commit().await?;
        Ok(files)
    }

    async fn file(&self, user: UserId, file_id: &str) -> CatalogResult<Option<LibraryFile>> {
        let mut conn = self.db.read().await?;
        Ok(files_where(&mut conn, "x.id = $1 and x.user_id = $2", params![file_id, user.0]).await?.pop())
    }

    async fn file_of_job(&self, job_id: i64) -> CatalogResult<Option<LibraryFile>> {
        Ok(files_where(&mut self.db.read().await?, "x.job_id = $1", params![job_id]).await?.pop())
    }

    async fn list_files(&self, user: Option<UserId>) -> CatalogResult<Vec<LibraryFile>> {
        let mut conn = self.db.read().await?;
        match user {
            Some(user) => files_where(&mut conn, "x.user_id = $1", params![user.0]).await,
            None => files_where(&mut conn, "true", &[]).await,
        }
    }

    async fn delete_file(&self, user: Option<UserId>, file_id: &str) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let sql = "delete from files where id = $1 and ($2 is null or user_id = $2) returning user_id, sha256";
        let Some(deleted) = tx.opt(sql, params![file_id, user.map(|u| u.0)]).await? else { return Ok(false) };
        let (owner, sha256): (i64, Sha256Hex) = (deleted.get(0)?, deleted.get(1)?);
        check_hold(&mut tx, UserId(owner), &sha256, HoldCheck::Deleted, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_expired_sessions(&self, expired_before_ms: i64, limit: u32) -> CatalogResult<usize> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .exec(
                &format!(
                    "delete from sessions where ulid in
                       (select ulid from sessions where expires_ms < $1 order by expires_ms limit {limit})"
                ),
                params![expired_before_ms],
            )
            .await?;
        tx.commit().await?;
        Ok(done as usize)
    }
}
