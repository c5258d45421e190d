//! `ferry admin jobs …`: the queue, and running it by hand.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, FailureCode, Printed, listed};
use crate::app::Services;
use crate::catalog::JobStatus;
use crate::jobs::BlobWrites;

#[derive(Subcommand, Debug)]
pub(super) enum JobsCommand {
    List {
        /// pending, running, done or failed
        #[arg(long)]
        status: Option<String>,
    },
    Run {
        /// Run until no job or maintenance step has work left.
        #[arg(long)]
        until_idle: bool,
    },
}

pub(super) async fn run(services: &Services, command: JobsCommand) -> Result<Printed, Failure> {
    match command {
        JobsCommand::List { status } => list(services, status).await,
        JobsCommand::Run { until_idle } => run_jobs(services, until_idle).await,
    }
}

async fn list(services: &Services, status: Option<String>) -> Result<Printed, Failure> {
    let status = status
        .map(|s| {
            JobStatus::parse(&s)
                .ok_or_else(|| Failure::new(FailureCode::InvalidArgument, format!("unknown status '{s}'")))
        })
        .transpose()?;
    Ok(listed(&services.catalog.list_jobs(status).await?, |j| {
        format!(
            "job {} {} {} (attempts {}){}",
            j.job_id,
            j.kind,
            j.status.as_str(),
            j.attempts,
            j.last_error.as_deref().map(|e| format!(": {}", crate::redact::url_passwords(e))).unwrap_or_default()
        )
    }))
}

async fn run_jobs(services: &Services, until_idle: bool) -> Result<Printed, Failure> {
    // An SQLite catalog keeps blob commits and collection apart within one process, so
    // beside a running server (which holds the data directory) only the server runs what
    // writes or removes blobs; PostgreSQL's per-blob locks work across processes.
    let dir = &services.config.data_dir;
    let server_lock = crate::app::try_lock_data_dir(dir)
        .map_err(|e| Failure::new(FailureCode::DataDir, format!("cannot check {}: {e:#}", dir.display())))?;
    let sqlite = services.config.database_url.starts_with("sqlite:");
    let collects = server_lock.is_some() || !sqlite;
    let jobs = if collects { services.jobs.clone() } else { services.job_runner(BlobWrites::LeftToServer) };
    let steps = if until_idle { jobs.run_until_idle().await? } else { vec![jobs.run_one_step().await?] };
    drop(server_lock);
    let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
    let mut text = format!("ran {} step(s)", steps.len());
    if !collects {
        text.push_str(" (queued jobs and blob collection left to the running server)");
    }
    let json = json!({"steps": steps.len(), "details": steps, "blob_collection": collects, "queued_jobs": collects});
    Ok(Printed { json, text })
}
