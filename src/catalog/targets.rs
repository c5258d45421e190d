//! Signed upload targets that may be used once (`used_targets`): the gallery's `upload_url`
//! and `thumbnail_upload_url`. A claim is one guarded upsert, so two uploads through the same
//! URL can never both hold it, on one replica or many.

use async_trait::async_trait;

use super::db::Exec;
use super::*;
use crate::clock::now_ms;

#[async_trait]
pub trait Targets: Send + Sync {
    /// Claims a one-time signed target before its body is read: `Claimed` for the first
    /// upload through it (held until `lease_until_ms`, or given back by
    /// [`Targets::release_target`]); `Used` after a successful one; `InFlight` while another
    /// upload holds it. The row may be forgotten after `expires_ms` (the URL's own expiry).
    async fn claim_target(&self, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim>;
    /// Ends a claim: `used` marks the target used for good; otherwise the claim is given back.
    async fn release_target(&self, target: &str, used: bool) -> CatalogResult<()>;
    /// Forgets targets whose URLs have expired; returns how many.
    async fn forget_expired_targets(&self) -> CatalogResult<usize>;
}

#[async_trait]
impl Targets for SqlCatalog {
    async fn claim_target(&self, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim> {
        let mut tx = self.db.begin().await?;
        // a new row, or an abandoned in-flight claim taken over
        let claimed = tx
            .exec(
                "insert into used_targets (target, used_ms, claimed_until_ms, expires_ms) values ($1, null, $2, $3)
                 on conflict (target) do update set claimed_until_ms = excluded.claimed_until_ms
                 where used_targets.used_ms is null and used_targets.claimed_until_ms < $4",
                params![target, lease_until_ms, expires_ms, now_ms()],
            )
            .await?;
        let used = tx.opt("select used_ms from used_targets where target = $1", params![target]).await?;
        tx.commit().await?;
        if claimed == 1 {
            return Ok(TargetClaim::Claimed);
        }
        Ok(match used.map(|r| r.get::<Option<i64>>(0)).transpose()?.flatten() {
            Some(_) => TargetClaim::Used,
            None => TargetClaim::InFlight,
        })
    }

    async fn release_target(&self, target: &str, used: bool) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        if used {
            tx.exec("update used_targets set used_ms = $1 where target = $2", params![now_ms(), target]).await?;
        } else {
            tx.exec("delete from used_targets where target = $1 and used_ms is null", params![target]).await?;
        }
        tx.commit().await
    }

    async fn forget_expired_targets(&self) -> CatalogResult<usize> {
        let mut tx = self.db.begin().await?;
        let done = tx.exec("delete from used_targets where expires_ms < $1", params![now_ms()]).await?;
        tx.commit().await?;
        Ok(done as usize)
    }
}
