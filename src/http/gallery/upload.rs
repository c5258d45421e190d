//! Adding events: a multipart upload (fields in any order), or signed PUT URLs for the file
//! and its thumbnail.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use serde::Deserialize;
use serde_json::Value;

use super::answers::{GalleryEventAdded, GalleryUploadForm, GalleryUploadUrls};
use super::{SIGNED_PUT, resolve_device};
use crate::catalog::{Device, DeviceRef, TargetClaim};
use crate::domain::{ErrorCode, EventName};
use crate::gallery::{EventError, NewGalleryEvent, new_event_id};
use crate::http::AppState;
use crate::http::body_idle::unreadable_form;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, GalleryUpload, QueryParams, parse_flag};
use crate::http::openapi::{Binary, tag};
use crate::http::upload_host::{check_announced, content_length, verify_signed};
use crate::ingest::{Expectation, Received};

fn form_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidForm, e.to_string())
}

fn event_name(raw: &str) -> Result<EventName, ApiError> {
    EventName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// The form's parts once read: files staged, fields as text.
#[derive(Default)]
struct GalleryForm {
    /// The staged file, its declared content type and file name.
    event: Option<(Received, Option<String>, Option<String>)>,
    thumbnail: Option<Received>,
    name: Option<String>,
    media_type: Option<String>,
    metadata: Option<String>,
    has_thumbnail: Option<String>,
}

/// The largest thumbnail a client may send with an event. Its thumbnail is kept by the event,
/// not held by the account, so it counts towards no quota: it must stay a thumbnail.
const MAX_THUMBNAIL: u64 = 8 * 1024 * 1024;

fn thumbnail_limit(state: &AppState) -> u64 {
    MAX_THUMBNAIL.min(state.config.max_upload_size)
}

async fn read_form(state: &AppState, request: Request, form: &mut GalleryForm) -> Result<(), ApiError> {
    let mut multipart = Multipart::from_request(request, state).await.map_err(form_error)?;
    let expect = Expectation { max_size: Some(state.config.max_upload_size), ..Expectation::default() };
    while let Some(field) = multipart.next_field().await.map_err(|e| unreadable_form(&e))? {
        match field.name().unwrap_or_default() {
            "event" if form.event.is_none() => {
                let content_type = field.content_type().map(str::to_owned);
                let file_name = field.file_name().map(str::to_owned);
                form.event = Some((state.ingest.receive(Box::pin(field), &expect).await?, content_type, file_name));
            }
            "thumbnail" if form.thumbnail.is_none() => {
                let expect = Expectation { max_size: Some(thumbnail_limit(state)), ..Expectation::default() };
                form.thumbnail = Some(state.ingest.receive(Box::pin(field), &expect).await?)
            }
            "event" | "thumbnail" => return Err(form_error("send one event file and at most one thumbnail")),
            "name" => form.name = Some(field.text().await.map_err(|e| unreadable_form(&e))?),
            "media_type" => form.media_type = Some(field.text().await.map_err(|e| unreadable_form(&e))?),
            "metadata" => form.metadata = Some(field.text().await.map_err(|e| unreadable_form(&e))?),
            // checked, though the stored thumbnail decides what listings say
            "has_thumbnail" => form.has_thumbnail = Some(field.text().await.map_err(|e| unreadable_form(&e))?),
            _ => {}
        }
    }
    Ok(())
}

/// Adds an event: a multipart form whose fields may come in any order.
///
/// A refused upload keeps none of its bytes.
#[utoipa::path(post, path = "/api/gallery/{device}/upload", tag = tag::GALLERY, operation_id = "gallery_upload",
    params(("device" = String, Path, description = "The device's exact name in your account, else its id")),
    request_body(content = GalleryUploadForm, content_type = "multipart/form-data",
        example = json!({"name": "doorbell", "metadata": "{\"zone\":2}", "event": "jpeg bytes"})),
    responses(
        (status = 200, body = GalleryEventAdded),
        (status = 400, description = "A bad form (`invalid_form`), no `name` (`missing_name`) or one with a \
            control character (`invalid_name`), no `event` file (`missing_event`), or a bad `media_type` \
            (`invalid_media_type`), `metadata` (`invalid_metadata`) or `has_thumbnail` (`invalid_has_thumbnail`)"),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE or a thumbnail over 8 MiB (`too_large`), or \
            over the account's quota (`quota_exceeded`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Path(device): Path<String>,
    Caller(principal, ..): Caller<GalleryUpload>,
    request: Request,
) -> Result<Json<GalleryEventAdded>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let mut form = GalleryForm::default();
    let read = read_form(&state, request, &mut form).await;
    let checked = read.and_then(|()| {
        let name = form
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::new(ErrorCode::MissingName, "name is required"))
            .and_then(event_name)?;
        if let Some(flag) = form.has_thumbnail.as_deref().map(str::trim).filter(|f| !f.is_empty())
            && parse_flag(flag).is_none()
        {
            return Err(ApiError::new(ErrorCode::InvalidHasThumbnail, "has_thumbnail must be true, false, 1 or 0"));
        }
        if form.event.is_none() {
            return Err(ApiError::new(ErrorCode::MissingEvent, "the event file is required"));
        }
        let metadata = form
            .metadata
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(|m| {
                serde_json::from_str::<Value>(m)
                    .map_err(|e| ApiError::new(ErrorCode::InvalidMetadata, format!("metadata is not JSON: {e}")))
            })
            .transpose()?;
        Ok((name.into_string(), metadata))
    });
    let (name, metadata) = checked?; // a refused upload's staged files go with the form
    let (received, content_type, file_name) = form.event.take().expect("checked above");
    let new = NewGalleryEvent {
        name,
        media_type: form.media_type.take(),
        content_type,
        file_name,
        metadata,
        ..NewGalleryEvent::default()
    };
    let stored = state.events.create(&device, new, received, form.thumbnail.take()).await?;
    Ok(Json(GalleryEventAdded::new(stored.id)))
}

#[derive(Deserialize)]
pub struct UrlQuery {
    filename: Option<String>,
    thumbnail: Option<String>,
}

/// Signed PUT URLs for a new event's file and, when asked, its thumbnail.
///
/// Each URL stores one body, with no other credential: a PUT to `upload_url` creates the
/// event, named `filename`, with the PUT's Content-Type; a PUT to `thumbnail_upload_url`
/// then attaches its thumbnail. They live for `FERRY_SIGNED_URL_TTL`.
#[utoipa::path(get, path = "/api/gallery/{device}/upload-url", tag = tag::GALLERY, operation_id = "gallery_upload_url",
    params(
        ("device" = String, Path, description = "The device's exact name in your account, else its id"),
        ("filename" = String, Query, description = "The event's name: one line of text", example = "garage.jpg"),
        ("thumbnail" = Option<String>, Query,
            description = "`true` or `1` also asks for `thumbnail_upload_url`; anything else does not",
            example = "true"),
    ),
    responses(
        (status = 200, body = GalleryUploadUrls),
        (status = 400, description = "No `filename` (`missing_filename`), or one with a control character \
            (`invalid_name`)"),
        (status = 404, description = "No such device in your account (`no_such_device`)"),
    ))]
pub async fn upload_url(
    State(state): State<AppState>,
    Path(device): Path<String>,
    QueryParams(query): QueryParams<UrlQuery>,
    Caller(principal, ..): Caller<GalleryUpload>,
) -> Result<Json<GalleryUploadUrls>, ApiError> {
    let device = resolve_device(&state, &principal, &device).await?;
    let filename = query
        .filename
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingFilename, "filename is required"))
        .and_then(|f| event_name(&f))?
        .into_string();
    let event_id = new_event_id();
    let expires = state.signed_url_expiry();
    let url = |part: &str| {
        let params = [
            ("device", device.device_id.to_string()),
            ("event", event_id.clone()),
            ("name", filename.clone()),
            ("part", part.to_owned()),
        ];
        state.signer.sign(&state.upload_url, "PUT", SIGNED_PUT, &params, expires)
    };
    let upload_url = url("file");
    let thumbnail_upload_url = matches!(query.thumbnail.as_deref(), Some("true" | "1")).then(|| url("thumbnail"));
    Ok(Json(GalleryUploadUrls { success: true, thumbnail_upload_url, upload_url }))
}

/// The PUT behind `upload_url` (creates the event) and `thumbnail_upload_url` (attaches it).
///
/// Use the URL exactly as `GET …/upload-url` handed it out; each stores one body.
#[utoipa::path(put, path = SIGNED_PUT, tag = tag::GALLERY, operation_id = "gallery_signed_put",
    security(("signed_url" = [])),
    request_body(content = Binary, content_type = "application/octet-stream",
        description = "The file's or the thumbnail's bytes, under any Content-Type (the file's becomes the event's)"),
    responses(
        (status = 200, body = GalleryEventAdded),
        (status = 403, description = "The signature is invalid or altered (`invalid_signature`), expired \
            (`expired_signature`), or names no event (`forbidden`)"),
        (status = 404, description = "The device is gone (`not_found`)"),
        (status = 409, description = "The URL was used already (`already_uploaded`), or the thumbnail came \
            before the file (`event_not_uploaded`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE, or a thumbnail over 8 MiB (`too_large`), or \
            over the account's quota (`quota_exceeded`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn signed_put(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<GalleryEventAdded>, ApiError> {
    let signed = verify_signed(&state, &method, &uri, &[])?;
    let bad = || ApiError::forbidden("the signed URL names no event");
    let device_id = signed.get("device").and_then(|d| d.parse().ok()).ok_or_else(bad)?;
    let (Some(event_id), Some(name), Some(part)) = (signed.get("event"), signed.get("name"), signed.get("part")) else {
        return Err(bad());
    };
    let device = state
        .catalog
        .find_devices(&DeviceRef::Id(device_id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("the device is gone"))?;
    let limit = if part == "thumbnail" { thumbnail_limit(&state) } else { state.config.max_upload_size };
    let expect = Expectation { max_size: Some(limit), size_hint: content_length(&headers), ..Expectation::default() };
    check_announced(&expect)?;
    if part == "thumbnail" && state.events.get(device.device_id, event_id).await?.is_none() {
        return Err(ApiError::new(ErrorCode::EventNotUploaded, "PUT the event's file to upload_url first"));
    }
    // Each URL stores one body: the claim is taken before a byte is read, so a replay (or a
    // second PUT racing the first) is refused without keeping anything.
    let claim = TargetClaimGuard::take(&state, format!("gallery:{event_id}:{part}"), signed.expires).await?;
    let stored = store_put(&state, &device, event_id, name, part, &headers, body, &expect).await;
    claim.finish(stored.is_ok()).await;
    stored
}

#[allow(clippy::too_many_arguments)]
async fn store_put(
    state: &AppState,
    device: &Device,
    event_id: &str,
    name: &str,
    part: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
    expect: &Expectation,
) -> Result<Json<GalleryEventAdded>, ApiError> {
    let received = state.ingest.receive(body.into_data_stream(), expect).await?;
    if part == "thumbnail" {
        state.events.attach_thumbnail(device, event_id, received).await?;
        return Ok(Json(GalleryEventAdded::new(event_id)));
    }
    let declared = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let new = NewGalleryEvent {
        id: Some(event_id.to_owned()),
        name: name.to_owned(),
        content_type: declared,
        ..NewGalleryEvent::default()
    };
    match state.events.create(device, new, received, None).await {
        Ok(stored) => Ok(Json(GalleryEventAdded::new(stored.id))),
        Err(EventError::Exists(_)) => Err(already_uploaded()),
        Err(e) => Err(e.into()),
    }
}

fn already_uploaded() -> ApiError {
    ApiError::new(ErrorCode::AlreadyUploaded, "this upload URL was used already")
}

/// An upload in flight through a one-time signed target. Dropped without
/// [`TargetClaimGuard::finish`] (the client went away, the request was cancelled), it gives
/// the claim back, so the same URL can be tried again.
struct TargetClaimGuard {
    catalog: std::sync::Arc<dyn crate::catalog::Catalog>,
    target: Option<String>,
}

/// A claim outlives a server that died holding it by this much at most.
const CLAIM_LEASE_MS: i64 = 3_600_000;

impl TargetClaimGuard {
    async fn take(state: &AppState, target: String, url_expires_secs: i64) -> Result<Self, ApiError> {
        let lease_until = crate::clock::now_ms() + CLAIM_LEASE_MS;
        match state.catalog.claim_target(&target, lease_until, url_expires_secs * 1000).await? {
            TargetClaim::Claimed => Ok(Self { catalog: state.catalog.clone(), target: Some(target) }),
            TargetClaim::Used | TargetClaim::InFlight => Err(already_uploaded()),
        }
    }

    async fn finish(mut self, used: bool) {
        if let Some(target) = self.target.take()
            && let Err(e) = self.catalog.release_target(&target, used).await
        {
            tracing::warn!(error = %e, target, "could not settle a signed target's claim");
        }
    }
}

impl Drop for TargetClaimGuard {
    fn drop(&mut self) {
        if let (Some(target), Ok(runtime)) = (self.target.take(), tokio::runtime::Handle::try_current()) {
            let catalog = self.catalog.clone();
            runtime.spawn(async move {
                let _ = catalog.release_target(&target, false).await;
            });
        }
    }
}
