//! The job queue: a claim leases the oldest runnable job (on PostgreSQL skipping rows another
//! claimer has locked, so replicas never wait on each other nor take one job twice); a
//! running job whose lease passed (its worker died) is runnable again.

use std::time::Duration;

use async_trait::async_trait;

use super::db::{Dialect, Exec};
use super::rows::{self, JOB};
use super::*;
use crate::clock::now_ms;

/// Jobs are tried this many times before they are marked failed.
pub const MAX_ATTEMPTS: i64 = 5;

#[async_trait]
pub trait JobQueue {
    /// Queues a job; a job with the same `dedup_key` that is not finished is not queued twice
    /// (its id is returned).
    async fn enqueue_job(&self, kind: &str, payload: &serde_json::Value, dedup_key: Option<&str>)
    -> CatalogResult<i64>;
    /// Claims the oldest runnable job, leasing it for `lease` (an expired lease makes a
    /// running job claimable again, so a dead worker's job is retried).
    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>>;
    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()>;
    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>>;
    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>>;
}

/// Inserts a job unless an unfinished one has its key; returns the new job's id, if any.
async fn insert(
    exec: &mut dyn Exec,
    kind: &str,
    payload: &str,
    key: Option<&str>,
    now: i64,
) -> CatalogResult<Option<i64>> {
    let sql = "insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms)
               values ($1, $2, $3, $4, $4, $4)
               on conflict (dedup_key) where dedup_key is not null and status in ('pending', 'running') do nothing
               returning id";
    exec.opt(sql, params![kind, payload, key, now]).await?.map(|r| r.get(0)).transpose()
}

/// Queues the media job of new content in the caller's transaction (see
/// `Blobs::commit_blob`); a queued or running one of the same content is enough.
pub(super) async fn enqueue_media(exec: &mut dyn Exec, sha256: &Sha256Hex, now: i64) -> CatalogResult<()> {
    let (kind, payload, key) = crate::domain::media_job(sha256);
    insert(exec, kind.as_str(), &payload.to_string(), Some(&key), now).await?;
    Ok(())
}

fn skip_locked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " for update skip locked",
    }
}

#[async_trait]
impl JobQueue for SqlCatalog {
    async fn enqueue_job(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> CatalogResult<i64> {
        // The unfinished job of this key may finish between a refused insert and the select
        // that looks for it; then the insert is simply tried again.
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let inserted = insert(&mut tx, kind, &payload.to_string(), dedup_key, now_ms()).await?;
            let queued = match inserted {
                Some(id) => Some(id),
                None => tx
                    .opt(
                        "select id from jobs where dedup_key = $1 and status in ('pending', 'running')",
                        params![dedup_key],
                    )
                    .await?
                    .map(|r| r.get(0))
                    .transpose()?,
            };
            tx.commit().await?;
            if let Some(id) = queued {
                return Ok(id);
            }
        }
        Err(CatalogError::Conflict(format!("job key '{}' keeps changing state", dedup_key.unwrap_or_default())))
    }

    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let sql = format!(
            "update jobs set status = 'running', attempts = attempts + 1, lease_until_ms = $1, updated_ms = $2
             where id = (select id from jobs
                         where (status = 'pending' and run_after_ms <= $2) or (status = 'running' and lease_until_ms < $2)
                         order by run_after_ms, id limit 1{})
             returning {}",
            skip_locked(tx.dialect()),
            JOB.replace("j.", "")
        );
        let row = tx.opt(&sql, params![now + lease.as_millis() as i64, now]).await?;
        tx.commit().await?;
        row.map(|r| rows::job(&r, 0)).transpose()
    }

    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
        let now = now_ms();
        let (status, error, run_after) = match outcome {
            JobOutcome::Done => ("done", None, now),
            JobOutcome::Failed { error } => ("failed", Some(error), now),
            JobOutcome::Retry { error, after } => ("pending", Some(error), now + after.as_millis() as i64),
        };
        let mut tx = self.db.begin().await?;
        // a retry past the last attempt is a failure
        tx.exec(
            "update jobs set status = case when $1 = 'pending' and attempts >= $2 then 'failed' else $1 end,
                 last_error = coalesce($3, last_error), run_after_ms = $4, lease_until_ms = null, updated_ms = $5
             where id = $6",
            params![status, MAX_ATTEMPTS, error, run_after, now, job_id],
        )
        .await?;
        tx.commit().await
    }

    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
        let sql = format!("select {JOB} from jobs j where cast($1 as text) is null or j.status = $1 order by j.id");
        let rows = self.db.read().await?.rows(&sql, params![status.map(JobStatus::as_str)]).await?;
        rows.iter().map(|r| rows::job(r, 0)).collect()
    }

    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>> {
        let sql = format!("select {JOB} from jobs j where j.id = $1");
        let row = self.db.read().await?.opt(&sql, params![job_id]).await?;
        row.map(|r| rows::job(&r, 0)).transpose()
    }
}
