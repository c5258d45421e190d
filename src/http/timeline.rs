//! `/api/timeline`: everything the account stores, across the families, newest first — what
//! the web gallery shows — with each item's content, thumbnail and playable rendition, and
//! deletion by the rules of the item's family. Ferry's own addition (API.md §5).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::blob_response::{DownloadHeaders, RangedAnswers, serve_blob, serve_thumbnail};
use super::error::ApiError;
use super::extract::{Caller, QueryParams, TimelineDelete, TimelineRead};
use super::media_info::{MediaFields, add_media_fields};
use super::openapi::{ApiRouter, Binary, tag};
use crate::catalog::{ItemKind, TimelineItem, TimelineQuery, Updater};
use crate::domain::{DeviceId, ErrorCode, VolumeId};

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(list)).routes(routes!(sources)).routes(routes!(content)).routes(routes!(remove))
}

/// Items a page holds unless the caller asks for fewer or more (at most 500).
const PAGE: u32 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The `next` of the page before; absent for the newest items.
    cursor: Option<String>,
    /// Items on this page, 1–500 (default 100).
    limit: Option<u32>,
    /// Only one source: `device:NAME`, `volume:NAME`, `folder:KEY` or `multipart`.
    source: Option<String>,
    /// Only `image`, `video` or `other`, as media processing classed the content.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    media_type: Option<String>,
}

/// A page of the timeline.
#[derive(Serialize, ToSchema)]
struct TimelinePage {
    /// Each built by `entry` (the fields of [`TimelineEntry`]).
    #[schema(value_type = Vec<TimelineEntry>)]
    items: Vec<Value>,
    /// The cursor of the next (older) page; `null` on the last.
    next: Option<String>,
}

/// An item of any family: the fields of [`Entry`] and the media fields `add_media_fields`
/// adds (schema only; keep them in step).
#[derive(ToSchema)]
#[allow(dead_code)]
struct TimelineEntry {
    #[serde(flatten)]
    entry: Entry,
    #[serde(flatten)]
    media: MediaFields,
}

#[derive(Serialize, ToSchema)]
struct Entry {
    /// The item's timeline id (`e.`, `f.`, `m.` or `u.` and its family's id).
    #[schema(example = "e.evt_01JD0Y5R9S3H2C7V8K4M6N1P0Q")]
    id: String,
    /// `event`, `file`, `media` or `multipart`: which family keeps it.
    #[schema(example = "event")]
    family: &'static str,
    /// Its name, path or title.
    name: String,
    size: u64,
    #[schema(example = "image/jpeg")]
    content_type: String,
    /// When it was stored (ISO 8601 UTC).
    created: String,
    source: Source,
    sha256: String,
    /// Where its content, thumbnail and rendition are served (`null` when there is none yet).
    urls: Urls,
}

/// Where an item came from.
#[derive(Serialize, ToSchema)]
struct Source {
    /// `device`, `volume`, `folder` or `multipart`.
    kind: String,
    /// The device's or volume's name, or the folder's key (empty for multipart).
    name: String,
}

#[derive(Serialize, ToSchema)]
struct Urls {
    original: String,
    thumbnail: Option<String>,
    rendition: Option<String>,
}

fn family(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Event => "event",
        ItemKind::File => "file",
        ItemKind::Media => "media",
        ItemKind::Multipart => "multipart",
    }
}

fn item_id(item: &TimelineItem) -> String {
    format!("{}.{}", item.kind.letter(), item.id)
}

/// An item's content type: as declared, else as its name suggests.
fn content_type(item: &TimelineItem) -> String {
    item.content_type.clone().unwrap_or_else(|| crate::media::sniff(&[], Some(&item.name)).content_type)
}

fn entry(item: &TimelineItem) -> Value {
    let id = item_id(item);
    let url = |variant: &str| format!("/api/timeline/{id}/{variant}");
    let thumbnail = item.sent_thumbnail.as_ref().or(item.media.as_ref().and_then(|m| m.thumbnail_sha256.as_ref()));
    let rendition = item.media.as_ref().and_then(|m| m.rendition.as_ref());
    let entry = Entry {
        family: family(item.kind),
        name: item.name.clone(),
        size: item.size,
        content_type: content_type(item),
        created: crate::clock::iso(item.created_ms),
        source: Source { kind: item.source_kind.clone(), name: item.source_name.clone() },
        sha256: item.sha256.to_string(),
        urls: Urls {
            original: url("original"),
            thumbnail: thumbnail.map(|_| url("thumbnail")),
            rendition: rendition.map(|_| url("rendition")),
        },
        id,
    };
    let mut value = serde_json::to_value(entry).expect("an entry serialises");
    add_media_fields(&mut value, item.media.as_ref());
    value
}

fn parse_cursor(raw: &str) -> Option<(i64, ItemKind, String)> {
    let mut parts = raw.splitn(3, '.');
    let created = parts.next()?.parse().ok()?;
    let kind = ItemKind::from_letter(parts.next()?)?;
    Some((created, kind, parts.next().filter(|id| !id.is_empty())?.to_owned()))
}

fn parse_source(raw: &str) -> Option<(String, String)> {
    match raw.split_once(':') {
        Some((kind @ ("device" | "volume" | "folder"), name)) if !name.is_empty() => Some((kind.into(), name.into())),
        None if raw == "multipart" => Some(("multipart".into(), String::new())),
        _ => None,
    }
}

/// The account's items of every family, newest first, a page at a time.
#[utoipa::path(get, path = "/api/timeline", tag = tag::ACCOUNT, params(ListQuery),
    responses(
        (status = 200, body = TimelinePage),
        (status = 400, description = "A bad `cursor` (`invalid_cursor`), `limit` (`invalid_limit`), `source` or `type` (`invalid_query`)"),
    ))]
async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
    Caller(principal, ..): Caller<TimelineRead>,
) -> Result<Json<TimelinePage>, ApiError> {
    let bad = |code, what: &str| ApiError::new(code, what.to_owned());
    let after = match query.cursor.as_deref() {
        Some(raw) => {
            Some(parse_cursor(raw).ok_or_else(|| bad(ErrorCode::InvalidCursor, "not a cursor this server gave"))?)
        }
        None => None,
    };
    let limit = match query.limit {
        None => PAGE,
        Some(n @ 1..=500) => n,
        Some(_) => return Err(bad(ErrorCode::InvalidLimit, "limit is 1 to 500")),
    };
    let source = match query.source.as_deref() {
        Some(raw) => Some(parse_source(raw).ok_or_else(|| {
            bad(ErrorCode::InvalidQuery, "source is device:NAME, volume:NAME, folder:KEY or multipart")
        })?),
        None => None,
    };
    if let Some(kind) = query.media_type.as_deref().filter(|k| !["image", "video", "other"].contains(k)) {
        return Err(bad(ErrorCode::InvalidQuery, &format!("type '{kind}' is not image, video or other")));
    }
    let wanted = TimelineQuery { after, limit: limit + 1, source, media_kind: query.media_type };
    let mut items = state.catalog.timeline(principal.user().user_id, &wanted).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = match items.last() {
        Some(last) if more => Some(format!("{}.{}.{}", last.created_ms, last.kind.letter(), last.id)),
        _ => None,
    };
    Ok(Json(TimelinePage { items: items.iter().map(entry).collect(), next }))
}

#[derive(Serialize, ToSchema)]
struct Sources {
    /// Each as `source` takes it in `/api/timeline`.
    sources: Vec<SourceEntry>,
}

#[derive(Serialize, ToSchema)]
struct SourceEntry {
    kind: String,
    name: String,
    /// The `source` filter naming it: `device:cam`, `folder:trip`, `multipart`.
    #[schema(example = "device:cam")]
    filter: String,
}

/// Every source of the account's items (its devices, volumes and folders, and `multipart`),
/// for the timeline's filter.
#[utoipa::path(get, path = "/api/sources", tag = tag::ACCOUNT, responses((status = 200, body = Sources)))]
async fn sources(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<TimelineRead>,
) -> Result<Json<Sources>, ApiError> {
    let sources = state.catalog.timeline_sources(principal.user().user_id).await?;
    let sources = sources
        .into_iter()
        .map(|(kind, name)| {
            let filter = if kind == "multipart" { kind.clone() } else { format!("{kind}:{name}") };
            SourceEntry { kind, name, filter }
        })
        .collect();
    Ok(Json(Sources { sources }))
}

#[derive(Deserialize)]
struct ItemPath {
    item: String,
    variant: String,
}

/// One of the account's items, by its timeline id; 404 `not_found` for anything else.
async fn own_item(state: &AppState, user: crate::domain::UserId, raw: &str) -> Result<TimelineItem, ApiError> {
    let missing = || ApiError::not_found(format!("no item '{raw}' in this account"));
    let (letter, id) = raw.split_once('.').ok_or_else(missing)?;
    let kind = ItemKind::from_letter(letter).ok_or_else(missing)?;
    state.catalog.timeline_item(user, kind, id).await?.ok_or_else(missing)
}

/// An item's content (`original`), thumbnail or playable rendition, with Range and ETag.
#[utoipa::path(get, path = "/api/timeline/{item}/{variant}", tag = tag::ACCOUNT,
    params(
        ("item" = String, Path, description = "A timeline id (`e.evt_…`, `f.…`, `m.…`, `u.…`)"),
        ("variant" = String, Path, description = "`original`, `thumbnail` or `rendition`"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, body = Binary, content_type = "*/*", description = "The bytes",
            headers(("ETag" = String, description = "Their SHA-256, quoted"))),
        RangedAnswers,
        (status = 404, description = "No such item in this account or no such variant (`not_found`), no thumbnail \
            (`no_thumbnail`) or no rendition (`no_rendition`)"),
    ))]
async fn content(
    State(state): State<AppState>,
    Path(path): Path<ItemPath>,
    headers: HeaderMap,
    Caller(principal, ..): Caller<TimelineRead>,
) -> Result<Response, ApiError> {
    let item = own_item(&state, principal.user().user_id, &path.item).await?;
    match path.variant.as_str() {
        "original" => serve_blob(&state, &item.sha256, item.size, &content_type(&item), &headers).await,
        "thumbnail" => {
            let generated = item.media.as_ref().and_then(|m| m.thumbnail_sha256.as_ref());
            let sha256 = item
                .sent_thumbnail
                .as_ref()
                .or(generated)
                .ok_or_else(|| ApiError::new(ErrorCode::NoThumbnail, "this item has no thumbnail (yet)"))?;
            serve_thumbnail(&state, sha256, &headers).await
        }
        "rendition" => {
            let rendition = item
                .media
                .and_then(|m| m.rendition)
                .ok_or_else(|| ApiError::new(ErrorCode::NoRendition, "this item has no playable rendition"))?;
            serve_blob(&state, &rendition.sha256, rendition.size, &rendition.content_type, &headers).await
        }
        other => Err(ApiError::not_found(format!("no variant '{other}': original, thumbnail or rendition"))),
    }
}

/// Deletes an item by the rules of its family: gone from every listing at once, its content
/// kept for `FERRY_TOMBSTONE_RETENTION` (device media stays as a tombstone sync clients see).
#[utoipa::path(delete, path = "/api/timeline/{item}", tag = tag::ACCOUNT,
    params(("item" = String, Path, description = "A timeline id (`e.evt_…`, `f.…`, `m.…`, `u.…`)")),
    responses(
        (status = 200, body = Deleted, example = json!({"deleted": true})),
        (status = 404, description = "No such item in this account (`not_found`)"),
    ))]
async fn remove(
    State(state): State<AppState>,
    Path(item): Path<String>,
    Caller(principal, ..): Caller<TimelineDelete>,
) -> Result<Json<Deleted>, ApiError> {
    let user = principal.user().user_id;
    let item = own_item(&state, user, &item).await?;
    match item.kind {
        ItemKind::Event => state.events.delete(DeviceId(item.source_id), &item.id).await?,
        ItemKind::File => drop(state.library.delete(Some(user), &item.id).await?),
        ItemKind::Media => {
            let media_id = item.id.parse().map_err(|_| ApiError::internal("a media id is a number"))?;
            let by = Updater { user_id: user, device_id: None };
            state.catalog.delete_media(VolumeId(item.source_id), media_id, by).await?;
        }
        ItemKind::Multipart => drop(state.uploads.delete_file(user, &item.name).await?),
    }
    Ok(Json(Deleted { deleted: true }))
}

#[derive(Serialize, ToSchema)]
struct Deleted {
    deleted: bool,
}
