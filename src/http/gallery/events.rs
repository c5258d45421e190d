//! Reading a device's gallery: watched paths, the event list, stats, files; deleting.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{event_json, resolve_device};
use crate::catalog::Event;
use crate::domain::{ErrorCode, MediaType};
use crate::gallery::device_dir;
use crate::http::AppState;
use crate::http::blob_response::serve_blob;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, GalleryDelete, GalleryRead, QueryParams};

pub async fn paths(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Json<Value>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let dir = device_dir(&state.config.data_dir, &device);
    let (incoming, thumbnails) = (dir.join("incoming"), dir.join("thumbnails"));
    for folder in [&incoming, &thumbnails] {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", folder.display())))?;
    }
    let absolute = |p: std::path::PathBuf| std::fs::canonicalize(&p).unwrap_or(p).display().to_string();
    Ok(Json(json!({"success": true, "paths": {"incoming": absolute(incoming), "thumbnails": absolute(thumbnails)}})))
}

#[derive(Deserialize)]
pub struct ListQuery {
    media_type: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

fn non_negative(name: &str, raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    raw.map(|r| {
        r.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::new(ErrorCode::InvalidQuery, format!("{name} must be a non-negative integer")))
    })
    .transpose()
}

pub async fn list(
    State(state): State<AppState>,
    Path(device): Path<String>,
    QueryParams(query): QueryParams<ListQuery>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let limit =
        non_negative("limit", query.limit.as_deref())?.map_or(DEFAULT_LIMIT, |l| l.min(u64::from(MAX_LIMIT)) as u32);
    let offset = non_negative("offset", query.offset.as_deref())?.unwrap_or(0);
    let media_type = query.media_type.as_deref().filter(|t| !t.is_empty()).map(MediaType::parse).transpose();
    let media_type = media_type.map_err(|e| ApiError::new(ErrorCode::InvalidMediaType, e.to_string()))?;
    let events = state.events.list(device.device_id, media_type, limit, offset).await?;
    Ok(Json(events.iter().map(|(event, info)| event_json(event, info.as_ref())).collect()))
}

pub async fn stats(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Json<Value>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let rows = state.events.stats(device.device_id).await?;
    let mut by_type: Map<String, Value> =
        MediaType::ALL.iter().map(|t| (t.to_string(), json!({"count": 0, "size": 0}))).collect();
    for row in &rows {
        by_type.insert(row.media_type.to_string(), json!({"count": row.count, "size": row.size}));
    }
    Ok(Json(json!({
        "total_events": rows.iter().map(|r| r.count).sum::<u64>(),
        "total_size": rows.iter().map(|r| r.size).sum::<u64>(),
        "by_type": by_type,
    })))
}

async fn own_event(state: &AppState, device: &crate::catalog::Device, event_id: &str) -> Result<Event, ApiError> {
    state
        .catalog
        .event(device.device_id, event_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchEvent, format!("no event {event_id}")))
}

pub async fn remove(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    Caller(principal, ..): Caller<GalleryDelete>,
) -> Result<Json<Value>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    state.events.delete(device.device_id, &event_id).await?;
    Ok(Json(json!({"success": true})))
}

pub async fn file(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Response, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let event = own_event(&state, &device, &event_id).await?;
    let sha256 = event.sha256.ok_or_else(|| {
        ApiError::new(ErrorCode::NotPulled, "this event's file has not been pulled from the device yet")
    })?;
    serve_blob(&state, &sha256, event.size, &event.content_type, &headers).await
}

pub async fn thumbnail(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Response, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let event = own_event(&state, &device, &event_id).await?;
    // the device's own thumbnail wins over the one media processing made
    let generated = match (&event.thumbnail_sha256, &event.sha256) {
        (None, Some(content)) => {
            state.catalog.media_info(std::slice::from_ref(content)).await?.pop().and_then(|i| i.thumbnail_sha256)
        }
        _ => None,
    };
    let sha256 = event
        .thumbnail_sha256
        .or(generated)
        .ok_or_else(|| ApiError::new(ErrorCode::NoThumbnail, "this event has no thumbnail"))?;
    let blob =
        state.catalog.blob(&sha256).await?.ok_or_else(|| ApiError::internal("a thumbnail's bytes are missing"))?;
    let head = match state
        .store
        .read(&sha256, Some(crate::domain::ByteRange { start: 0, end: blob.size.saturating_sub(1).min(511) }))
        .await
    {
        Ok(mut stream) => {
            use futures_util::StreamExt;
            stream.next().await.and_then(Result::ok).unwrap_or_default()
        }
        Err(_) => Default::default(),
    };
    let content_type = crate::media::sniff(&head, None).content_type;
    serve_blob(&state, &sha256, blob.size, &content_type, &headers).await
}
