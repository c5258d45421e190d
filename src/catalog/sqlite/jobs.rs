//! The job queue on SQLite: claim = pick the oldest runnable row and lease it, in the
//! single writer's transaction.

use std::time::Duration;

use sqlx::{AssertSqlSafe, SqliteConnection, SqlitePool};

use super::on_unique;
use crate::catalog::rows::JobRow;
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::Sha256Hex;

/// Jobs are tried this many times before they are marked failed.
pub const MAX_ATTEMPTS: i64 = 5;

const JOB_COLUMNS: &str = "id, kind, payload, status, attempts, last_error, run_after_ms, updated_ms";

pub async fn enqueue(
    writer: &SqlitePool,
    kind: &str,
    payload: &serde_json::Value,
    dedup_key: Option<&str>,
) -> CatalogResult<i64> {
    let now = now_ms();
    let inserted: Result<(i64,), _> = sqlx::query_as(
        "insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms) values (?, ?, ?, ?, ?, ?) returning id",
    )
    .bind(kind)
    .bind(payload.to_string())
    .bind(dedup_key)
    .bind(now)
    .bind(now)
    .bind(now)
    .fetch_one(writer)
    .await;
    match inserted.map_err(|e| on_unique(e, String::new)) {
        Ok((id,)) => Ok(id),
        Err(CatalogError::Conflict(_)) => {
            let (id,): (i64,) =
                sqlx::query_as("select id from jobs where dedup_key = ? and status in ('pending', 'running')")
                    .bind(dedup_key)
                    .fetch_one(writer)
                    .await?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// Queues the media job of content just recorded, in the caller's transaction (see
/// `Catalog::commit_blob`); a queued or running one of the same content is enough.
pub(super) async fn enqueue_media(conn: &mut SqliteConnection, sha256: &Sha256Hex, now: i64) -> CatalogResult<()> {
    sqlx::query(
        "insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms) values (?, ?, ?, ?, ?, ?)
         on conflict do nothing",
    )
    .bind(crate::media::PROCESS_KIND)
    .bind(crate::media::process_payload(sha256).to_string())
    .bind(crate::media::process_key(sha256))
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn claim(writer: &SqlitePool, lease: Duration) -> CatalogResult<Option<Job>> {
    let now = now_ms();
    let row: Option<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update jobs set status = 'running', attempts = attempts + 1, lease_until_ms = ?, updated_ms = ?
         where id = (select id from jobs
                     where (status = 'pending' and run_after_ms <= ?)
                        or (status = 'running' and lease_until_ms < ?)
                     order by run_after_ms, id limit 1)
         returning {JOB_COLUMNS}"
    )))
    .bind(now + lease.as_millis() as i64)
    .bind(now)
    .bind(now)
    .bind(now)
    .fetch_optional(writer)
    .await?;
    row.map(JobRow::into_job).transpose()
}

pub async fn finish(writer: &SqlitePool, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
    let now = now_ms();
    let (status, error, run_after) = match outcome {
        JobOutcome::Done => ("done", None, now),
        JobOutcome::Failed { error } => ("failed", Some(error), now),
        JobOutcome::Retry { error, after } => ("pending", Some(error), now + after.as_millis() as i64),
    };
    // a retry past the last attempt is a failure
    sqlx::query(
        "update jobs set status = case when ? = 'pending' and attempts >= ? then 'failed' else ? end,
             last_error = coalesce(?, last_error), run_after_ms = ?, lease_until_ms = null, updated_ms = ?
         where id = ?",
    )
    .bind(status)
    .bind(MAX_ATTEMPTS)
    .bind(status)
    .bind(error)
    .bind(run_after)
    .bind(now)
    .bind(job_id)
    .execute(writer)
    .await?;
    Ok(())
}

pub async fn list(reader: &SqlitePool, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
    let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {JOB_COLUMNS} from jobs where ? is null or status = ? order by id"
    )))
    .bind(status.map(JobStatus::as_str))
    .bind(status.map(JobStatus::as_str))
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

pub async fn get(reader: &SqlitePool, job_id: i64) -> CatalogResult<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(AssertSqlSafe(format!("select {JOB_COLUMNS} from jobs where id = ?")))
        .bind(job_id)
        .fetch_optional(reader)
        .await?;
    row.map(JobRow::into_job).transpose()
}
