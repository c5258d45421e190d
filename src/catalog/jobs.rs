//! The job queue: a claim leases the oldest runnable job of the kinds the claimer runs (on
//! PostgreSQL skipping rows another claimer has locked, so replicas never wait on each other
//! nor take one job twice), skipping the jobs of an account that already has its share of a
//! kind's workers; a running job whose lease passed (its worker died) is runnable again.

use std::time::Duration;

use async_trait::async_trait;

use super::db::{Dialect, Exec};
use super::rows::{self, JOB};
use super::*;
use crate::clock::now_ms;
use crate::domain::{JobKind, UserId};

/// Jobs are tried this many times before they are marked failed.
pub const MAX_ATTEMPTS: i64 = 5;

/// Which jobs a claim may take.
#[derive(Debug, Clone, Copy)]
pub struct ClaimScope<'a> {
    /// The kinds the claimer runs (all kinds when empty).
    pub kinds: &'a [JobKind],
    /// An account with this many running jobs of a kind gets no more of it until one ends:
    /// the rest of the kind's workers stay free for other accounts.
    pub per_owner: u32,
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a job; a job with the same `dedup_key` that is not finished is not queued twice
    /// (its id is returned).
    async fn enqueue_job(
        &self,
        kind: JobKind,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> CatalogResult<i64> {
        self.enqueue_job_for(kind, payload, dedup_key, None).await
    }
    /// [`JobQueue::enqueue_job`] for work done on behalf of `owner` (see [`ClaimScope`]).
    async fn enqueue_job_for(
        &self,
        kind: JobKind,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        owner: Option<UserId>,
    ) -> CatalogResult<i64>;
    /// Claims the oldest runnable job of any kind, leasing it for `lease` (an expired lease
    /// makes a running job claimable again, so a dead worker's job is retried).
    async fn claim_job(&self, lease: Duration) -> CatalogResult<Option<Job>> {
        self.claim_job_in(lease, ClaimScope { kinds: &[], per_owner: u32::MAX }).await
    }
    /// Claims a runnable job within `scope`: one whose lease passed (its worker died) first,
    /// else the pending one due first.
    async fn claim_job_in(&self, lease: Duration, scope: ClaimScope<'_>) -> CatalogResult<Option<Job>>;
    /// Extends the lease of a running job (its worker is alive); `false` when it is not running.
    async fn renew_job(&self, job_id: i64, lease: Duration) -> CatalogResult<bool>;
    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()>;
    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>>;
    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>>;
}

/// A job to insert.
struct NewJob<'a> {
    kind: JobKind,
    payload: String,
    key: Option<&'a str>,
    owner: Option<UserId>,
}

/// Inserts a job unless an unfinished one has its key; returns the new job's id, if any.
async fn insert(exec: &mut dyn Exec, job: &NewJob<'_>, now: i64) -> CatalogResult<Option<i64>> {
    let sql = "insert into jobs (kind, payload, dedup_key, owner_id, run_after_ms, created_ms, updated_ms)
               values ($1, $2, $3, $4, $5, $5, $5)
               on conflict (dedup_key) where dedup_key is not null and status in ('pending', 'running') do nothing
               returning id";
    let owner = job.owner.map(|o| o.0);
    exec.opt(sql, params![job.kind.as_str(), &job.payload, job.key, owner, now]).await?.map(|r| r.get(0)).transpose()
}

/// Queues a job of new content (`domain::media_job`, `domain::device_hash_job`) in the
/// caller's transaction (see `Blobs::commit_blob`); a queued or running one of the same
/// content is enough.
pub(super) async fn enqueue_for_content(
    exec: &mut dyn Exec,
    (kind, payload, key): (JobKind, serde_json::Value, String),
    now: i64,
) -> CatalogResult<()> {
    let job = NewJob { kind, payload: payload.to_string(), key: Some(&key), owner: None };
    insert(exec, &job, now).await?;
    Ok(())
}

/// The claim statement for `kinds` kinds (0: any). Each candidate is found by walking the
/// `jobs_claim` index in claim order and taking the first that passes: a job whose lease
/// passed (its worker died) before the pending ones. One statement that ORed the two read and
/// sorted every pending job on each claim, so a backlog of media jobs (P6 queues one per
/// small file) made claiming quadratic: a third of the server's CPU.
fn claim_sql(dialect: Dialect, kinds: usize) -> String {
    let kinds = match kinds {
        0 => String::new(),
        // a worker claims for its one kind: an index seek
        1 => "and j.kind = $4".to_owned(),
        _ => format!("and j.kind in (select v from {} w)", dialect.list(4)),
    };
    let first = |state: &str| {
        format!(
            "(select j.id from jobs j
              where {state} {kinds}
                and (j.owner_id is null or (select count(*) from jobs r
                     where r.kind = j.kind and r.owner_id = j.owner_id and r.status = 'running'
                       and r.lease_until_ms >= $2) < $3)
              order by j.run_after_ms, j.id limit 1{})",
            skip_locked(dialect)
        )
    };
    format!(
        "update jobs set status = 'running', attempts = attempts + 1, lease_until_ms = $1, updated_ms = $2
         where id = coalesce({}, {})
         returning {}",
        first("j.status = 'running' and j.lease_until_ms < $2"),
        first("j.status = 'pending' and j.run_after_ms <= $2"),
        JOB.replace("j.", "")
    )
}

fn skip_locked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " for update skip locked",
    }
}

#[async_trait]
impl JobQueue for SqlCatalog {
    async fn enqueue_job_for(
        &self,
        kind: JobKind,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        owner: Option<UserId>,
    ) -> CatalogResult<i64> {
        let job = NewJob { kind, payload: payload.to_string(), key: dedup_key, owner };
        // The unfinished job of this key may finish between a refused insert and the select
        // that looks for it; then the insert is simply tried again.
        for _ in 0..3 {
            let mut tx = self.db.begin().await?;
            let queued = match insert(&mut tx, &job, now_ms()).await? {
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

    async fn claim_job_in(&self, lease: Duration, scope: ClaimScope<'_>) -> CatalogResult<Option<Job>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        if scope.per_owner != u32::MAX {
            // claims of a kind with a share per account take turns: each sees the ones before
            // it (on PostgreSQL, workers woken together would all count an account's running
            // jobs before any of theirs was claimed, and all take hers)
            let kinds: Vec<&str> = scope.kinds.iter().map(|k| k.as_str()).collect();
            super::section::lock_name(&mut tx, &format!("job-claims:{}", kinds.join(","))).await?;
        }
        let dialect = tx.dialect();
        let sql = claim_sql(dialect, scope.kinds.len());
        let until = now + lease.as_millis() as i64;
        let per_owner = i64::from(scope.per_owner);
        let row = match scope.kinds {
            [] => tx.opt(&sql, params![until, now, per_owner]).await?,
            [kind] => tx.opt(&sql, params![until, now, per_owner, kind.as_str()]).await?,
            kinds => {
                let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                tx.opt(&sql, params![until, now, per_owner, db::Value::list(&kinds)]).await?
            }
        };
        tx.commit().await?;
        row.map(|r| rows::job(&r, 0)).transpose()
    }

    async fn renew_job(&self, job_id: i64, lease: Duration) -> CatalogResult<bool> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let renewed = tx
            .exec(
                "update jobs set lease_until_ms = $1, updated_ms = $2 where id = $3 and status = 'running'",
                params![now + lease.as_millis() as i64, now, job_id],
            )
            .await?;
        tx.commit().await?;
        Ok(renewed == 1)
    }

    async fn finish_job(&self, job_id: i64, outcome: JobOutcome) -> CatalogResult<()> {
        let now = now_ms();
        let (status, error, code, run_after) = match outcome {
            JobOutcome::Done => ("done", None, None, now),
            JobOutcome::Failed { error } => ("failed", Some(error), None, now),
            JobOutcome::Refused { code, error } => ("failed", Some(error), Some(code.as_str()), now),
            JobOutcome::Retry { error, after } => ("pending", Some(error), None, now + after.as_millis() as i64),
        };
        let mut tx = self.db.begin().await?;
        // a retry past the last attempt is a failure
        tx.exec(
            "update jobs set status = case when $1 = 'pending' and attempts >= $2 then 'failed' else $1 end,
                 last_error = coalesce($3, last_error), failure_code = $4, run_after_ms = $5, lease_until_ms = null,
                 updated_ms = $6
             where id = $7",
            params![status, MAX_ATTEMPTS, error, code, run_after, now, job_id],
        )
        .await?;
        tx.commit().await
    }

    async fn list_jobs(&self, status: Option<JobStatus>) -> CatalogResult<Vec<Job>> {
        let (filter, params) = match status {
            Some(status) => ("where j.status = $1", params![status.as_str()].to_vec()),
            None => ("", Vec::new()),
        };
        let rows =
            self.db.read().await?.rows(&format!("select {JOB} from jobs j {filter} order by j.id"), &params).await?;
        rows.iter().map(|r| rows::job(r, 0)).collect()
    }

    async fn job(&self, job_id: i64) -> CatalogResult<Option<Job>> {
        let sql = format!("select {JOB} from jobs j where j.id = $1");
        let row = self.db.read().await?.opt(&sql, params![job_id]).await?;
        row.map(|r| rows::job(&r, 0)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::open::sqlite_plan;

    #[tokio::test]
    async fn a_worker_claims_by_walking_an_index_whatever_the_backlog() {
        let steps = sqlite_plan(&claim_sql(Dialect::Sqlite, 1)).await;
        // no step reads every job, and none sorts them
        assert!(!steps.iter().any(|s| s.starts_with("SCAN") || s.contains("TEMP B-TREE")), "{steps:#?}");
        assert!(steps.iter().filter(|s| s.contains("USING INDEX jobs_claim")).count() == 2, "{steps:#?}");
    }
}
