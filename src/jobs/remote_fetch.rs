//! The `remote_fetch` job: fetch a URL (see `remote`), commit it and file it in the
//! user's folder. Refusals and client errors fail the job at once; network trouble and
//! server errors are retried with backoff.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JobRunner;
use crate::catalog::{Job, JobOutcome};
use crate::domain::UserId;
use crate::ingest::IngestError;
use crate::library::{Folder, NewFile};
use crate::remote::{FetchError, fetch, title_from};

pub const KIND: &str = "remote_fetch";

#[derive(Serialize, Deserialize)]
pub struct RemoteFetch {
    pub url: String,
    pub user_id: UserId,
    pub folder_id: i64,
    pub title: Option<String>,
}

fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(0, 8) as u32).min(300))
}

pub async fn run(runner: &JobRunner, job: &Job) -> JobOutcome {
    let task: RemoteFetch = match serde_json::from_value(job.payload.clone()) {
        Ok(task) => task,
        Err(e) => return JobOutcome::Failed { error: format!("bad job payload: {e}") },
    };
    let Ok(url) = reqwest::Url::parse(&task.url) else {
        return JobOutcome::Failed { error: format!("'{}' is not a URL", task.url) };
    };
    let config = &runner.config;
    let fetched = match fetch(&runner.remote, &runner.ingest, url, config.max_upload_size, config.remote_timeout).await
    {
        Ok(fetched) => fetched,
        Err(FetchError::Refused(why)) => return JobOutcome::Failed { error: why },
        Err(FetchError::Status(status)) if status < 500 => {
            return JobOutcome::Failed { error: format!("the remote server answered {status}") };
        }
        Err(FetchError::Ingest(IngestError::TooLarge { limit })) => {
            return JobOutcome::Failed { error: format!("the remote file is larger than {limit} bytes") };
        }
        Err(other) => return JobOutcome::Retry { error: other.to_string(), after: backoff(job.attempts) },
    };
    let new = NewFile {
        title: Some(task.title.clone().unwrap_or_else(|| title_from(&fetched.final_url))),
        content_type: fetched.content_type.clone(),
        job: Some(job.job_id),
        ..NewFile::in_folder(task.user_id, Folder::Id(task.folder_id))
    };
    match runner.library.add(new, fetched.received).await {
        Ok(_) => JobOutcome::Done,
        Err(e) => JobOutcome::Retry { error: e.to_string(), after: backoff(job.attempts) },
    }
}
