//! Upload sessions, folders and library files on SQLite. Reservations are single guarded
//! UPDATEs, so concurrent uploads to one session cannot pass its limits.

use sqlx::{AssertSqlSafe, SqlitePool};

use super::on_unique;
use crate::catalog::rows::SessionRow;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{Sha256Hex, UserId};

pub async fn folder(writer: &SqlitePool, user: UserId, key: &str) -> CatalogResult<Folder> {
    sqlx::query("insert into folders (user_id, folder_key, created_ms) values (?, ?, ?) on conflict do nothing")
        .bind(user.0)
        .bind(key)
        .bind(now_ms())
        .execute(writer)
        .await?;
    let (id,): (i64,) = sqlx::query_as("select id from folders where user_id = ? and folder_key = ?")
        .bind(user.0)
        .bind(key)
        .fetch_one(writer)
        .await?;
    Ok(Folder { id, user_id: user, key: key.to_owned() })
}

pub async fn create_session(
    writer: &SqlitePool,
    ulid: &str,
    user: UserId,
    folder: &Folder,
    limits: &SessionLimits,
    expires_ms: i64,
) -> CatalogResult<Session> {
    sqlx::query(
        "insert into sessions (ulid, user_id, folder_id, max_filesize, max_files, max_size, file_extensions,
                               no_transcode, hide_response, autofinish, expires_ms, created_ms)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ulid)
    .bind(user.0)
    .bind(folder.id)
    .bind(limits.max_filesize.map(column_size).transpose()?)
    .bind(limits.max_files.map(column_size).transpose()?)
    .bind(limits.max_size.map(column_size).transpose()?)
    .bind(limits.file_extensions.as_ref().map(|list| list.join(",")))
    .bind(limits.no_transcode)
    .bind(limits.hide_response)
    .bind(limits.autofinish)
    .bind(expires_ms)
    .bind(now_ms())
    .execute(writer)
    .await?;
    session(writer, ulid).await?.ok_or_else(|| CatalogError::NotFound(format!("session {ulid}")))
}

pub async fn session(pool: &SqlitePool, ulid: &str) -> CatalogResult<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "select s.ulid, s.user_id, s.folder_id, f.folder_key, s.max_filesize, s.max_files, s.max_size, s.file_extensions,
                s.no_transcode, s.hide_response, s.autofinish, s.reserved_files, s.reserved_bytes, s.finished_ms, s.expires_ms
         from sessions s join folders f on f.id = s.folder_id where s.ulid = ?",
    )
    .bind(ulid)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Session::from))
}

pub async fn reserve_file_slot(writer: &SqlitePool, ulid: &str) -> CatalogResult<Result<(), SlotRefusal>> {
    let now = now_ms();
    let taken = sqlx::query(
        "update sessions set reserved_files = reserved_files + 1
         where ulid = ? and finished_ms is null and expires_ms > ?
           and (max_files is null or reserved_files < max_files)
           and (autofinish = 0 or reserved_files < 1)",
    )
    .bind(ulid)
    .bind(now)
    .execute(writer)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    // refused: say why
    let Some(s) = session(writer, ulid).await? else { return Ok(Err(SlotRefusal::Missing)) };
    Ok(Err(if s.finished {
        SlotRefusal::Finished
    } else if s.expires_ms <= now {
        SlotRefusal::Expired
    } else {
        SlotRefusal::TooManyFiles
    }))
}

pub async fn reserve_bytes(writer: &SqlitePool, ulid: &str, bytes: u64) -> CatalogResult<bool> {
    let taken = sqlx::query(
        "update sessions set reserved_bytes = reserved_bytes + ?1
         where ulid = ?2 and (max_size is null or reserved_bytes + ?1 <= max_size)",
    )
    .bind(bytes as i64)
    .bind(ulid)
    .execute(writer)
    .await?;
    Ok(taken.rows_affected() == 1)
}

pub async fn release_reservation(writer: &SqlitePool, ulid: &str, bytes: u64) -> CatalogResult<()> {
    sqlx::query(
        "update sessions set reserved_files = max(reserved_files - 1, 0), reserved_bytes = max(reserved_bytes - ?, 0)
         where ulid = ?",
    )
    .bind(bytes as i64)
    .bind(ulid)
    .execute(writer)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct FileRow {
    id: String,
    user_id: i64,
    folder_key: String,
    session_ulid: Option<String>,
    title: String,
    sha256: String,
    size: i64,
    content_type: String,
    created_ms: i64,
}

impl FileRow {
    fn into_file(self) -> CatalogResult<LibraryFile> {
        Ok(LibraryFile {
            file_id: self.id,
            user_id: UserId(self.user_id),
            folder_key: self.folder_key,
            session_ulid: self.session_ulid,
            title: self.title,
            sha256: Sha256Hex::parse(&self.sha256).map_err(|e| CatalogError::Schema(e.to_string()))?,
            size: self.size as u64,
            content_type: self.content_type,
            created_ms: self.created_ms,
        })
    }
}

const FILE_COLUMNS: &str =
    "x.id, x.user_id, f.folder_key, x.session_ulid, x.title, x.sha256, x.size, x.content_type, x.created_ms";

async fn files_where<'q, T>(pool: &SqlitePool, condition: &str, bind: T) -> CatalogResult<Vec<LibraryFile>>
where
    T: 'q + Send + sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    let rows: Vec<FileRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {FILE_COLUMNS} from files x join folders f on f.id = x.folder_id where {condition} order by x.created_ms, x.id"
    )))
    .bind(bind)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(FileRow::into_file).collect()
}

pub async fn add_file(writer: &SqlitePool, file: &NewLibraryFile) -> CatalogResult<LibraryFile> {
    let mut tx = writer.begin().await?;
    let id = ulid::Ulid::new().to_string();
    sqlx::query(
        "insert into files (id, user_id, folder_id, session_ulid, job_id, watch_key, title, sha256, size, content_type, created_ms)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(file.user_id.0)
    .bind(file.folder_id)
    .bind(&file.session_ulid)
    .bind(file.job_id)
    .bind(&file.watch_key)
    .bind(&file.title)
    .bind(file.blob.sha256.as_str())
    .bind(file.blob.size as i64)
    .bind(&file.content_type)
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .map_err(|e| on_unique(e, || "this watched file was ingested before".into()))?;
    if let Some(ulid) = &file.session_ulid {
        sqlx::query("update sessions set finished_ms = coalesce(finished_ms, ?) where ulid = ? and autofinish = 1")
            .bind(now_ms())
            .bind(ulid)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    files_where(writer, "x.id = ?", id.as_str())
        .await?
        .pop()
        .ok_or_else(|| CatalogError::NotFound(format!("file {id}")))
}

pub async fn finish_session(writer: &SqlitePool, ulid: &str) -> CatalogResult<Vec<LibraryFile>> {
    sqlx::query("update sessions set finished_ms = coalesce(finished_ms, ?) where ulid = ?")
        .bind(now_ms())
        .bind(ulid)
        .execute(writer)
        .await?;
    files_where(writer, "x.session_ulid = ?", ulid).await
}

pub async fn file(reader: &SqlitePool, user: UserId, file_id: &str) -> CatalogResult<Option<LibraryFile>> {
    Ok(files_where(reader, "x.id = ?", file_id).await?.into_iter().find(|f| f.user_id == user))
}

pub async fn file_of_job(reader: &SqlitePool, job_id: i64) -> CatalogResult<Option<LibraryFile>> {
    Ok(files_where(reader, "x.job_id = ?", job_id).await?.pop())
}

pub async fn list_files(reader: &SqlitePool, user: Option<UserId>) -> CatalogResult<Vec<LibraryFile>> {
    files_where(reader, "(?1 is null or x.user_id = ?1)", user.map(|u| u.0)).await
}

pub async fn delete_expired_sessions(writer: &SqlitePool, expired_before_ms: i64, limit: u32) -> CatalogResult<usize> {
    let done = sqlx::query(
        "delete from sessions where ulid in (select ulid from sessions where expires_ms < ? order by expires_ms limit ?)",
    )
    .bind(expired_before_ms)
    .bind(i64::from(limit))
    .execute(writer)
    .await?;
    Ok(done.rows_affected() as usize)
}
