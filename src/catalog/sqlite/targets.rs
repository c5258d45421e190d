//! One-time signed targets on SQLite (`used_targets`). A claim is one guarded upsert, so two
//! uploads through the same URL can never both hold it.

use sqlx::SqlitePool;

use crate::catalog::*;
use crate::clock::now_ms;

pub async fn claim(
    writer: &SqlitePool,
    target: &str,
    lease_until_ms: i64,
    expires_ms: i64,
) -> CatalogResult<TargetClaim> {
    let now = now_ms();
    // a new row, or an abandoned in-flight claim taken over
    let claimed = sqlx::query(
        "insert into used_targets (target, used_ms, claimed_until_ms, expires_ms) values (?1, null, ?2, ?3)
         on conflict (target) do update set claimed_until_ms = excluded.claimed_until_ms
         where used_targets.used_ms is null and used_targets.claimed_until_ms < ?4",
    )
    .bind(target)
    .bind(lease_until_ms)
    .bind(expires_ms)
    .bind(now)
    .execute(writer)
    .await?;
    if claimed.rows_affected() == 1 {
        return Ok(TargetClaim::Claimed);
    }
    let (used,): (Option<i64>,) =
        sqlx::query_as("select used_ms from used_targets where target = ?").bind(target).fetch_one(writer).await?;
    Ok(if used.is_some() { TargetClaim::Used } else { TargetClaim::InFlight })
}

pub async fn release(writer: &SqlitePool, target: &str, used: bool) -> CatalogResult<()> {
    if used {
        sqlx::query("update used_targets set used_ms = ? where target = ?")
            .bind(now_ms())
            .bind(target)
            .execute(writer)
            .await?;
    } else {
        sqlx::query("delete from used_targets where target = ? and used_ms is null")
            .bind(target)
            .execute(writer)
            .await?;
    }
    Ok(())
}

pub async fn forget_expired(writer: &SqlitePool) -> CatalogResult<usize> {
    let done = sqlx::query("delete from used_targets where expires_ms < ?").bind(now_ms()).execute(writer).await?;
    Ok(done.rows_affected() as usize)
}
