//! tus uploads (API.md §5): each upload's offset, length, metadata, target and its staging
//! and hash state, so any replica continues it; a lease lets one PATCH at a time change it.
//! Every change checks, in the transaction that makes it, what it changes: a lease is taken
//! only while none is running and the offset is the one the PATCH starts from, and progress
//! is recorded only under the lease that made it and from the offset it started at (see
//! `resumable`).

use std::time::Duration;

use async_trait::async_trait;

use super::db::{Exec, Tx};
use super::rows::{self, TUS_UPLOAD};
use super::*;
use crate::clock::now_ms;
use crate::domain::UserId;

#[async_trait]
pub trait TusUploads: Send + Sync {
    async fn create_tus(&self, upload: &NewTusUpload) -> CatalogResult<TusUpload>;
    /// The user's upload (another user's does not exist for them).
    async fn tus_upload(&self, id: &str, user: UserId) -> CatalogResult<Option<TusUpload>>;
    /// Leases an open or received upload that no lease holds, on `terms` (see [`TusLease`]).
    async fn lease_tus(&self, id: &str, user: UserId, token: &str, terms: LeaseTerms) -> CatalogResult<TusLease>;
    /// Extends a lease this holder still has; `false` when it lost it.
    async fn renew_tus_lease(&self, id: &str, token: &str, lease: Duration) -> CatalogResult<bool>;
    async fn release_tus_lease(&self, id: &str, token: &str) -> CatalogResult<()>;
    /// Records progress of an open upload under `token`, from `from_offset`; `release` ends
    /// the lease with it. `false` when the lease or the offset is no longer this PATCH's.
    async fn advance_tus(&self, id: &str, token: &str, progress: &TusProgress, release: bool) -> CatalogResult<bool>;
    /// Marks a received upload committed, with what it became, and ends the lease.
    async fn complete_tus(
        &self,
        id: &str,
        token: &str,
        result: &serde_json::Value,
        expires_ms: i64,
    ) -> CatalogResult<bool>;
    /// Deletes the user's upload (termination) unless a request holds its lease; returns it
    /// as it was.
    async fn terminate_tus(&self, id: &str, user: UserId) -> CatalogResult<Termination>;
    /// Leases the user's partial uploads `ids` for a final upload: each must exist, be a
    /// completed partial upload, unexpired and free. `Err` lists what was found instead
    /// (`None` for a missing one), in order, when any is not.
    async fn lease_partials(
        &self,
        ids: &[String],
        user: UserId,
        token: &str,
        lease: Duration,
    ) -> CatalogResult<Result<Vec<TusUpload>, Vec<Option<TusUpload>>>>;
    /// Records a committed final upload and deletes its partial uploads (leased by `token`);
    /// `false` (nothing recorded) when one of them is no longer leased by it.
    async fn finish_concat(
        &self,
        upload: &NewTusUpload,
        content: &BlobRecord,
        result: &serde_json::Value,
        partials: &[String],
        token: &str,
    ) -> CatalogResult<bool>;
    /// Marks one upload whose time is up expired (unfinished ones, and partial uploads no
    /// final one used) and returns it as it was, so its bytes can go; `None` when there is none.
    async fn expire_tus(&self) -> CatalogResult<Option<TusUpload>>;
    /// Deletes committed uploads past their expiry and expired ones `keep_expired` after it
    /// (they answer 410 until then); returns how many.
    async fn forget_tus(&self, keep_expired: Duration) -> CatalogResult<usize>;
    /// The staging of uploads that still hold bytes, as (key, store state) (`admin check`).
    async fn tus_staging(&self) -> CatalogResult<Vec<(String, String)>>;
    /// Ends every lease (a server on an embedded catalog, at start: no PATCH survived it).
    async fn release_all_tus_leases(&self) -> CatalogResult<u64>;
}

async fn one_upload(exec: &mut dyn Exec, id: &str, lock: &str) -> CatalogResult<Option<TusUpload>> {
    let sql = format!("select {TUS_UPLOAD} from tus_uploads x where x.id = $1{lock}");
    exec.opt(&sql, params![id]).await?.map(|r| rows::tus_upload(&r, 0)).transpose()
}

fn concat_columns(concat: &Option<TusConcat>) -> (Option<&'static str>, Option<String>) {
    match concat {
        None => (None, None),
        Some(TusConcat::Partial) => (Some("partial"), None),
        Some(TusConcat::Final(parts)) => (Some("final"), Some(parts.join(" "))),
    }
}

async fn insert(tx: &mut Tx<'_>, u: &NewTusUpload, state: TusState, content: Option<&BlobRecord>) -> CatalogResult<()> {
    let (concat, parts) = concat_columns(&u.concat);
    let (folder, device) = match &u.target {
        TusTarget::Folder(key) => (Some(key.as_str()), None),
        TusTarget::Device(device) => (None, Some(device.0)),
    };
    let offset = content.map_or(0, |c| c.size);
    tx.exec(
        "insert into tus_uploads (id, user_id, length, offset_bytes, metadata, concat, concat_parts, folder_key,
                                  device_id, file_name, file_type, expect_sha256, state, staging_key, staging_state,
                                  hash_state, sha256, chunked_hash, expires_ms, created_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        params![
            &u.id,
            u.user_id.0,
            u.length,
            offset,
            &u.metadata,
            concat,
            parts,
            folder,
            device,
            &u.file_name,
            &u.file_type,
            u.expect_sha256.as_ref(),
            state.as_str(),
            &u.staging_key,
            &u.staging_state,
            u.hash_state.as_deref(),
            content.map(|c| &c.sha256),
            content.and_then(|c| c.chunked_hash.as_ref()),
            u.expires_ms,
            now_ms()
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl TusUploads for SqlCatalog {
    async fn create_tus(&self, upload: &NewTusUpload) -> CatalogResult<TusUpload> {
        let mut tx = self.db.begin().await?;
        insert(&mut tx, upload, TusState::Open, None).await?;
        let created = one_upload(&mut tx, &upload.id, "").await?;
        tx.commit().await?;
        created.ok_or_else(|| CatalogError::NotFound(format!("tus upload {}", upload.id)))
    }

    async fn tus_upload(&self, id: &str, user: UserId) -> CatalogResult<Option<TusUpload>> {
        let found = one_upload(&mut self.db.read().await?, id, "").await?;
        Ok(found.filter(|u| u.user_id == user))
    }

    async fn lease_tus(&self, id: &str, user: UserId, token: &str, terms: LeaseTerms) -> CatalogResult<TusLease> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let lock = tx.dialect().for_update();
        let Some(mut upload) = one_upload(&mut tx, id, lock).await?.filter(|u| u.user_id == user) else {
            return Ok(TusLease::Missing);
        };
        let takes = matches!(upload.state, TusState::Open | TusState::Received)
            && !upload.expired(now)
            && !upload.leased(now)
            && terms.offset.is_none_or(|offset| offset == upload.offset)
            && terms.length.is_none_or(|length| length >= upload.offset && upload.length.is_none_or(|l| l == length));
        if !takes {
            return Ok(TusLease::Refused(upload));
        }
        let until = now + terms.lease.as_millis() as i64;
        let length = upload.length.or(terms.length);
        tx.exec(
            "update tus_uploads set lease_token = $1, lease_until_ms = $2, length = $3 where id = $4",
            params![token, until, length, id],
        )
        .await?;
        tx.commit().await?;
        upload.lease_until_ms = Some(until);
        upload.length = length;
        Ok(TusLease::Leased(upload))
    }

    async fn renew_tus_lease(&self, id: &str, token: &str, lease: Duration) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let until = now_ms() + lease.as_millis() as i64;
        let renewed = tx
            .exec(
                "update tus_uploads set lease_until_ms = $1 where id = $2 and lease_token = $3",
                params![until, id, token],
            )
            .await?;
        tx.commit().await?;
        Ok(renewed == 1)
    }

    async fn release_tus_lease(&self, id: &str, token: &str) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec(
            "update tus_uploads set lease_token = null, lease_until_ms = null where id = $1 and lease_token = $2",
            params![id, token],
        )
        .await?;
        tx.commit().await
    }

    async fn advance_tus(&self, id: &str, token: &str, p: &TusProgress, release: bool) -> CatalogResult<bool> {
        let lease = if release { ", lease_token = null, lease_until_ms = null" } else { "" };
        let sql = format!(
            "update tus_uploads set offset_bytes = $1, state = $2, staging_state = $3, hash_state = $4, head = $5,
                 sha256 = $6, chunked_hash = $7, expires_ms = $8{lease}
             where id = $9 and lease_token = $10 and offset_bytes = $11 and state = 'open'"
        );
        let mut tx = self.db.begin().await?;
        let content = p.content.as_ref();
        let moved = tx
            .exec(
                &sql,
                params![
                    p.offset,
                    p.state.as_str(),
                    &p.staging_state,
                    p.hash_state.as_deref(),
                    p.head.as_slice(),
                    content.map(|c| &c.sha256),
                    content.and_then(|c| c.chunked_hash.as_ref()),
                    p.expires_ms,
                    id,
                    token,
                    p.from_offset
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(moved == 1)
    }

    async fn complete_tus(
        &self,
        id: &str,
        token: &str,
        result: &serde_json::Value,
        expires_ms: i64,
    ) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .exec(
                "update tus_uploads set state = 'completed', result = $1, expires_ms = $2, staging_state = null,
                     hash_state = null, lease_token = null, lease_until_ms = null
                 where id = $3 and lease_token = $4 and state = 'received'",
                params![result.to_string(), expires_ms, id, token],
            )
            .await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn terminate_tus(&self, id: &str, user: UserId) -> CatalogResult<Termination> {
        let mut tx = self.db.begin().await?;
        let lock = tx.dialect().for_update();
        let Some(upload) = one_upload(&mut tx, id, lock).await?.filter(|u| u.user_id == user) else {
            return Ok(Termination::NotFound);
        };
        // a PATCH holding the lease is writing its staging and may be committing it: taking
        // the row and the bytes from under it would fail that PATCH after it read its body
        if upload.leased(now_ms()) {
            return Ok(Termination::Locked);
        }
        tx.exec("delete from tus_uploads where id = $1", params![id]).await?;
        tx.commit().await?;
        Ok(Termination::Ended(Box::new(upload)))
    }

    async fn lease_partials(
        &self,
        ids: &[String],
        user: UserId,
        token: &str,
        lease: Duration,
    ) -> CatalogResult<Result<Vec<TusUpload>, Vec<Option<TusUpload>>>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let lock = tx.dialect().for_update();
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(one_upload(&mut tx, id, lock).await?.filter(|u| u.user_id == user));
        }
        let usable = |u: &TusUpload| {
            u.concat == Some(TusConcat::Partial)
                && u.state == TusState::Completed
                && u.expires_ms >= now
                && !u.leased(now)
        };
        let mut distinct = ids.to_vec();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != ids.len() || !found.iter().all(|u| u.as_ref().is_some_and(usable)) {
            return Ok(Err(found));
        }
        let until = now + lease.as_millis() as i64;
        for id in ids {
            tx.exec(
                "update tus_uploads set lease_token = $1, lease_until_ms = $2 where id = $3",
                params![token, until, id.as_str()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(found.into_iter().flatten().collect()))
    }

    async fn finish_concat(
        &self,
        upload: &NewTusUpload,
        content: &BlobRecord,
        result: &serde_json::Value,
        partials: &[String],
        token: &str,
    ) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let mut deleted = 0;
        for id in partials {
            deleted += tx
                .exec("delete from tus_uploads where id = $1 and lease_token = $2", params![id.as_str(), token])
                .await?;
        }
        if deleted != partials.len() as u64 {
            return Ok(false); // rolled back with the transaction
        }
        insert(&mut tx, upload, TusState::Completed, Some(content)).await?;
        tx.exec("update tus_uploads set result = $1 where id = $2", params![result.to_string(), &upload.id]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn expire_tus(&self) -> CatalogResult<Option<TusUpload>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let sql = format!(
            "select {TUS_UPLOAD} from tus_uploads x
             where (x.state in ('open', 'received') or (x.state = 'completed' and x.concat = 'partial'))
               and x.expires_ms < $1 and (x.lease_until_ms is null or x.lease_until_ms < $1)
             order by x.expires_ms limit 1"
        );
        let Some(upload) = tx.opt(&sql, params![now]).await?.map(|r| rows::tus_upload(&r, 0)).transpose()? else {
            return Ok(None);
        };
        // a replica that expired it meanwhile (PostgreSQL) leaves nothing to change here
        let marked = tx
            .exec(
                "update tus_uploads set state = 'expired', staging_state = null, hash_state = null, head = null,
                     lease_token = null, lease_until_ms = null
                 where id = $1 and state = $2 and expires_ms < $3 and (lease_until_ms is null or lease_until_ms < $3)",
                params![&upload.id, upload.state.as_str(), now],
            )
            .await?;
        tx.commit().await?;
        Ok((marked == 1).then_some(upload))
    }

    async fn forget_tus(&self, keep_expired: Duration) -> CatalogResult<usize> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let forgotten = tx
            .exec(
                "delete from tus_uploads
                 where (state = 'completed' and (concat is null or concat <> 'partial') and expires_ms < $1)
                    or (state = 'expired' and expires_ms < $2)",
                params![now, now - keep_expired.as_millis() as i64],
            )
            .await?;
        tx.commit().await?;
        Ok(forgotten as usize)
    }

    async fn tus_staging(&self) -> CatalogResult<Vec<(String, String)>> {
        let rows = self
            .db
            .read()
            .await?
            .rows(
                "select staging_key, coalesce(staging_state, '') from tus_uploads
                 where state in ('open', 'received') or (state = 'completed' and concat = 'partial')",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
    }

    async fn release_all_tus_leases(&self) -> CatalogResult<u64> {
        let mut tx = self.db.begin().await?;
        let released = tx
            .exec("update tus_uploads set lease_token = null, lease_until_ms = null where lease_token is not null", &[])
            .await?;
        tx.commit().await?;
        Ok(released)
    }
}
