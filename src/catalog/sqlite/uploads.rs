//! Uploads in parts on SQLite.

use std::time::Duration;

use sqlx::{AssertSqlSafe, SqlitePool};

use super::on_unique;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{GrantId, Sha256Hex, UserId};

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    family: String,
    user_id: i64,
    grant_id: Option<i64>,
    file_key: Option<String>,
    file_size: Option<i64>,
    file_hash: Option<String>,
    part_count: Option<i64>,
    content_type: Option<String>,
    state: String,
    result: Option<String>,
    sha256: Option<String>,
    size: Option<i64>,
    expires_ms: i64,
}

impl UploadRow {
    fn into_upload(self) -> CatalogResult<Upload> {
        let schema = |e: String| CatalogError::Schema(e);
        Ok(Upload {
            upload_id: self.id,
            family: UploadFamily::parse(&self.family)
                .ok_or_else(|| CatalogError::Schema(format!("upload family {}", self.family)))?,
            user_id: UserId(self.user_id),
            grant_id: self.grant_id.map(GrantId),
            file_key: self.file_key,
            file_size: self.file_size.map(|s| s as u64),
            file_hash: self
                .file_hash
                .as_deref()
                .map(Sha256Hex::parse)
                .transpose()
                .map_err(|e| schema(e.to_string()))?,
            part_count: self.part_count.map(|c| c as u32),
            content_type: self.content_type,
            completed: self.state == "completed",
            result: self.result.as_deref().map(serde_json::from_str).transpose().map_err(|e| schema(e.to_string()))?,
            sha256: self.sha256.as_deref().map(Sha256Hex::parse).transpose().map_err(|e| schema(e.to_string()))?,
            size: self.size.map(|s| s as u64),
            expires_ms: self.expires_ms,
        })
    }
}

const COLUMNS: &str = "id, family, user_id, grant_id, file_key, file_size, file_hash, part_count, content_type, state, result, sha256, size, expires_ms";

pub async fn create(writer: &SqlitePool, u: &NewUpload) -> CatalogResult<Upload> {
    let row: UploadRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into uploads (id, family, user_id, grant_id, file_key, file_size, file_hash, part_count, content_type, expires_ms, created_ms)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) returning {COLUMNS}"
    )))
    .bind(&u.upload_id)
    .bind(u.family.as_str())
    .bind(u.user_id.0)
    .bind(u.grant_id.map(|g| g.0))
    .bind(&u.file_key)
    .bind(u.file_size.map(|s| s as i64))
    .bind(u.file_hash.as_ref().map(Sha256Hex::as_str))
    .bind(u.part_count.map(i64::from))
    .bind(&u.content_type)
    .bind(u.expires_ms)
    .bind(now_ms())
    .fetch_one(writer)
    .await
    .map_err(|e| on_unique(e, || format!("an upload for file '{}' already exists", u.file_key.as_deref().unwrap_or(""))))?;
    row.into_upload()
}

async fn get_in(conn: &mut sqlx::SqliteConnection, upload_id: &str) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from uploads where id = ?")))
            .bind(upload_id)
            .fetch_optional(conn)
            .await?;
    row.map(UploadRow::into_upload).transpose()
}

pub async fn get(reader: &SqlitePool, upload_id: &str) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from uploads where id = ?")))
            .bind(upload_id)
            .fetch_optional(reader)
            .await?;
    row.map(UploadRow::into_upload).transpose()
}

pub async fn by_file_key(reader: &SqlitePool, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from uploads where user_id = ? and file_key = ?"
    )))
    .bind(user.0)
    .bind(file_key)
    .fetch_optional(reader)
    .await?;
    row.map(UploadRow::into_upload).transpose()
}

/// No index serves this lookup: it runs once per large file started, over uploads within
/// their expiry only, and the catalog's upload tables are about to be reshaped.
pub async fn open_device_upload(
    reader: &SqlitePool,
    user: UserId,
    grant: GrantId,
    file_hash: &Sha256Hex,
    file_size: u64,
) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from uploads
         where user_id = ? and grant_id = ? and family = 'device' and state = 'open'
           and file_hash = ? and file_size = ? and expires_ms > ?
         order by created_ms desc limit 1"
    )))
    .bind(user.0)
    .bind(grant.0)
    .bind(file_hash.as_str())
    .bind(file_size as i64)
    .bind(now_ms())
    .fetch_optional(reader)
    .await?;
    row.map(UploadRow::into_upload).transpose()
}

pub async fn renew(writer: &SqlitePool, upload_id: &str, expires_ms: i64) -> CatalogResult<()> {
    sqlx::query("update uploads set expires_ms = ? where id = ?")
        .bind(expires_ms)
        .bind(upload_id)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn put_part(writer: &SqlitePool, upload_id: &str, part: &Part) -> CatalogResult<Option<String>> {
    let mut tx = writer.begin().await?;
    // only an open upload takes parts: a retry racing its completion must not leave a part behind
    let open: Option<(Option<i64>,)> =
        sqlx::query_as("select claim_until_ms from uploads where id = ? and state = 'open'")
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?;
    match open {
        None => return Err(CatalogError::NotFound(format!("upload {upload_id}"))),
        Some((Some(until),)) if until >= now_ms() => {
            return Err(CatalogError::Conflict(format!("upload {upload_id} is being completed")));
        }
        Some(_) => {}
    }
    let replaced: Option<(String,)> =
        sqlx::query_as("select staging_key from upload_parts where upload_id = ? and part_num = ?")
            .bind(upload_id)
            .bind(i64::from(part.part_num))
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "insert into upload_parts (upload_id, part_num, staging_key, size, sha256, etag) values (?, ?, ?, ?, ?, ?)
         on conflict (upload_id, part_num) do update set staging_key = excluded.staging_key, size = excluded.size,
             sha256 = excluded.sha256, etag = excluded.etag",
    )
    .bind(upload_id)
    .bind(i64::from(part.part_num))
    .bind(&part.staging_key)
    .bind(part.size as i64)
    .bind(part.sha256.as_str())
    .bind(&part.etag)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            CatalogError::NotFound(format!("upload {upload_id}"))
        }
        _ => CatalogError::Backend(e),
    })?;
    tx.commit().await?;
    Ok(replaced.map(|(key,)| key))
}

type PartRow = (i64, String, i64, String, String);

fn part_from_row((num, key, size, sha256, etag): PartRow) -> CatalogResult<Part> {
    Ok(Part {
        part_num: num as u32,
        staging_key: key,
        size: size as u64,
        sha256: Sha256Hex::parse(&sha256).map_err(|e| CatalogError::Schema(e.to_string()))?,
        etag,
    })
}

pub async fn parts(reader: &SqlitePool, upload_id: &str) -> CatalogResult<Vec<Part>> {
    let rows: Vec<PartRow> = sqlx::query_as(
        "select part_num, staging_key, size, sha256, etag from upload_parts where upload_id = ? order by part_num",
    )
    .bind(upload_id)
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(part_from_row).collect()
}

pub async fn claim_completion(writer: &SqlitePool, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim> {
    let now = now_ms();
    let token = ulid::Ulid::new().to_string();
    let claimed: Option<UploadRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update uploads set claim_token = ?, claim_until_ms = ?
         where id = ? and state = 'open' and (claim_until_ms is null or claim_until_ms < ?) returning {COLUMNS}"
    )))
    .bind(&token)
    .bind(now + lease.as_millis() as i64)
    .bind(upload_id)
    .bind(now)
    .fetch_optional(writer)
    .await?;
    if let Some(row) = claimed {
        return Ok(CompletionClaim::Claimed { upload: row.into_upload()?, token });
    }
    Ok(match get(writer, upload_id).await? {
        None => CompletionClaim::Missing,
        Some(upload) if upload.completed => CompletionClaim::Completed(upload),
        Some(upload) => CompletionClaim::Busy(upload),
    })
}

pub async fn renew_completion(
    writer: &SqlitePool,
    upload_id: &str,
    token: &str,
    lease: Duration,
) -> CatalogResult<bool> {
    let done = sqlx::query("update uploads set claim_until_ms = ? where id = ? and claim_token = ? and state = 'open'")
        .bind(now_ms() + lease.as_millis() as i64)
        .bind(upload_id)
        .bind(token)
        .execute(writer)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release_completion(writer: &SqlitePool, upload_id: &str, token: &str) -> CatalogResult<()> {
    sqlx::query("update uploads set claim_token = null, claim_until_ms = null where id = ? and claim_token = ?")
        .bind(upload_id)
        .bind(token)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn complete(
    writer: &SqlitePool,
    upload_id: &str,
    result: &serde_json::Value,
    content: &BlobRecord,
) -> CatalogResult<()> {
    let mut tx = writer.begin().await?;
    let done = sqlx::query(
        "update uploads set state = 'completed', result = ?, sha256 = ?, size = ?, claim_token = null,
             claim_until_ms = null
         where id = ? and state = 'open'",
    )
    .bind(result.to_string())
    .bind(content.sha256.as_str())
    .bind(content.size as i64)
    .bind(upload_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        // the request lost: say to what
        return Err(match get_in(&mut tx, upload_id).await? {
            Some(_) => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
            None => CatalogError::NotFound(format!("upload {upload_id}")),
        });
    }
    sqlx::query("delete from upload_parts where upload_id = ?").bind(upload_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn put_file(
    writer: &SqlitePool,
    file: &NewUpload,
    result: &serde_json::Value,
    content: &BlobRecord,
) -> CatalogResult<Upload> {
    let mut tx = writer.begin().await?;
    let key = file.file_key.as_deref().unwrap_or_default();
    let open: Option<(String,)> =
        sqlx::query_as("select id from uploads where user_id = ? and file_key = ? and state = 'open'")
            .bind(file.user_id.0)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
    if open.is_some() {
        return Err(CatalogError::Conflict(format!("a multipart upload of '{key}' is in progress")));
    }
    sqlx::query("delete from uploads where user_id = ? and file_key = ? and state = 'completed'")
        .bind(file.user_id.0)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let row: UploadRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into uploads (id, family, user_id, file_key, part_count, content_type, state, result, sha256, size, expires_ms, created_ms)
         values (?, ?, ?, ?, 1, ?, 'completed', ?, ?, ?, ?, ?) returning {COLUMNS}"
    )))
    .bind(&file.upload_id)
    .bind(file.family.as_str())
    .bind(file.user_id.0)
    .bind(key)
    .bind(&file.content_type)
    .bind(result.to_string())
    .bind(content.sha256.as_str())
    .bind(content.size as i64)
    .bind(file.expires_ms)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    row.into_upload()
}

/// Deletes the upload when `condition` (over its row) holds, with its parts; `None` when
/// it did not.
async fn delete_where(writer: &SqlitePool, upload_id: &str, condition: &str) -> CatalogResult<Option<Vec<Part>>> {
    let mut tx = writer.begin().await?;
    // the single writer makes the check and the deletes one step
    let found: Option<(String,)> =
        sqlx::query_as(AssertSqlSafe(format!("select id from uploads where id = ?1 and ({condition})")))
            .bind(upload_id)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
    if found.is_none() {
        return Ok(None);
    }
    // the parts first: their rows say whose staging to drop (the cascade would lose them)
    let rows: Vec<PartRow> = sqlx::query_as(
        "delete from upload_parts where upload_id = ? returning part_num, staging_key, size, sha256, etag",
    )
    .bind(upload_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("delete from uploads where id = ?").bind(upload_id).execute(&mut *tx).await?;
    tx.commit().await?;
    rows.into_iter().map(part_from_row).collect::<CatalogResult<Vec<_>>>().map(Some)
}

/// Open and not held by a completion whose lease is running (`?2` is now).
const ABANDONED_OR_UNCLAIMED: &str = "claim_until_ms is null or claim_until_ms < ?2";

pub async fn abort(writer: &SqlitePool, upload_id: &str) -> CatalogResult<Vec<Part>> {
    let condition = format!("state = 'open' and ({ABANDONED_OR_UNCLAIMED})");
    if let Some(parts) = delete_where(writer, upload_id, &condition).await? {
        return Ok(parts);
    }
    Err(match get(writer, upload_id).await? {
        None => CatalogError::NotFound(format!("upload {upload_id}")),
        Some(u) if u.completed => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
        Some(_) => CatalogError::Conflict(format!("upload {upload_id} is being completed")),
    })
}

pub async fn delete(writer: &SqlitePool, upload_id: &str) -> CatalogResult<Option<Vec<Part>>> {
    delete_where(writer, upload_id, ABANDONED_OR_UNCLAIMED).await
}

pub async fn expired(reader: &SqlitePool, limit: u32) -> CatalogResult<Vec<Upload>> {
    let rows: Vec<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from uploads where (state = 'open' or family = 'device') and expires_ms < ?1
           and (claim_until_ms is null or claim_until_ms < ?1)
         order by expires_ms limit ?2"
    )))
    .bind(now_ms())
    .bind(i64::from(limit))
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(UploadRow::into_upload).collect()
}
