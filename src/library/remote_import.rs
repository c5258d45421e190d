//! Remote imports (`remote_fetch` jobs): fetch a URL (see `remote`), commit it and file it
//! in the user's folder. Refusals and client errors fail the job at once; network trouble
//! and server errors are retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Folder, LibraryFiles, NewFile};
use crate::catalog::{Job, JobOutcome};
use crate::config::Config;
use crate::domain::UserId;
use crate::ingest::IngestError;
use crate::jobs::JobHandler;
use crate::remote::{FetchError, RemotePolicy, fetch, title_from};

/// Runs `remote_fetch` jobs.
pub struct RemoteImports {
    library: LibraryFiles,
    remote: Arc<RemotePolicy>,
    config: Arc<Config>,
}

impl RemoteImports {
    pub fn new(library: LibraryFiles, remote: Arc<RemotePolicy>, config: Arc<Config>) -> Self {
        Self { library, remote, config }
    }
}

/// A `remote_fetch` job's payload.
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

#[async_trait]
impl JobHandler for RemoteImports {
    async fn run(&self, job: &Job) -> JobOutcome {
        self.import(job).await
    }
}

impl RemoteImports {
    async fn import(&self, job: &Job) -> JobOutcome {
        let task: RemoteFetch = match serde_json::from_value(job.payload.clone()) {
            Ok(task) => task,
            Err(e) => return JobOutcome::Failed { error: format!("bad job payload: {e}") },
        };
        let Ok(url) = reqwest::Url::parse(&task.url) else {
            return JobOutcome::Failed { error: format!("'{}' is not a URL", task.url) };
        };
        let config = &self.config;
        let fetched =
            match fetch(&self.remote, &self.library.ingest, url, config.max_upload_size, config.remote_timeout).await {
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
        // scheme, host and path only: a query string may be a signature (a presigned URL)
        let final_url = fetched.final_url.as_str();
        let source = crate::redact::url_passwords(final_url.split(['?', '#']).next().unwrap_or(final_url)).into_owned();
        match self.library.add(new, fetched.received).await {
            Ok(file) => {
                tracing::info!(file_id = %file.file_id, size = file.size, %source, "remote import stored");
                JobOutcome::Done
            }
            Err(e) => JobOutcome::Retry { error: e.to_string(), after: backoff(job.attempts) },
        }
    }
}
