//! Blobs and the holds accounts have on them: committing verified content, collecting content
//! nothing needs any more, and finishing what a crash interrupted (see `intents`). Bytes and
//! rows change together inside the blob's critical section (`section`).

use std::time::Duration;

use async_trait::async_trait;

use super::db::Exec;
use super::intents::Kind;
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, BLOB};
use super::section::Access;
use super::*;
use crate::clock::now_ms;
use crate::domain::UserId;

#[async_trait]
pub trait Blobs: Send + Sync {
    async fn blob(&self, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>>;
    async fn all_blob_hashes(&self) -> CatalogResult<Vec<Sha256Hex>>;
    /// Whether any blob is recorded (binding a blob store to this catalog).
    async fn has_blobs(&self) -> CatalogResult<bool>;
    /// True when `user` holds this content.
    async fn holds(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool>;
    /// Ends `user`'s hold on content (the bytes stay until nothing else needs them).
    async fn release_hold(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()>;
    /// Blobs `user` holds whose device-family hash (chunked hash, or SHA-256 up to 16 MiB)
    /// is among `device_hashes`. One query for the whole batch.
    async fn held_by_device_hash(&self, user: UserId, device_hashes: &[Sha256Hex]) -> CatalogResult<Vec<BlobRecord>>;
    /// Records the device top-hash of content recorded without one (the `device_hash` job);
    /// a top-hash already recorded is kept. `false` when the content is gone.
    async fn record_device_hash(&self, sha256: &Sha256Hex, top_hash: &Sha256Hex) -> CatalogResult<bool>;

    /// Records verified content and `holder`'s hold on it. `place_bytes` (moving staged
    /// bytes to their content address) runs first inside the blob's critical section; if it
    /// fails nothing is recorded. Idempotent for content already recorded. When the content is
    /// not recorded yet, a `place` intent is written before the bytes move and removed with
    /// the rows that record them, so a crash in between leaves bytes the sweep removes. When
    /// the blob row is new, the same transaction queues its media job
    /// ([`crate::domain::media_job`]), and for content over 16 MiB without its device top-hash
    /// the job that computes it ([`crate::domain::device_hash_job`]): every new content is
    /// processed once, and a crash cannot leave content recorded but never processed.
    ///
    /// With a `holder` whose account has a quota, content it does not hold yet is refused
    /// (`QuotaExceeded`) when it would take the account over: before the bytes move, and again
    /// where the hold is recorded, under the account's row lock, so concurrent commits of one
    /// account cannot pass the quota together (the bytes of one refused there stay with their
    /// intent, for [`Blobs::resolve_intents_of`]). Without a holder (a client's gallery thumbnail)
    /// the content is kept by what uses it, and collected when nothing does.
    async fn commit_blob(&self, blob: &BlobRecord, holder: Option<UserId>, place_bytes: BlobStep) -> CatalogResult<()>;
    /// Finishes what a crash or a failed step left behind: for every intent written more than
    /// `older_than` ago, inside its blob's critical section, the bytes are removed unless the
    /// content is recorded, then the intent goes. Bytes no intent names are never touched.
    /// Returns how many intents were resolved.
    async fn sweep_intents(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize>;
    /// Contents with an unresolved intent (reported by `admin check`, never repaired by it).
    async fn pending_intents(&self) -> CatalogResult<Vec<Sha256Hex>>;
    /// Resolves the intents of one content now, as the sweep would (inside its section, which
    /// waits for commits of it in progress): after a commit refused once its bytes had moved.
    async fn resolve_intents_of(&self, sha256: &Sha256Hex, delete_bytes: ByteDeleter) -> CatalogResult<usize>;
}

/// What recording a blob found.
pub(super) struct Recorded {
    /// The blob row is new.
    pub new: bool,
    /// The content is over 16 MiB and neither this arrival nor an earlier one brought its
    /// device top-hash.
    pub lacks_device_hash: bool,
}

/// Records a blob (keeping an earlier chunked hash) and `holder`'s hold.
pub(super) async fn record_blob(
    exec: &mut dyn Exec,
    blob: &BlobRecord,
    holder: Option<UserId>,
    now: i64,
) -> CatalogResult<Recorded> {
    let known = exec.opt("select 1 from blobs where sha256 = $1", params![&blob.sha256]).await?.is_some();
    let row = exec
        .one(
            "insert into blobs (sha256, size, chunked_hash, created_ms, last_used_ms) values ($1, $2, $3, $4, $4)
             on conflict (sha256) do update set last_used_ms = excluded.last_used_ms,
                 chunked_hash = coalesce(blobs.chunked_hash, excluded.chunked_hash)
             returning chunked_hash",
            params![&blob.sha256, blob.size, blob.chunked_hash.as_ref(), now],
        )
        .await?;
    let recorded_hash: Option<Sha256Hex> = row.get(0)?;
    if let Some(holder) = holder {
        exec.exec(
            "insert into holds (user_id, sha256, created_ms) values ($1, $2, $3) on conflict do nothing",
            params![holder.0, &blob.sha256, now],
        )
        .await?;
    }
    let lacks_device_hash = recorded_hash.is_none() && blob.lacks_device_hash();
    Ok(Recorded { new: !known, lacks_device_hash })
}

/// Refuses `blob` when holding it would take `user` over its quota; content the account holds
/// costs nothing. Run where the hold is about to be recorded: the account's row is locked
/// there (on SQLite the writer is held) until the hold is, so concurrent commits of one account
/// take turns and together cannot pass the quota.
async fn within_quota(exec: &mut dyn Exec, user: UserId, blob: &BlobRecord) -> CatalogResult<()> {
    let lock = exec.dialect().for_update();
    let sql = format!("select quota_bytes, held_bytes from users where id = $1 and quota_bytes is not null{lock}");
    let Some(row) = exec.opt(&sql, params![user.0]).await? else { return Ok(()) };
    let held = "select 1 from holds where user_id = $1 and sha256 = $2";
    if exec.opt(held, params![user.0, &blob.sha256]).await?.is_some() {
        return Ok(());
    }
    let (quota, held, size): (i64, i64, i64) = (row.get(0)?, row.get(1)?, blob.size as i64);
    if held + size > quota {
        return Err(CatalogError::QuotaExceeded(format!(
            "this upload of {size} bytes would take the account over its quota of {quota} bytes \
             ({held} held, content of deleted items included until it is collected)"
        )));
    }
    Ok(())
}

#[async_trait]
impl Blobs for SqlCatalog {
    async fn blob(&self, sha256: &Sha256Hex) -> CatalogResult<Option<BlobRecord>> {
        let sql = format!("select {BLOB} from blobs b where b.sha256 = $1");
        let row = self.db.read().await?.opt(&sql, params![sha256]).await?;
        row.map(|r| rows::blob(&r, 0)).transpose()
    }

    async fn all_blob_hashes(&self) -> CatalogResult<Vec<Sha256Hex>> {
        let rows = self.db.read().await?.rows("select sha256 from blobs order by sha256", &[]).await?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn has_blobs(&self) -> CatalogResult<bool> {
        Ok(self.db.read().await?.opt("select 1 from blobs limit 1", &[]).await?.is_some())
    }

    async fn holds(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<bool> {
        let sql = "select 1 from holds where user_id = $1 and sha256 = $2";
        Ok(self.db.read().await?.opt(sql, params![user.0, sha256]).await?.is_some())
    }

    async fn release_hold(&self, user: UserId, sha256: &Sha256Hex) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        let released = tx.exec("delete from holds where user_id = $1 and sha256 = $2", params![user.0, sha256]).await?;
        if released > 0 {
            super::lifecycle::candidate_if_unheld(&mut tx, sha256, now_ms()).await?;
        }
        tx.commit().await
    }

    async fn held_by_device_hash(&self, user: UserId, device_hashes: &[Sha256Hex]) -> CatalogResult<Vec<BlobRecord>> {
        // Driven by the wanted hashes (the cross join fixes SQLite's order): an index lookup
        // per hash. Filtering the user's holds instead read every blob they hold on each call,
        // which made 10,000 media creates quadratic (P6).
        // Content up to 16 MiB is named by its SHA-256; larger content only by its top-hash, so
        // a larger blob whose top-hash is not computed yet is not found (API.md §5).
        let (wanted, join) = (self.db.dialect().list(2), self.db.dialect().ordered_join());
        let plain = crate::domain::WHOLE_FILE_LIMIT;
        let sql = format!(
            "select {BLOB} from {wanted} w {join} blobs b on b.chunked_hash = w.v
             {join} holds h on h.user_id = $1 and h.sha256 = b.sha256
             union
             select {BLOB} from {wanted} w {join} blobs b on b.sha256 = w.v and b.chunked_hash is null and b.size <= {plain}
             {join} holds h on h.user_id = $1 and h.sha256 = b.sha256"
        );
        let hashes: Vec<&str> = device_hashes.iter().map(Sha256Hex::as_str).collect();
        let rows = self.db.read().await?.rows(&sql, params![user.0, db::Value::list(&hashes)]).await?;
        rows.iter().map(|r| rows::blob(r, 0)).collect()
    }

    async fn record_device_hash(&self, sha256: &Sha256Hex, top_hash: &Sha256Hex) -> CatalogResult<bool> {
        let sql = "update blobs set chunked_hash = coalesce(chunked_hash, $2) where sha256 = $1";
        let mut tx = self.db.begin().await?;
        let found = tx.exec(sql, params![sha256, top_hash]).await? > 0;
        tx.commit().await?;
        Ok(found)
    }

    async fn commit_blob(&self, blob: &BlobRecord, holder: Option<UserId>, place_bytes: BlobStep) -> CatalogResult<()> {
        // most uploads over a quota are refused here, before their bytes move
        if let Some(user) = holder {
            within_quota(&mut self.db.read().await?, user, blob).await?;
        }
        let mut section = self.section(&blob.sha256, Access::Shared).await?;
        // new content gets its intent before its bytes move; recorded content keeps its bytes
        // while the section is held, so placing them only drops the staged copy
        let intent = match section.recorded(&blob.sha256).await? {
            true => None,
            false => Some(self.begin_intent(&blob.sha256, Kind::Place).await?),
        };
        // A failure leaves the intent: the sweep removes whatever the step may have placed.
        place_bytes().await.map_err(CatalogError::Step)?;
        if let Some(user) = holder {
            // again where it counts (concurrent uploads of the account): a refusal here leaves
            // the intent, and `resolve_intents_of` removes the bytes at once
            within_quota(&mut section, user, blob).await?;
        }
        let now = now_ms();
        let recorded = record_blob(&mut section, blob, holder, now).await?;
        match holder {
            // the hold lasts at least the upload expiry, even if nothing uses the content
            Some(user) => check_hold(&mut section, user, &blob.sha256, HoldCheck::Committed, now).await?,
            None => super::lifecycle::candidate_if_unheld(&mut section, &blob.sha256, now).await?,
        }
        if recorded.new {
            super::jobs::enqueue_for_content(&mut section, crate::domain::media_job(&blob.sha256), now).await?;
        }
        // again on each arrival while it is missing: a job that failed for good, or that found
        // the content collected just before it came back, is queued anew
        if recorded.lacks_device_hash {
            let job = crate::domain::device_hash_job(&blob.sha256);
            super::jobs::enqueue_for_content(&mut section, job, now).await?;
        }
        if let Some(id) = intent {
            section.exec("delete from blob_intents where id = $1", params![id]).await?;
        }
        section.commit().await
    }

    async fn resolve_intents_of(&self, sha256: &Sha256Hex, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        self.resolve_now(sha256, delete_bytes).await
    }

    async fn sweep_intents(&self, older_than: Duration, delete_bytes: ByteDeleter) -> CatalogResult<usize> {
        self.sweep(older_than, delete_bytes).await
    }

    async fn pending_intents(&self) -> CatalogResult<Vec<Sha256Hex>> {
        self.pending().await
    }
}
