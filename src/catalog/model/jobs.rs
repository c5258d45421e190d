//! Background jobs as queued.

use serde::Serialize;

use crate::domain::{JobKind, UserId};

/// A queued background job. Its payload keeps what the job needs, secrets included (a
/// remote import's URL with its password); serialising or debug-printing a job shows URL
/// passwords as `***` ([`crate::redact`]), so no output path shows them.
#[derive(Clone, Serialize)]
pub struct Job {
    pub job_id: i64,
    pub kind: JobKind,
    #[serde(serialize_with = "crate::redact::serialize_json")]
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub attempts: i64,
    #[serde(serialize_with = "crate::redact::serialize_text")]
    pub last_error: Option<String>,
    /// A stable code for a failure callers act on (see [`JobOutcome::Refused`]).
    pub failure_code: Option<String>,
    /// The account the job works for (its fair share of a kind's workers).
    pub owner_id: Option<UserId>,
    pub run_after: String,
    pub updated: String,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("job_id", &self.job_id)
            .field("kind", &self.kind)
            .field("payload", &crate::redact::json_url_passwords(&self.payload))
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error.as_deref().map(crate::redact::url_passwords))
            .field("failure_code", &self.failure_code)
            .field("owner_id", &self.owner_id)
            .field("run_after", &self.run_after)
            .field("updated", &self.updated)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [JobStatus::Pending, JobStatus::Running, JobStatus::Done, JobStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// How a claimed job ended.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Done,
    /// Retry after the given delay, unless attempts are exhausted (then `Failed`).
    Retry {
        error: String,
        after: std::time::Duration,
    },
    Failed {
        error: String,
    },
    /// Failed for a reason callers act on: `code` is stable (e.g. `gone_from_device`).
    Refused {
        code: crate::domain::ErrorCode,
        error: String,
    },
}
