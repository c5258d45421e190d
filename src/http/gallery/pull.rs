//! Pull: events discovered on the device (harvested from its index) get their bytes on demand.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::resolve_device;
use crate::catalog::JobStatus;
use crate::domain::{ErrorCode, JobKind};
use crate::gallery::{SourceError, harvest as harvest_device, pull_dedup_key, pull_payload};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, GalleryUpload};

fn no_source() -> ApiError {
    ApiError::new(ErrorCode::NoPullSource, "this device has no pull source (ferry admin device pull-source)")
}

pub async fn harvest(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryUpload>,
) -> Result<Json<Value>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    if device.pull_url.is_none() {
        return Err(no_source());
    }
    let created = harvest_device(state.catalog.as_ref(), &state.remote, &device, state.config.remote_timeout)
        .await
        .map_err(|e| match e {
            SourceError::Catalog(e) => e.into(),
            SourceError::NoSource => no_source(),
            other => ApiError::new(ErrorCode::HarvestFailed, other.to_string()),
        })?;
    Ok(Json(json!({"success": true, "created": created})))
}

pub async fn pull(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    Caller(principal, ..): Caller<GalleryUpload>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    // a device without a source has nothing to pull from, whatever its events hold (API.md §4)
    if device.pull_url.is_none() {
        return Err(no_source());
    }
    let missing = || ApiError::new(ErrorCode::NoSuchEvent, format!("no event {event_id}"));
    let event = state.events.get(device.device_id, &event_id).await?.ok_or_else(missing)?;
    let done = || (StatusCode::OK, Json(json!({"success": true, "eventId": event_id})));
    if event.sha256.is_some() {
        return Ok(done());
    }
    let job_id = state
        .jobs
        .enqueue(
            JobKind::GalleryPull,
            &pull_payload(device.device_id, &event_id),
            Some(&pull_dedup_key(&event_id)),
            Some(device.user_id),
        )
        .await?;
    let started = Instant::now();
    while started.elapsed() < state.config.pull_wait {
        if state.events.get(device.device_id, &event_id).await?.is_some_and(|e| e.sha256.is_some()) {
            return Ok(done());
        }
        if let Some(job) = state.catalog.job(job_id).await?.filter(|j| j.status == JobStatus::Failed) {
            // it may name the source, whose URL may carry the device's password
            let error = crate::redact::url_passwords(job.last_error.as_deref().unwrap_or_default()).into_owned();
            if job.failure_code.as_deref() == Some(ErrorCode::GoneFromDevice.as_str()) {
                return Err(ApiError::new(ErrorCode::GoneFromDevice, error));
            }
            return Err(ApiError::new(ErrorCode::PullFailed, error));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"success": true, "eventId": event_id, "status": "running"}))))
}
