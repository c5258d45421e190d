//! Pulls (`gallery_pull` jobs): fetch a harvested event's file from its device's pull source
//! and attach it through the pipeline.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{EventError, GalleryEvents, source};
use crate::catalog::{DeviceRef, Identities, Job, JobOutcome};
use crate::config::Config;
use crate::domain::{DeviceId, ErrorCode};
use crate::ingest::Ingest;
use crate::jobs::JobHandler;
use crate::remote::{FetchError, RemotePolicy, fetch};

pub fn pull_payload(device: DeviceId, event_id: &str) -> serde_json::Value {
    json!({"device_id": device, "event_id": event_id})
}

/// At most one unfinished pull per event.
pub fn pull_dedup_key(event_id: &str) -> String {
    format!("pull:{event_id}")
}

/// Runs `gallery_pull` jobs.
pub struct GalleryPulls {
    catalog: Arc<dyn Identities>,
    ingest: Ingest,
    events: GalleryEvents,
    remote: Arc<RemotePolicy>,
    config: Arc<Config>,
}

impl GalleryPulls {
    pub fn new(
        catalog: Arc<dyn Identities>,
        ingest: Ingest,
        events: GalleryEvents,
        remote: Arc<RemotePolicy>,
        config: Arc<Config>,
    ) -> Self {
        Self { catalog, ingest, events, remote, config }
    }
}

fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(2u64.pow(attempts.clamp(0, 8) as u32))
}

#[async_trait]
impl JobHandler for GalleryPulls {
    /// Fetches the event's file from the device's source and attaches it.
    async fn run(&self, job: &Job) -> JobOutcome {
        let (Some(device_id), Some(event_id)) = (job.payload["device_id"].as_i64(), job.payload["event_id"].as_str())
        else {
            return JobOutcome::Failed { error: "bad job payload".into() };
        };
        let device_id = DeviceId(device_id);
        let device = match self.catalog.find_devices(&DeviceRef::Id(device_id)).await {
            Ok(mut found) if !found.is_empty() => found.remove(0),
            Ok(_) => return JobOutcome::Failed { error: "the device is gone".into() },
            Err(e) => return JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
        };
        let event = match self.events.get(device_id, event_id).await {
            Ok(Some(event)) if event.sha256.is_none() => event,
            Ok(Some(_)) => return JobOutcome::Done, // pulled meanwhile
            Ok(None) => return JobOutcome::Failed { error: "the event is gone".into() },
            Err(e) => return JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
        };
        let (base, policy) = match source(&self.remote, &device) {
            Ok(source) => source,
            Err(e) => return JobOutcome::Failed { error: e.to_string() },
        };
        let name = event.source_name.as_deref().unwrap_or(&event.name);
        let url = match base.resolve(name) {
            Ok(url) => url,
            Err(why) => return JobOutcome::Failed { error: format!("not a file of the pull source {base}: {why}") },
        };
        let config = &self.config;
        let fetched = match fetch(&policy, &self.ingest, url, config.max_upload_size, config.remote_timeout).await {
            Ok(fetched) => fetched,
            Err(FetchError::Status(404 | 410)) => {
                let error = format!("the device no longer has {name}");
                return JobOutcome::Refused { code: ErrorCode::GoneFromDevice, error };
            }
            Err(FetchError::Refused(why)) => return JobOutcome::Failed { error: why },
            Err(e) => return JobOutcome::Retry { error: e.to_string(), after: backoff(job.attempts) },
        };
        match self.events.fill(&device, event_id, name, fetched.received).await {
            // deleted meanwhile: nothing left to fill
            Ok(()) | Err(EventError::NoSuchEvent(_)) => JobOutcome::Done,
            Err(e) => JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
        }
    }
}
