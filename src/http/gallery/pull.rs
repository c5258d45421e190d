//! Pull: events discovered on the device (harvested from its index) get their bytes on demand.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::answers::{GalleryEventAdded, GalleryHarvested, GalleryPullRunning};
use super::resolve_device;
use crate::catalog::JobStatus;
use crate::domain::{ErrorCode, JobKind};
use crate::gallery::{SourceError, harvest as harvest_device, pull_dedup_key, pull_payload};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, GalleryUpload};
use crate::http::openapi::tag;

fn no_source() -> ApiError {
    ApiError::new(ErrorCode::NoPullSource, "this device has no pull source (ferry admin device pull-source)")
}

/// Reads the device's pull source index now (Ferry also does so every `FERRY_HARVEST_INTERVAL`).
///
/// The source (`ferry admin device pull-source`) is an HTTP base URL serving `index.json`
/// (`[{"name", "size", "media_type", "created"}]`) and each file at `<base>/<name>`. Names
/// not seen before become events with `pulled: false`.
#[utoipa::path(post, path = "/api/gallery/{device}/harvest", tag = tag::GALLERY, operation_id = "gallery_harvest",
    params(("device" = String, Path, description = "The device's exact name in your account, else its id")),
    responses(
        (status = 200, body = GalleryHarvested),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
        (status = 409, description = "The device has no pull source (`no_pull_source`)"),
        (status = 502, description = "The index cannot be read (`harvest_failed`)"),
    ))]
pub async fn harvest(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryUpload>,
) -> Result<Json<GalleryHarvested>, ApiError> {
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
    Ok(Json(GalleryHarvested { created, success: true }))
}

/// Fetches one event's file from the device's pull source.
///
/// Answers once the file is there, or after `FERRY_PULL_WAIT` with 202 while the fetch goes
/// on in the background.
#[utoipa::path(post, path = "/api/gallery/{device}/pull/{event_id}", tag = tag::GALLERY, operation_id = "gallery_pull",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("event_id" = String, Path, description = "An event of the device (`evt_` and a ULID)"),
    ),
    responses(
        (status = 200, description = "The file is there", body = GalleryEventAdded),
        (status = 202, description = "Still fetching after FERRY_PULL_WAIT; it continues", body = GalleryPullRunning),
        (status = 404, description = "No such device (`no_such_device`) or event (`no_such_event`), or the \
            device no longer has the file (`gone_from_device`)"),
        (status = 409, description = "The device has no pull source (`no_pull_source`)"),
        (status = 502, description = "The fetch failed (`pull_failed`)"),
    ))]
pub async fn pull(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    Caller(principal, ..): Caller<GalleryUpload>,
) -> Result<Response, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    // a device without a source has nothing to pull from, whatever its events hold (API.md §4)
    if device.pull_url.is_none() {
        return Err(no_source());
    }
    let missing = || ApiError::new(ErrorCode::NoSuchEvent, format!("no event {event_id}"));
    let event = state.events.get(device.device_id, &event_id).await?.ok_or_else(missing)?;
    let done = || Json(GalleryEventAdded::new(event_id.as_str())).into_response();
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
    let running = GalleryPullRunning { event_id, status: "running", success: true };
    Ok((StatusCode::ACCEPTED, Json(running)).into_response())
}
