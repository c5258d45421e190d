//! Uploads in parts (both families) and the multipart family's single-PUT files. Every
//! state change checks the state it changes in its own transaction — and on PostgreSQL under
//! the upload row's lock — so of two racing requests exactly one wins and the other learns
//! what happened (see `ingest::multipart`).

use std::time::Duration;

use async_trait::async_trait;

use super::db::Exec;
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, PART, UPLOAD};
use super::section::lock_name;
use super::upload_rows::{UNCLAIMED, delete_where, open_for_parts, upload_in};
use super::*;
use crate::clock::now_ms;
use crate::domain::{GrantId, UserId};

#[async_trait]
pub trait Uploads: Send + Sync {
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
    /// Records a part of an open upload (`NotFound` once it is completed or gone, `Conflict`
    /// while a completion holds it); returns the staging key of the part it replaced.
    async fn put_part(&self, upload_id: &str, part: &Part) -> CatalogResult<Option<String>>;
    /// Forgets part `part_num` (every part with `None`) of an open upload no completion holds,
    /// before its bytes are written again in place; refused like [`Uploads::put_part`].
    async fn forget_parts(&self, upload_id: &str, part_num: Option<u32>) -> CatalogResult<()>;
    async fn parts(&self, upload_id: &str) -> CatalogResult<Vec<Part>>;
    /// Claims an open upload for completing it, for `lease` (see [`CompletionClaim`]). A
    /// claim whose lease has passed (its completer died) can be claimed again.
    async fn claim_completion(&self, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim>;
    /// Extends a claim this completer still holds; `false` when it is no longer its own.
    async fn renew_completion(&self, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool>;
    /// Gives a claim back after a completion that failed (the upload stays open).
    async fn release_completion(&self, upload_id: &str, token: &str) -> CatalogResult<()>;
    /// Marks an open upload completed with the answer to replay and the content it produced
    /// (which it then keeps alive), and forgets its parts: `NotFound` when the upload is gone
    /// (aborted or expired meanwhile), `Conflict` when it was completed already.
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
    /// Deletes a completed file of the multipart family; its content stays held for the
    /// retention. `false` when `user` has no such file.
    async fn delete_multipart_file(&self, user: UserId, file_key: &str) -> CatalogResult<bool>;
    async fn abort_upload(&self, upload_id: &str) -> CatalogResult<Vec<Part>>;
    /// Deletes an expired upload (open, or completed and kept only for repeated answers)
    /// unless a completion holds it, and returns its parts; `None` when it was not deleted.
    async fn delete_upload(&self, upload_id: &str) -> CatalogResult<Option<Vec<Part>>>;
    /// Staging keys unfinished uploads still use: their parts, and the objects direct-mode
    /// uploads are assembled into (`uploads/<ULID>`) (`admin check`).
    async fn staging_in_use(&self) -> CatalogResult<Vec<String>>;
    /// Uploads whose expiry has passed and that no completion holds: unfinished ones, and
    /// completed device-family ones (kept until then only to answer repeats).
    async fn expired_uploads(&self, limit: u32) -> CatalogResult<Vec<Upload>>;
}

#[async_trait]
impl Uploads for SqlCatalog {
    async fn create_upload(&self, u: &NewUpload) -> CatalogResult<Upload> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "insert into uploads (id, family, user_id, grant_id, file_key, file_size, file_hash, part_count,
                                  content_type, expires_ms, created_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            params![
                &u.upload_id,
                u.family.as_str(),
                u.user_id.0,
                u.grant_id.map(|g| g.0),
                &u.file_key,
                u.file_size,
                u.file_hash.as_ref(),
                u.part_count,
                &u.content_type,
                u.expires_ms,
                now_ms()
            ],
        )
        .await
        .map_err(|e| {
            e.on_unique(|| format!("an upload for file '{}' already exists", u.file_key.as_deref().unwrap_or("")))
        })?;
        let upload = upload_in(&mut tx, &u.upload_id).await?;
        tx.commit().await?;
        upload.ok_or_else(|| CatalogError::NotFound(format!("upload {}", u.upload_id)))
    }

    async fn upload(&self, upload_id: &str) -> CatalogResult<Option<Upload>> {
        upload_in(&mut self.db.read().await?, upload_id).await
    }

    async fn upload_by_file_key(&self, user: UserId, file_key: &str) -> CatalogResult<Option<Upload>> {
        let sql = format!("select {UPLOAD} from uploads x where x.user_id = $1 and x.file_key = $2");
        let row = self.db.read().await?.opt(&sql, params![user.0, file_key]).await?;
        row.map(|r| rows::upload(&r, 0)).transpose()
    }

    async fn open_device_upload(
        &self,
        user: UserId,
        grant: GrantId,
        file_hash: &Sha256Hex,
        file_size: u64,
    ) -> CatalogResult<Option<Upload>> {
        // runs once per large file started, over the account's uploads (uploads_by_user)
        let sql = format!(
            "select {UPLOAD} from uploads x
             where x.user_id = $1 and x.grant_id = $2 and x.family = 'device' and x.state = 'open'
               and x.file_hash = $3 and x.file_size = $4 and x.expires_ms > $5
             order by x.created_ms desc limit 1"
        );
        let params = params![user.0, grant.0, file_hash, file_size, now_ms()];
        let row = self.db.read().await?.opt(&sql, params).await?;
        row.map(|r| rows::upload(&r, 0)).transpose()
    }

    async fn renew_upload(&self, upload_id: &str, expires_ms: i64) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec("update uploads set expires_ms = $1 where id = $2", params![expires_ms, upload_id]).await?;
        tx.commit().await
    }

    async fn put_part(&self, upload_id: &str, part: &Part) -> CatalogResult<Option<String>> {
        let mut tx = self.db.begin().await?;
        // Parts of one upload are recorded one at a time (the row lock on PostgreSQL): two
        // retries of a part racing would otherwise both see no earlier part and one staging
        // file would be forgotten.
        open_for_parts(&mut tx, upload_id).await?;
        let replaced = tx
            .opt(
                "select staging_key from upload_parts where upload_id = $1 and part_num = $2",
                params![upload_id, part.part_num],
            )
            .await?
            .map(|r| r.get::<String>(0))
            .transpose()?;
        tx.exec(
            "insert into upload_parts (upload_id, part_num, staging_key, size, sha256, etag) values ($1, $2, $3, $4, $5, $6)
             on conflict (upload_id, part_num) do update set staging_key = excluded.staging_key, size = excluded.size,
                 sha256 = excluded.sha256, etag = excluded.etag",
            params![upload_id, part.part_num, &part.staging_key, part.size, &part.sha256, &part.etag],
        )
        .await?;
        tx.commit().await?;
        Ok(replaced)
    }

    async fn forget_parts(&self, upload_id: &str, part_num: Option<u32>) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        open_for_parts(&mut tx, upload_id).await?;
        match part_num {
            Some(num) => {
                tx.exec("delete from upload_parts where upload_id = $1 and part_num = $2", params![upload_id, num])
                    .await?
            }
            None => tx.exec("delete from upload_parts where upload_id = $1", params![upload_id]).await?,
        };
        tx.commit().await
    }

    async fn parts(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        let sql = format!("select {PART} from upload_parts p where p.upload_id = $1 order by p.part_num");
        let rows = self.db.read().await?.rows(&sql, params![upload_id]).await?;
        rows.iter().map(|r| rows::part(r, 0)).collect()
    }

    async fn claim_completion(&self, upload_id: &str, lease: Duration) -> CatalogResult<CompletionClaim> {
        let now = now_ms();
        let token = ulid::Ulid::new().to_string();
        let mut tx = self.db.begin().await?;
        let claimed = tx
            .exec(
                "update uploads set claim_token = $1, claim_until_ms = $2
                 where id = $3 and state = 'open' and (claim_until_ms is null or claim_until_ms < $4)",
                params![&token, now + lease.as_millis() as i64, upload_id, now],
            )
            .await?;
        let upload = upload_in(&mut tx, upload_id).await?;
        tx.commit().await?;
        Ok(match upload {
            None => CompletionClaim::Missing,
            Some(upload) if claimed == 1 => CompletionClaim::Claimed { upload, token },
            Some(upload) if upload.completed => CompletionClaim::Completed(upload),
            Some(upload) => CompletionClaim::Busy(upload),
        })
    }

    async fn renew_completion(&self, upload_id: &str, token: &str, lease: Duration) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let renewed = tx
            .exec(
                "update uploads set claim_until_ms = $1 where id = $2 and claim_token = $3 and state = 'open'",
                params![now_ms() + lease.as_millis() as i64, upload_id, token],
            )
            .await?;
        tx.commit().await?;
        Ok(renewed == 1)
    }

    async fn release_completion(&self, upload_id: &str, token: &str) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "update uploads set claim_token = null, claim_until_ms = null where id = $1 and claim_token = $2",
            params![upload_id, token],
        )
        .await?;
        tx.commit().await
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .exec(
                "update uploads set state = 'completed', result = $1, sha256 = $2, size = $3, claim_token = null,
                     claim_until_ms = null
                 where id = $4 and state = 'open'",
                params![result.to_string(), &content.sha256, content.size, upload_id],
            )
            .await?;
        if done == 0 {
            // the request lost (on PostgreSQL the row lock made it wait for the winner)
            return Err(match upload_in(&mut tx, upload_id).await? {
                Some(_) => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
                None => CatalogError::NotFound(format!("upload {upload_id}")),
            });
        }
        tx.exec("delete from upload_parts where upload_id = $1", params![upload_id]).await?;
        tx.commit().await
    }

    async fn put_file(
        &self,
        file: &NewUpload,
        result: &serde_json::Value,
        content: &BlobRecord,
    ) -> CatalogResult<Upload> {
        let mut tx = self.db.begin().await?;
        let key = file.file_key.as_deref().unwrap_or_default();
        // two PUTs of one key take turns, so the later one replaces the earlier one's file
        lock_name(&mut tx, &format!("file:{}:{key}", file.user_id)).await?;
        let in_progress = || format!("a multipart upload of '{key}' is in progress");
        let open = tx
            .opt(
                "select id from uploads where user_id = $1 and file_key = $2 and state = 'open'",
                params![file.user_id.0, key],
            )
            .await?;
        if open.is_some() {
            return Err(CatalogError::Conflict(in_progress()));
        }
        let replaced =
            "delete from uploads where user_id = $1 and file_key = $2 and state = 'completed' returning sha256";
        if let Some(replaced) = tx.opt(replaced, params![file.user_id.0, key]).await? {
            // the replaced file's content stays held for the retention, like a deleted file's
            check_hold(&mut tx, file.user_id, &replaced.get(0)?, HoldCheck::Deleted, now_ms()).await?;
        }
        tx.exec(
            "insert into uploads (id, family, user_id, file_key, part_count, content_type, state, result, sha256, size,
                                  expires_ms, created_ms)
             values ($1, $2, $3, $4, 1, $5, 'completed', $6, $7, $8, $9, $10)",
            params![
                &file.upload_id,
                file.family.as_str(),
                file.user_id.0,
                key,
                &file.content_type,
                result.to_string(),
                &content.sha256,
                content.size,
                file.expires_ms,
                now_ms()
            ],
        )
        .await
        // a multipart start of this key that committed after the check above
        .map_err(|e| e.on_unique(in_progress))?;
        let upload = upload_in(&mut tx, &file.upload_id).await?;
        tx.commit().await?;
        upload.ok_or_else(|| CatalogError::NotFound(format!("file {key}")))
    }

    async fn delete_multipart_file(&self, user: UserId, file_key: &str) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        lock_name(&mut tx, &format!("file:{user}:{file_key}")).await?;
        let sql = "delete from uploads where user_id = $1 and file_key = $2 and state = 'completed' returning sha256";
        let Some(deleted) = tx.opt(sql, params![user.0, file_key]).await? else { return Ok(false) };
        check_hold(&mut tx, user, &deleted.get(0)?, HoldCheck::Deleted, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn abort_upload(&self, upload_id: &str) -> CatalogResult<Vec<Part>> {
        let mut tx = self.db.begin().await?;
        let condition = format!("x.state = 'open' and {UNCLAIMED}");
        if let Some(parts) = delete_where(&mut tx, upload_id, &condition).await? {
            tx.commit().await?;
            return Ok(parts);
        }
        Err(match upload_in(&mut tx, upload_id).await? {
            None => CatalogError::NotFound(format!("upload {upload_id}")),
            Some(u) if u.completed => CatalogError::Conflict(format!("upload {upload_id} is already completed")),
            Some(_) => CatalogError::Conflict(format!("upload {upload_id} is being completed")),
        })
    }

    async fn delete_upload(&self, upload_id: &str) -> CatalogResult<Option<Vec<Part>>> {
        let mut tx = self.db.begin().await?;
        let parts = delete_where(&mut tx, upload_id, UNCLAIMED).await?;
        tx.commit().await?;
        Ok(parts)
    }

    async fn staging_in_use(&self) -> CatalogResult<Vec<String>> {
        // a direct-mode upload id is `<ULID>.<the S3 server's id>`; an open device upload may
        // write its parts in place, into `uploads/<id>`, before any of them is recorded
        let sql = "select staging_key from upload_parts
                   union
                   select 'uploads/' || substr(id, 1, 26) from uploads
                   where id like '%.%' or (family = 'device' and state = 'open')";
        let rows = self.db.read().await?.rows(sql, &[]).await?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn expired_uploads(&self, limit: u32) -> CatalogResult<Vec<Upload>> {
        let sql = format!(
            "select {UPLOAD} from uploads x where (x.state = 'open' or x.family = 'device') and x.expires_ms < $1
               and (x.claim_until_ms is null or x.claim_until_ms < $1)
             order by x.expires_ms limit {limit}"
        );
        let rows = self.db.read().await?.rows(&sql, params![now_ms()]).await?;
        rows.iter().map(|r| rows::upload(r, 0)).collect()
    }
}
