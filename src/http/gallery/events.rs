//! Reading a device's gallery: watched paths, the event list, stats, files; deleting.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::answers::{GalleryByType, GalleryFolders, GalleryPaths, GalleryStats, GallerySuccess, GalleryTypeCount};
use super::{EventAnswer, GalleryEvent, no_such_device, resolve_device};
use crate::catalog::{Event, TypeStats};
use crate::domain::{ErrorCode, MediaType};
use crate::gallery::{PageKey, device_dir};
use crate::http::AppState;
use crate::http::blob_response::{DownloadHeaders, RangedAnswers, serve_blob, serve_rendition, serve_thumbnail};
use crate::http::error::ApiError;
use crate::http::extract::{Caller, GalleryDelete, GalleryRead, QueryParams};
use crate::http::openapi::{Binary, tag};

/// The server folders watched for this device.
///
/// Created when asked. A file dropped into `incoming` becomes an event once it stops
/// changing; `thumbnails/<name>.jpg` becomes the thumbnail of the event named `<name>`.
#[utoipa::path(get, path = "/api/gallery/{device}/paths", tag = tag::GALLERY, operation_id = "gallery_paths",
    params(("device" = String, Path, description = "The device's exact name in your account, else its id")),
    responses(
        (status = 200, body = GalleryPaths),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
    ))]
pub async fn paths(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Json<GalleryPaths>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let dir = device_dir(&state.config.data_dir, &device);
    let (incoming, thumbnails) = (dir.join("incoming"), dir.join("thumbnails"));
    for folder in [&incoming, &thumbnails] {
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", folder.display())))?;
    }
    let absolute = |p: std::path::PathBuf| std::fs::canonicalize(&p).unwrap_or(p).display().to_string();
    let paths = GalleryFolders { incoming: absolute(incoming), thumbnails: absolute(thumbnails) };
    Ok(Json(GalleryPaths { paths, success: true }))
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

/// The device's events, newest first.
///
/// Deleted events are left out. The media fields (`media_status`, `captured`, `width`, …)
/// come only with events whose file Ferry has (`pulled`).
#[utoipa::path(get, path = "/api/gallery/{device}/events", tag = tag::GALLERY, operation_id = "gallery_events",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("media_type" = Option<String>, Query,
            description = "Only this type: `image`, `video`, `audio`, `document` or `other` (empty: all)"),
        ("limit" = Option<u64>, Query, description = "At most this many (default 50, larger values clamped to 200)"),
        ("offset" = Option<u64>, Query, description = "Skip this many (default 0)"),
    ),
    responses(
        (status = 200, body = Vec<GalleryEvent>),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer (`invalid_query`), \
            or `media_type` is not one of the five (`invalid_media_type`)"),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(device): Path<String>,
    QueryParams(query): QueryParams<ListQuery>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Response, ApiError> {
    let (limit, offset, media_type) = match page_of(&query) {
        Ok(page) => page,
        Err(bad_query) => {
            // a device that does not exist is the first thing wrong with the request
            resolve_device(&state, &principal, &device).await?;
            return Err(bad_query);
        }
    };
    let key = PageKey { user: principal.user().user_id, device, media_type, limit, offset };
    let page = state.events.page(key.clone(), |events| {
        let page: Vec<EventAnswer> =
            events.iter().map(|(event, info)| EventAnswer { event, info: info.as_ref() }).collect();
        serde_json::to_vec(&page).expect("events serialise")
    });
    let page = page.await?.ok_or_else(|| no_such_device(&key.device))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], page).into_response())
}

/// `limit` (clamped), `offset` and `media_type` of a listing.
fn page_of(query: &ListQuery) -> Result<(u32, u64, Option<MediaType>), ApiError> {
    let limit =
        non_negative("limit", query.limit.as_deref())?.map_or(DEFAULT_LIMIT, |l| l.min(u64::from(MAX_LIMIT)) as u32);
    let offset = non_negative("offset", query.offset.as_deref())?.unwrap_or(0);
    let media_type = query.media_type.as_deref().filter(|t| !t.is_empty()).map(MediaType::parse).transpose();
    let media_type = media_type.map_err(|e| ApiError::new(ErrorCode::InvalidMediaType, e.to_string()))?;
    Ok((limit, offset, media_type))
}

/// The device's events counted, by media type.
///
/// Every type is present; deleted events are left out; sizes count the events' files, not
/// their thumbnails.
#[utoipa::path(get, path = "/api/gallery/{device}/stats", tag = tag::GALLERY, operation_id = "gallery_stats",
    params(("device" = String, Path, description = "The device's exact name in your account, else its id")),
    responses(
        (status = 200, body = GalleryStats),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Json<GalleryStats>, ApiError> {
    let rows = state.events.account_stats(principal.user().user_id, &device).await?;
    Ok(Json(stats_answer(&rows.ok_or_else(|| no_such_device(&device))?)))
}

/// A device's events counted by type (its gallery stats).
pub async fn device_stats(state: &AppState, device: crate::domain::DeviceId) -> Result<GalleryStats, ApiError> {
    Ok(stats_answer(&state.events.stats(device).await?))
}

fn stats_answer(rows: &[TypeStats]) -> GalleryStats {
    let mut by_type = GalleryByType::default();
    for row in rows {
        *by_type.of(row.media_type) = GalleryTypeCount { count: row.count, size: row.size };
    }
    GalleryStats {
        by_type,
        total_events: rows.iter().map(|r| r.count).sum::<u64>(),
        total_size: rows.iter().map(|r| r.size).sum::<u64>(),
    }
}

async fn own_event(state: &AppState, device: &crate::catalog::Device, event_id: &str) -> Result<Event, ApiError> {
    state
        .catalog
        .event(device.device_id, event_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NoSuchEvent, format!("no event {event_id}")))
}

/// Deletes an event (needs the `delete` scope).
///
/// It is gone from listings at once; its content is kept for `FERRY_TOMBSTONE_RETENTION`.
#[utoipa::path(delete, path = "/api/gallery/{device}/events/{event_id}", tag = tag::GALLERY,
    operation_id = "gallery_delete_event",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("event_id" = String, Path, description = "An event of the device (`evt_` and a ULID)"),
    ),
    responses(
        (status = 200, body = GallerySuccess),
        (status = 404, description = "No such device in your account (`no_such_device`), or no such event \
            (`no_such_event`)"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    Caller(principal, ..): Caller<GalleryDelete>,
) -> Result<Json<GallerySuccess>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    state.events.delete(device.device_id, &event_id).await?;
    Ok(Json(GallerySuccess { success: true }))
}

/// The event's file, with HTTP Range and `If-None-Match`.
///
/// Served with the event's content type.
#[utoipa::path(get, path = "/api/gallery/{device}/events/{event_id}/file", tag = tag::GALLERY,
    operation_id = "gallery_event_file",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("event_id" = String, Path, description = "An event of the device (`evt_` and a ULID)"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, body = Binary, content_type = "*/*", description = "The file",
            headers(("ETag" = String, description = "The content's SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such device (`no_such_device`) or event (`no_such_event`), or a \
            harvested event whose file has not been pulled yet (`not_pulled`)"),
    ))]
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

/// The event's thumbnail, with HTTP Range and `If-None-Match`.
///
/// A thumbnail the device sent is served before one media processing made.
#[utoipa::path(get, path = "/api/gallery/{device}/events/{event_id}/thumbnail", tag = tag::GALLERY,
    operation_id = "gallery_event_thumbnail",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("event_id" = String, Path, description = "An event of the device (`evt_` and a ULID)"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, body = Binary, content_type = "*/*", description = "The thumbnail (usually a JPEG)",
            headers(("ETag" = String, description = "The thumbnail's SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such device (`no_such_device`) or event (`no_such_event`), or the \
            event has no thumbnail (`no_thumbnail`)"),
    ))]
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
    serve_thumbnail(&state, &sha256, &headers).await
}

/// The event's playable rendition (an H.264/AAC MP4 of a video a browser cannot play, a JPEG
/// of a HEIF photo), with HTTP Range and `If-None-Match`.
///
/// `has_rendition` in the event says whether there is one.
#[utoipa::path(get, path = "/api/gallery/{device}/events/{event_id}/rendition", tag = tag::GALLERY,
    operation_id = "gallery_event_rendition",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("event_id" = String, Path, description = "An event of the device (`evt_` and a ULID)"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, body = Binary, content_type = "*/*", description = "The rendition (`video/mp4` or `image/jpeg`)",
            headers(("ETag" = String, description = "The rendition's SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such device (`no_such_device`) or event (`no_such_event`), or the \
            event has no rendition (`no_rendition`: not needed, not made yet, or it could not be made)"),
    ))]
pub async fn rendition(
    State(state): State<AppState>,
    Path((device, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<GalleryRead>,
) -> Result<Response, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let event = own_event(&state, &device, &event_id).await?;
    serve_rendition(&state, event.sha256.as_ref(), &headers).await
}
