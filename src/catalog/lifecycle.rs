//! The storage lifecycle (migration 0011): deleted items go after their retention, an
//! account's hold on content goes when nothing of the account uses it any more, and content
//! nobody holds or uses is collected. Each step reads only what is due — hold checks and
//! collection candidates written when a reason to keep content may have ended — so a pass
//! costs what the garbage costs, not what the store holds.
//!
//! What is due is decided by times passed in (`now_ms`, cutoffs): the clock is the caller's,
//! so a test can run a pass as if weeks had gone by. What is recorded (when a check or a
//! candidate began) is the wall clock's.

use std::time::Duration;

use async_trait::async_trait;

use super::db::Exec;
use super::intents::{Kind, write_intent};
use super::section::{Access, lock_name};
use super::*;
use crate::clock::now_ms;
use crate::domain::UserId;

/// Why an account's hold on content is to be looked at again (see migration 0011).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCheck {
    /// Content was committed for the account: its hold lasts at least the upload expiry.
    Committed,
    /// An item that used the content was deleted or replaced: the hold lasts the retention.
    Deleted,
    /// A tombstone or deleted event that used the content has been purged: due at once.
    Unreferenced,
}

impl HoldCheck {
    fn as_str(self) -> &'static str {
        match self {
            HoldCheck::Committed => "committed",
            HoldCheck::Deleted => "deleted",
            HoldCheck::Unreferenced => "unreferenced",
        }
    }
}

/// How long each reason keeps a hold.
#[derive(Debug, Clone, Copy)]
pub struct HoldLifetimes {
    pub upload_expiry: Duration,
    pub retention: Duration,
}

/// What one collection step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collection {
    /// No candidate is due.
    Nothing,
    /// A due candidate turned out to be needed again (used, held, or recently committed).
    Kept(Sha256Hex),
    /// The blob's rows and bytes are gone (`size` bytes freed).
    Collected { sha256: Sha256Hex, size: i64 },
}

#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Removes up to `limit` tombstones and deleted gallery events deleted at or before
    /// `cutoff_ms`, leaving an `Unreferenced` check of the holds they kept. Returns how many.
    async fn purge_deleted(&self, cutoff_ms: i64, limit: u32) -> CatalogResult<usize>;
    /// Takes up to `limit` hold checks due at `at_ms`. A hold goes when no other check of it
    /// is pending and no item of its account uses the content; content whose last hold went
    /// becomes a collection candidate. Returns (checks taken, holds released).
    async fn release_holds(&self, at_ms: i64, lifetimes: HoldLifetimes, limit: u32) -> CatalogResult<(usize, usize)>;
    /// Collects the oldest candidate that became one at or before `cutoff_ms`, inside its
    /// blob's critical section: every reference is checked again there; the rows go together
    /// with a `collect` intent being written, then `delete_bytes` runs, then the intent goes.
    /// A crash or a failed delete leaves the intent, and the sweep removes the bytes; a row
    /// without bytes never exists.
    async fn collect_blob(&self, cutoff_ms: i64, delete_bytes: ByteDeleter) -> CatalogResult<Collection>;
}

/// Everything that keeps a blob alive, for blob `b` (later tables add theirs).
const REFERENCED: &str = "exists (select 1 from holds h where h.sha256 = b.sha256)
    or exists (select 1 from media m where m.sha256 = b.sha256)
    or exists (select 1 from uploads u where u.sha256 = b.sha256)
    or exists (select 1 from files f where f.sha256 = b.sha256)
    or exists (select 1 from events e where e.sha256 = b.sha256)
    or exists (select 1 from events e where e.thumbnail_sha256 = b.sha256)
    or exists (select 1 from blob_media bm where bm.thumbnail_sha256 = b.sha256)
    or exists (select 1 from blob_renditions br where br.rendition_sha256 = b.sha256)";

/// Whether account `$1` has an item (live or deleted within its retention) using content `$2`.
const USED_BY_ACCOUNT: &str = "select 1 where
       exists (select 1 from media m join volumes v on v.id = m.volume_id where m.sha256 = $2 and v.user_id = $1)
    or exists (select 1 from files f where f.sha256 = $2 and f.user_id = $1)
    or exists (select 1 from uploads u where u.sha256 = $2 and u.user_id = $1)
    or exists (select 1 from events e where e.sha256 = $2 and e.user_id = $1)
    or exists (select 1 from events e where e.thumbnail_sha256 = $2 and e.user_id = $1)";

/// Asks for `user`'s hold on `sha256` to be looked at again, `reason` counting from `now_ms`
/// (a later reason of the same kind moves the check later).
pub(super) async fn check_hold(
    exec: &mut dyn Exec,
    user: UserId,
    sha256: &Sha256Hex,
    reason: HoldCheck,
    now_ms: i64,
) -> CatalogResult<()> {
    exec.exec(
        "insert into hold_checks (user_id, sha256, reason, since_ms) values ($1, $2, $3, $4)
         on conflict (user_id, sha256, reason) do update set since_ms = excluded.since_ms",
        params![user.0, sha256, reason.as_str(), now_ms],
    )
    .await?;
    Ok(())
}

/// Makes content nobody holds a collection candidate (no-op while any hold remains).
pub(super) async fn candidate_if_unheld(exec: &mut dyn Exec, sha256: &Sha256Hex, now_ms: i64) -> CatalogResult<()> {
    exec.exec(
        "insert into collect_candidates (sha256, since_ms)
         select b.sha256, $2 from blobs b where b.sha256 = $1
            and not exists (select 1 from holds h where h.sha256 = b.sha256)
         on conflict (sha256) do update set since_ms = excluded.since_ms",
        params![sha256, now_ms],
    )
    .await?;
    // the grace period counts from the last release
    exec.exec("update blobs set last_used_ms = $1 where sha256 = $2 and last_used_ms < $1", params![now_ms, sha256])
        .await?;
    Ok(())
}

impl SqlCatalog {
    /// One due check, in a transaction of its own; whether it released the hold.
    async fn take_hold_check(
        &self,
        user: i64,
        sha256: &Sha256Hex,
        reason: HoldCheck,
        due: i64,
    ) -> CatalogResult<Option<bool>> {
        let mut tx = self.db.begin().await?;
        // a commit of this content holds the same lock (PostgreSQL) for its whole transaction,
        // so its hold and its own check are either all seen here or written after this ends
        lock_name(&mut tx, &format!("blob:{sha256}")).await?;
        let taken = "delete from hold_checks where user_id = $1 and sha256 = $2 and reason = $3 and since_ms <= $4
                     returning since_ms";
        let Some(taken) = tx.opt(taken, params![user, sha256, reason.as_str(), due]).await? else {
            return Ok(None); // taken by another pass, or moved later meanwhile
        };
        if reason != HoldCheck::Committed {
            // content that was used and then let go of: the upload that brought it needs no
            // more time (a later upload of it still does)
            let since: i64 = taken.get(0)?;
            let moot = "delete from hold_checks where user_id = $1 and sha256 = $2 and reason = 'committed' and since_ms <= $3";
            tx.exec(moot, params![user, sha256, since]).await?;
        }
        let held =
            tx.opt("select 1 from holds where user_id = $1 and sha256 = $2", params![user, sha256]).await?.is_some();
        let pending = "select 1 from hold_checks where user_id = $1 and sha256 = $2";
        let still_needed = tx.opt(pending, params![user, sha256]).await?.is_some()
            || tx.opt(USED_BY_ACCOUNT, params![user, sha256]).await?.is_some();
        if still_needed {
            tx.commit().await?;
            return Ok(Some(false));
        }
        if held {
            tx.exec("delete from holds where user_id = $1 and sha256 = $2", params![user, sha256]).await?;
        }
        candidate_if_unheld(&mut tx, sha256, now_ms()).await?;
        tx.commit().await?;
        Ok(Some(held))
    }
}

#[async_trait]
impl Lifecycle for SqlCatalog {
    async fn purge_deleted(&self, cutoff_ms: i64, limit: u32) -> CatalogResult<usize> {
        let mut tx = self.db.begin().await?;
        let tombstones = format!(
            "select m.id, v.user_id, m.sha256, m.deleted_ms from media m join volumes v on v.id = m.volume_id
             where m.is_deleted and m.deleted_ms <= $1 order by m.deleted_ms limit {limit}"
        );
        let tombstones = tx.rows(&tombstones, params![cutoff_ms]).await?;
        let events = format!(
            "select e.id, e.user_id, e.sha256, e.thumbnail_sha256, e.deleted_ms from events e
             where e.is_deleted and e.deleted_ms <= $1 order by e.deleted_ms limit {limit}"
        );
        let events = tx.rows(&events, params![cutoff_ms]).await?;
        // Only what is still deleted goes (an item revived meanwhile stays), and its check counts
        // from the delete: an upload of the content after the delete keeps its own time.
        let mut purged = 0;
        for row in &tombstones {
            let (id, user, sha256, deleted): (i64, i64, Sha256Hex, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let gone = "delete from media where id = $1 and is_deleted and deleted_ms <= $2";
            if tx.exec(gone, params![id, cutoff_ms]).await? > 0 {
                check_hold(&mut tx, UserId(user), &sha256, HoldCheck::Unreferenced, deleted).await?;
                purged += 1;
            }
        }
        for row in &events {
            let (id, user, deleted): (String, i64, i64) = (row.get(0)?, row.get(1)?, row.get(4)?);
            let gone = "delete from events where id = $1 and is_deleted and deleted_ms <= $2";
            if tx.exec(gone, params![&id, cutoff_ms]).await? == 0 {
                continue;
            }
            purged += 1;
            for used in [row.get::<Option<Sha256Hex>>(2)?, row.get::<Option<Sha256Hex>>(3)?].into_iter().flatten() {
                check_hold(&mut tx, UserId(user), &used, HoldCheck::Unreferenced, deleted).await?;
            }
        }
        tx.commit().await?;
        Ok(purged)
    }

    async fn release_holds(&self, at_ms: i64, lifetimes: HoldLifetimes, limit: u32) -> CatalogResult<(usize, usize)> {
        let due = |after: Duration| at_ms - after.as_millis() as i64;
        let reasons = [
            (HoldCheck::Unreferenced, at_ms),
            (HoldCheck::Deleted, due(lifetimes.retention)),
            (HoldCheck::Committed, due(lifetimes.upload_expiry)),
        ];
        let (mut taken, mut released) = (0, 0);
        for (reason, due) in reasons {
            let sql = format!(
                "select user_id, sha256 from hold_checks where reason = $1 and since_ms <= $2
                 order by since_ms limit {limit}"
            );
            let checks = self.db.read().await?.rows(&sql, params![reason.as_str(), due]).await?;
            for check in checks {
                let (user, sha256): (i64, Sha256Hex) = (check.get(0)?, check.get(1)?);
                if let Some(went) = self.take_hold_check(user, &sha256, reason, due).await? {
                    taken += 1;
                    released += usize::from(went);
                }
            }
        }
        Ok((taken, released))
    }

    async fn collect_blob(&self, cutoff_ms: i64, delete_bytes: ByteDeleter) -> CatalogResult<Collection> {
        let pick = "select sha256, since_ms from collect_candidates where since_ms <= $1 order by since_ms limit 1";
        let Some(candidate) = self.db.read().await?.opt(pick, params![cutoff_ms]).await? else {
            return Ok(Collection::Nothing);
        };
        let (sha256, picked_since): (Sha256Hex, i64) = (candidate.get(0)?, candidate.get(1)?);
        let mut section = self.section(&sha256, Access::Exclusive).await?;
        // Checked again inside the section (and on PostgreSQL with the row locked: a write
        // that would reference the blob checks its foreign key under a share lock on it, so
        // none can commit from here, and none committed before is missed by the re-check).
        let lock = format!("select size, last_used_ms from blobs where sha256 = $1{}", section.dialect().for_update());
        let blob = section.opt(&lock, params![&sha256]).await?;
        let referenced = format!("select 1 from blobs b where b.sha256 = $1 and ({REFERENCED})");
        let unused = match blob {
            Some(row) if section.opt(&referenced, params![&sha256]).await?.is_none() => Some(row),
            _ => None,
        };
        let Some(blob) = unused else {
            // needed again: whatever lets go of it next makes it a candidate again (a release
            // that did so meanwhile moved `since_ms`, and its candidate stays)
            let kept = "delete from collect_candidates where sha256 = $1 and since_ms = $2";
            section.exec(kept, params![&sha256, picked_since]).await?;
            section.commit().await?;
            return Ok(Collection::Kept(sha256));
        };
        let (size, last_used): (i64, i64) = (blob.get(0)?, blob.get(1)?);
        if last_used > cutoff_ms {
            // committed again within the grace period: it waits its grace from then
            let later = "update collect_candidates set since_ms = $1 where sha256 = $2";
            section.exec(later, params![last_used, &sha256]).await?;
            section.commit().await?;
            return Ok(Collection::Kept(sha256));
        }
        // its media result and rendition go with it; the generated thumbnail and rendition
        // they kept alive are candidates now
        let generated = "select thumbnail_sha256 from blob_media where sha256 = $1 and thumbnail_sha256 is not null
                         union all select rendition_sha256 from blob_renditions
                         where sha256 = $1 and rendition_sha256 is not null";
        let generated: Vec<Sha256Hex> =
            section.rows(generated, params![&sha256]).await?.iter().map(|row| row.get(0)).collect::<Result<_, _>>()?;
        section.exec("delete from blob_media where sha256 = $1", params![&sha256]).await?;
        section.exec("delete from blob_renditions where sha256 = $1", params![&sha256]).await?;
        for blob in &generated {
            candidate_if_unheld(&mut section, blob, now_ms()).await?;
        }
        section.exec("delete from collect_candidates where sha256 = $1", params![&sha256]).await?;
        section.exec("delete from blobs where sha256 = $1", params![&sha256]).await?;
        let intent = write_intent(&mut section, &sha256, Kind::Collect).await?;
        section.commit().await?;
        // Rows first (with the intent), then bytes, still inside the section: a crash or a
        // failed delete leaves bytes the intent names; never a row without bytes.
        match delete_bytes(sha256.clone()).await {
            Ok(()) => {
                section.exec("delete from blob_intents where id = $1", params![intent]).await?;
                section.commit().await?;
            }
            Err(e) => tracing::warn!(error = %e, %sha256, "a collected blob's bytes stay until the intent sweep"),
        }
        Ok(Collection::Collected { sha256, size })
    }
}
