//! One-time signed targets on PostgreSQL (`used_targets`). A claim is one guarded upsert, so
//! two uploads through the same URL can never both hold it, on one replica or many.

use sqlx::PgPool;

use crate::catalog::*;
use crate::clock::now_ms;

pub async fn claim(pool: &PgPool, target: &str, lease_until_ms: i64, expires_ms: i64) -> CatalogResult<TargetClaim> {
    // a new row, or an abandoned in-flight claim taken over
    let claimed = sqlx::query(
        "insert into used_targets (target, used_ms, claimed_until_ms, expires_ms) values ($1, null, $2, $3)
         on conflict (target) do update set claimed_until_ms = excluded.claimed_until_ms
         where used_targets.used_ms is null and used_targets.claimed_until_ms < $4",
    )
    .bind(target)
    .bind(lease_until_ms)
    .bind(expires_ms)
    .bind(now_ms())
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 1 {
        return Ok(TargetClaim::Claimed);
    }
    let used: Option<(Option<i64>,)> =
        sqlx::query_as("select used_ms from used_targets where target = $1").bind(target).fetch_optional(pool).await?;
    Ok(match used {
        Some((Some(_),)) => TargetClaim::Used,
        _ => TargetClaim::InFlight,
    })
}

pub async fn release(pool: &PgPool, target: &str, used: bool) -> CatalogResult<()> {
    if used {
        sqlx::query("update used_targets set used_ms = $1 where target = $2")
            .bind(now_ms())
            .bind(target)
            .execute(pool)
            .await?;
    } else {
        sqlx::query("delete from used_targets where target = $1 and used_ms is null")
            .bind(target)
            .execute(pool)
            .await?;
    }
    Ok(())
}

pub async fn forget_expired(pool: &PgPool) -> CatalogResult<usize> {
    let done = sqlx::query("delete from used_targets where expires_ms < $1").bind(now_ms()).execute(pool).await?;
    Ok(done.rows_affected() as usize)
}
