//! The job queue on PostgreSQL: a claim leases the oldest runnable row, skipping rows
//! another claimer has locked, so replicas never wait on each other nor take one job twice.
//! A running job whose lease passed (its worker died) is runnable again.

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use crate::catalog::rows::JobRow;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::Sha256Hex;

/// Jobs are tried this many times before they are marked failed (as on SQLite).
pub const MAX_ATTEMPTS: i64 = 5;

const JOB_COLUMNS: &str = "id, kind, payload, status, attempts, last_error, run_after_ms, updated_ms";

pub async fn enqueue(
    pool: &PgPool,
    kind: &str,
    payload: &serde_json::Value,
    dedup_key: Option<&str>,
) -> CatalogResult<i64> {
    // The unfinished job of this key may finish between a refused insert and the select
    // that looks for it; then the insert is simply tried again.
    for _ in 0..3 {
        let now = now_ms();
        let inserted: Option<(i64,)> = sqlx::query_as(
            "insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms)
             values ($1, $2, $3, $4, $4, $4)
             on conflict (dedup_key) where dedup_key is not null and status in ('pending', 'running') do nothing
             returning id",
        )
        .bind(kind)
        .bind(payload.to_string())
        .bind(dedup_key)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        if let Some((id,)) = inserted {
            return Ok(id);
        }
        let queued: Option<(i64,)> =
            sqlx::query_as("select id from jobs where dedup_key = $1 and status in ('pending', 'running')")
                .bind(dedup_key)
                .fetch_optional(pool)
                .await?;
        if let Some((id,)) = queued {
            return Ok(id);
        }
    }
    Err(CatalogError::Conflict(format!("job key '{}' keeps changing state", dedup_key.unwrap_or_default())))
}

/// Queues the media job of content just recorded, in the caller's transaction (see
/// `Catalog::commit_blob`); a queued or running one of the same content is enough.
pub(super) async fn enqueue_media(
    tx: &mut Transaction<'_, Postgres>,
    sha256: &Sha256Hex,
    now: i64,
) -> CatalogResult<()> {
    sqlx::query(
        "insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms)
         values ($1, $2, $3, $4, $4, $4)
         on conflict (dedup_key) where dedup_key is not null and status in ('pending', 'running') do nothing",
    )
    .bind(crate::media::PROCESS_KIND)
    .bind(crate::media::process_payload(sha256).to_string())
    .bind(crate::media::process_key(sha256))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn claim(pool: &PgPool, lease: Duration) -> CatalogResult<Option<Job>> {
    let now = now_ms();
    let row: Option<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with next as (
             select id as next_id from jobs
             where (status = 'pending' and run_after_ms <= $2) or (status = 'running' and lease_until_ms < $2)
             order by run_after_ms, id limit 1
             for update skip locked)
         update jobs set status = 'running', attempts = attempts + 1, lease_until_ms = $1, updated_ms = $2
         from next where id = next_id
         returning {JOB_COLUMNS}"
    )))
    .bind(now + lease.as_millis() as i64)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(JobRow::into_job).transpose()
}

pub async fn finish(pool: &PgPool, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
    let now = now_ms();
    let (status, error, run_after) = match outcome {
        JobOutcome::Done => ("done", None, now),
        JobOutcome::Failed { error } => ("failed", Some(error), now),
        JobOutcome::Retry { error, after } => ("pending", Some(error), now + after.as_millis() as i64),
    };
    // a retry past the last attempt is a failure
    sqlx::query(
        "update jobs set status = case when $1 = 'pending' and attempts >= $2 then 'failed' else $1 end,
             last_error = coalesce($3, last_error), run_after_ms = $4, lease_until_ms = null, updated_ms = $5
         where id = $6",
    )
    .bind(status)
    .bind(MAX_ATTEMPTS)
    .bind(error)
    .bind(run_after)
    .bind(now)
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn list(pool: &PgPool, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
    let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {JOB_COLUMNS} from jobs where $1::text is null or status = $1 order by id"
    )))
    .bind(status.map(JobStatus::as_str))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

pub async fn get(pool: &PgPool, job_id: i64) -> CatalogResult<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(AssertSqlSafe(format!("select {JOB_COLUMNS} from jobs where id = $1")))
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
    row.map(JobRow::into_job).transpose()
}
