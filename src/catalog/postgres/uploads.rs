//! Uploads in parts on PostgreSQL. Parts of one upload are recorded one at a time (under
//! the upload's row lock), so a retried part always reports the staging it replaced; whole
//! files of one key serialise on an advisory lock named by the user and key.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool};

use super::{advisory_lock, on_unique, parse_hash};
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
        Ok(Upload {
            upload_id: self.id,
            family: UploadFamily::parse(&self.family)
                .ok_or_else(|| CatalogError::Schema(format!("upload family {}", self.family)))?,
            user_id: UserId(self.user_id),
            grant_id: self.grant_id.map(GrantId),
            file_key: self.file_key,
            file_size: self.file_size.map(|s| s as u64),
            file_hash: self.file_hash.as_deref().map(parse_hash).transpose()?,
            part_count: self.part_count.map(|c| c as u32),
            content_type: self.content_type,
            completed: self.state == "completed",
            result: self
                .result
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| CatalogError::Schema(e.to_string()))?,
            sha256: self.sha256.as_deref().map(parse_hash).transpose()?,
            size: self.size.map(|s| s as u64),
            expires_ms: self.expires_ms,
        })
    }
}

const COLUMNS: &str = "id, family, user_id, grant_id, file_key, file_size, file_hash, part_count, content_type, \
                       state, result, sha256, size, expires_ms";

pub async fn create(pool: &PgPool, u: &NewUpload) -> CatalogResult<Upload> {
    let row: UploadRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into uploads (id, family, user_id, grant_id, file_key, file_size, file_hash, part_count, content_type,
                              expires_ms, created_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning {COLUMNS}"
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
    .fetch_one(pool)
    .await
    .map_err(|e| {
        on_unique(e, || format!("an upload for file '{}' already exists", u.file_key.as_deref().unwrap_or("")))
    })?;
    row.into_upload()
}

pub async fn get(pool: &PgPool, upload_id: &str) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> = sqlx::query_as(AssertSqlSafe(format!("select {COLUMNS} from uploads where id = $1")))
        .bind(upload_id)
        .fetch_optional(pool)
        .await?;
    row.map(UploadRow::into_upload).transpose()
}

pub async fn by_file_key(pool: &PgPool, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> =
        sqlx::query_as(AssertSqlSafe(format!("select {COLUMNS} from uploads where user_id = $1 and file_key = $2")))
            .bind(user.0)
            .bind(file_key)
            .fetch_optional(pool)
            .await?;
    row.map(UploadRow::into_upload).transpose()
}

/// No index serves this lookup: it runs once per large file started, over uploads within
/// their expiry only, and the catalog's upload tables are about to be reshaped.
pub async fn open_device_upload(
    pool: &PgPool,
    user: UserId,
    grant: GrantId,
    file_hash: &Sha256Hex,
    file_size: u64,
) -> CatalogResult<Option<Upload>> {
    let row: Option<UploadRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from uploads
         where user_id = $1 and grant_id = $2 and family = 'device' and state = 'open'
           and file_hash = $3 and file_size = $4 and expires_ms > $5
         order by created_ms desc limit 1"
    )))
    .bind(user.0)
    .bind(grant.0)
    .bind(file_hash.as_str())
    .bind(file_size as i64)
    .bind(now_ms())
    .fetch_optional(pool)
    .await?;
    row.map(UploadRow::into_upload).transpose()
}

pub async fn renew(pool: &PgPool, upload_id: &str, expires_ms: i64) -> CatalogResult<()> {
    sqlx::query("update uploads set expires_ms = $1 where id = $2")
        .bind(expires_ms)
        .bind(upload_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn put_part(pool: &PgPool, upload_id: &str, part: &Part) -> CatalogResult<Option<String>> {
    let mut tx = pool.begin().await?;
    // Parts of one upload are recorded one at a time: two retries of a part racing would
    // otherwise both see no earlier part and one staging file would be forgotten.
    // only an open upload takes parts: a retry racing its completion must not leave a part behind
    let upload: Option<(Option<i64>,)> =
        sqlx::query_as("select claim_until_ms from uploads where id = $1 and state = 'open' for update")
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?;
    match upload {
        None => return Err(CatalogError::NotFound(format!("upload {upload_id}"))),
        Some((Some(until),)) if until >= now_ms() => {
            return Err(CatalogError::Conflict(format!("upload {upload_id} is being completed")));
        }
        Some(_) => {}
    }
    let replaced: Option<(String,)> =
        sqlx::query_as("select staging_key from upload_parts where upload_id = $1 and part_num = $2")
            .bind(upload_id)
            .bind(i64::from(part.part_num))
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "insert into upload_parts (upload_id, part_num, staging_key, size, sha256, etag) values ($1, $2, $3, $4, $5, $6)
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
    .await?;
    tx.commit().await?;
    Ok(replaced.map(|(key,)| key))
}

type PartRow = (i64, String, i64, String, String);

fn part_from_row((num, key, size, sha256, etag): PartRow) -> CatalogResult<Part> {
    Ok(Part { part_num: num as u32, staging_key: key, size: size as u64, sha256: parse_hash(&sha256)?, etag })
}

pub async fn parts(pool: &PgPool, upload_id: &str) -> CatalogResult<Vec<Part>> {
    let rows: Vec<PartRow> = sqlx::query_as(
        "select part_num, staging_key, size, sha256, etag from upload_parts where upload_id = $1 order by part_num",
    )
    .bind(upload_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(part_from_row).collect()
}

pub async fn claim_completion(pool: &PgPool, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim> {
    let now = now_ms();
    let token = ulid::Ulid::new().to_string();
    let claimed: Option<UploadRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update uploads set claim_token = $1, claim_until_ms = $2
         where id = $3 and state = 'open' and (claim_until_ms is null or claim_until_ms < $4) returning {COLUMNS}"
    )))
    .bind(&token)
    .bind(now + lease.as_millis() as i64)
    .bind(upload_id)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = claimed {
        return Ok(CompletionClaim::Claimed { upload: row.into_upload()?, token });
    }
    Ok(match get(pool, upload_id).await? {
        None => CompletionClaim::Missing,
        Some(upload) if upload.completed => CompletionClaim::Completed(upload),
        Some(upload) => CompletionClaim::Busy(upload),
    })
}

pub async fn renew_completion(pool: &PgPool, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool> {
    let done =
        sqlx::query("update uploads set claim_until_ms = $1 where id = $2 and claim_token = $3 and state = 'open'")
            .bind(now_ms() + lease.as_millis() as i64)
            .bind(upload_id)
            .bind(token)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release_completion(pool: &PgPool, upload_id: &str, token: &str) -> CatalogResult<()> {
    sqlx::query("update uploads set claim_token = null, claim_until_ms = null where id = $1 and claim_token = $2")
        .bind(upload_id)
        .bind(token)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn complete(
    pool: &PgPool,
    upload_id: &str,
    result: &serde_json::Value,
    content: &BlobRecord,
) -> CatalogResult<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "update uploads set state = 'completed', result = $1, sha256 = $2, size = $3, claim_token = null,
             claim_until_ms = null
         where id = $4 and state = 'open'",
    )
    .bind(result.to_string())
    .bind(content.sha256.as_str())
    .bind(content.size as i64)
    .bind(upload_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        // the request lost (the row lock made it wait for the winner): say to what
        let state: Option<(String,)> =
            sqlx::query_as("select state from uploads where id = $1").bind(upload_id).fetch_optional(&mut *tx).await?;
        return Err(match state {
            Some(_) => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
            None => CatalogError::NotFound(format!("upload {upload_id}")),
        });
    }
    sqlx::query("delete from upload_parts where upload_id = $1").bind(upload_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn put_file(
    pool: &PgPool,
    file: &NewUpload,
    result: &serde_json::Value,
    content: &BlobRecord,
) -> CatalogResult<Upload> {
    let mut tx = pool.begin().await?;
    let key = file.file_key.as_deref().unwrap_or_default();
    // two PUTs of one key take turns, so the later one replaces the earlier one's file
    advisory_lock(&mut tx, &format!("file:{}:{key}", file.user_id)).await?;
    let open: Option<(String,)> =
        sqlx::query_as("select id from uploads where user_id = $1 and file_key = $2 and state = 'open'")
            .bind(file.user_id.0)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
    let in_progress = || format!("a multipart upload of '{key}' is in progress");
    if open.is_some() {
        return Err(CatalogError::Conflict(in_progress()));
    }
    sqlx::query("delete from uploads where user_id = $1 and file_key = $2 and state = 'completed'")
        .bind(file.user_id.0)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let row: UploadRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into uploads (id, family, user_id, file_key, part_count, content_type, state, result, sha256, size,
                              expires_ms, created_ms)
         values ($1, $2, $3, $4, 1, $5, 'completed', $6, $7, $8, $9, $10) returning {COLUMNS}"
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
    .await
    // a multipart start of this key that committed after the check above
    .map_err(|e| on_unique(e, in_progress))?;
    tx.commit().await?;
    row.into_upload()
}

/// Not held by a completion whose lease is running (`$2` is now).
const ABANDONED_OR_UNCLAIMED: &str = "claim_until_ms is null or claim_until_ms < $2";

pub async fn abort(pool: &PgPool, upload_id: &str) -> CatalogResult<Vec<Part>> {
    let condition = format!("state = 'open' and ({ABANDONED_OR_UNCLAIMED})");
    if let Some(parts) = delete_parts_then(pool, upload_id, &condition).await? {
        return Ok(parts);
    }
    Err(match get(pool, upload_id).await? {
        None => CatalogError::NotFound(format!("upload {upload_id}")),
        Some(u) if u.completed => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
        Some(_) => CatalogError::Conflict(format!("upload {upload_id} is being completed")),
    })
}

pub async fn delete(pool: &PgPool, upload_id: &str) -> CatalogResult<Option<Vec<Part>>> {
    delete_parts_then(pool, upload_id, ABANDONED_OR_UNCLAIMED).await
}

/// Locks the upload's row, and if `condition` holds deletes its parts (returning them) and
/// the row, in one transaction.
async fn delete_parts_then(pool: &PgPool, upload_id: &str, condition: &str) -> CatalogResult<Option<Vec<Part>>> {
    let mut tx = pool.begin().await?;
    let found: Option<(String,)> =
        sqlx::query_as(AssertSqlSafe(format!("select id from uploads where id = $1 and ({condition}) for update")))
            .bind(upload_id)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
    if found.is_none() {
        return Ok(None);
    }
    let rows: Vec<PartRow> = sqlx::query_as(
        "delete from upload_parts where upload_id = $1 returning part_num, staging_key, size, sha256, etag",
    )
    .bind(upload_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("delete from uploads where id = $1").bind(upload_id).execute(&mut *tx).await?;
    tx.commit().await?;
    rows.into_iter().map(part_from_row).collect::<CatalogResult<Vec<_>>>().map(Some)
}

pub async fn expired(pool: &PgPool, limit: u32) -> CatalogResult<Vec<Upload>> {
    let rows: Vec<UploadRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from uploads where (state = 'open' or family = 'device') and expires_ms < $1
           and (claim_until_ms is null or claim_until_ms < $1)
         order by expires_ms limit $2"
    )))
    .bind(now_ms())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(UploadRow::into_upload).collect()
}
