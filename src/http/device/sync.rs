//! Reading a volume back: `download` (signed GET URLs by hash) and `media_list` (the
//! per-volume change feed for sync clients).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::call::DeviceCall;
use super::mount::{MediaObject, media_json, mounted, parse_hash, visible};
use crate::domain::{ErrorCode, Sha256Hex, chunk_size_for};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::media_info::media_infos;
use crate::http::openapi::tag;
use crate::signing::targets;

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceDownloadRequest)]
pub struct DownloadRequest {
    /// `file_hash`es to fetch.
    hash_list: Vec<String>,
}

// fields in the order the former `json!` wrote them (sorted): the answer stays byte for byte
/// One requested hash: a signed GET for it, or nulls when this grant's view has no such content.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceDownloadEntry)]
pub struct DownloadEntry {
    /// The hashing rule's chunk size (0 up to 16 MiB); `null` when there is no `url`.
    #[schema(required = true)]
    chunk_size: Option<u64>,
    #[schema(value_type = String)]
    file_hash: Sha256Hex,
    /// `null` when there is no `url`.
    #[schema(required = true)]
    file_size: Option<u64>,
    /// Only deleted items still use this content (it has a `url` all the same).
    is_deleted: bool,
    /// A signed GET of the content's playable rendition (an H.264/AAC MP4 of a video a browser
    /// cannot play, a JPEG of a HEIF photo); `null` when it has none.
    #[schema(required = true)]
    rendition_url: Option<String>,
    /// A signed GET (Range and HEAD supported); `null` when the content is not there.
    #[schema(required = true)]
    url: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeviceDownloadAnswer)]
pub struct DownloadAnswer {
    /// One entry per requested hash, in the same order.
    download_list: Vec<DownloadEntry>,
}

/// Signed GET URLs for content referenced in this grant's view of the volume, by hash.
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/download", tag = tag::DEVICE,
    operation_id = "device_download",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body(content = DownloadRequest, example = json!({
        "hash_list": ["cf82d2d961ff699eda330edfa1bc8ec368d42d901582a9534af98acfd1cde208"]
    })),
    responses(
        (status = 200, body = DownloadAnswer),
        (status = 400, description = "A malformed hash in the list (`invalid_hash`)"),
        (status = 403,
            description = "Downloads are disabled for the device (`download_disabled`), or as for every call"),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<DownloadRequest>,
) -> Result<Json<DownloadAnswer>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    if call.calling_device().is_download_disabled {
        return Err(ApiError::new(ErrorCode::DownloadDisabled, "downloads are disabled for this device"));
    }
    let hashes = call.body.hash_list.iter().map(|h| parse_hash(h)).collect::<Result<Vec<_>, _>>()?;
    // live items first, so a hash that is both live somewhere and deleted elsewhere is live
    let mut found = HashMap::new();
    for item in state.catalog.media_by_file_hash(grant.volume_id, &hashes).await? {
        if visible(&grant, &item) {
            found.entry(item.file_hash.clone()).or_insert(item);
        }
    }
    let expires = state.signed_url_expiry();
    let infos = media_infos(state.catalog.as_ref(), found.values().map(|item| &item.sha256)).await?;
    let signed = |sha256: &Sha256Hex| targets::blob_get(&state.signer, &state.upload_url, sha256, expires);
    let list = hashes
        .into_iter()
        .map(|hash| match found.get(&hash) {
            Some(item) => DownloadEntry {
                chunk_size: Some(chunk_size_for(item.file_size)),
                file_size: Some(item.file_size),
                url: Some(signed(&item.sha256)),
                rendition_url: infos.get(&item.sha256).and_then(|i| i.rendition.as_ref()).map(|r| signed(&r.sha256)),
                is_deleted: item.is_deleted,
                file_hash: hash,
            },
            None => DownloadEntry {
                chunk_size: None,
                file_hash: hash,
                file_size: None,
                is_deleted: false,
                rendition_url: None,
                url: None,
            },
        })
        .collect();
    Ok(Json(DownloadAnswer { download_list: list }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceListRequest)]
pub struct ListRequest {
    /// A `next_cursor` this server returned (a string, or the same as an integer); absent or
    /// empty starts from the beginning.
    #[serde(default)]
    cursor: Value,
    /// 1–1000, default 100.
    #[schema(example = 100)]
    limit: Option<i64>,
}

// fields in the order the former `json!` wrote them (sorted): the answer stays byte for byte
/// A page of the change feed.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceMediaPage)]
pub struct MediaPage {
    /// Whether more changes follow `next_cursor`.
    has_more: bool,
    /// Items in the order they last changed, deleted ones included (tombstones).
    #[schema(value_type = Vec<MediaObject>)]
    media_list: Vec<Value>,
    /// Pass it back as `cursor` to continue; always present.
    #[schema(example = "1")]
    next_cursor: String,
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// The volume's change feed, as this grant sees it (items under its prefix).
#[utoipa::path(post, path = "/media_grant/{media_grant_id}/media_list", tag = tag::DEVICE,
    operation_id = "device_media_list",
    params(("media_grant_id" = String, Path, description = "A grant of this device")),
    request_body(content = Option<ListRequest>, example = json!({"limit": 100})),
    responses(
        (status = 200, body = MediaPage),
        (status = 400, description = "`invalid_cursor` (not a `next_cursor` this server returned), `invalid_limit` \
            (outside 1–1000)"),
    ))]
pub async fn media_list(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<ListRequest>,
) -> Result<Json<MediaPage>, ApiError> {
    let grant = mounted(&state, &call.principal, &grant_id).await?;
    let limit = call.body.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidLimit, format!("limit must be 1..{MAX_PAGE}")));
    }
    let bad_cursor = || ApiError::new(ErrorCode::InvalidCursor, "cursor must be a next_cursor this server returned");
    let cursor: i64 = match &call.body.cursor {
        Value::Null => 0,
        Value::String(s) if s.is_empty() => 0,
        Value::String(s) => s.parse().map_err(|_| bad_cursor())?,
        Value::Number(n) => n.as_i64().ok_or_else(bad_cursor)?,
        _ => return Err(bad_cursor()),
    };
    if cursor < 0 {
        return Err(bad_cursor());
    }
    // one row more than the page tells whether more follow
    let mut rows = state.catalog.media_changes(grant.volume_id, cursor, limit as u32 + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().map_or(cursor, |item| item.change_seq);
    let rows: Vec<_> = rows.iter().filter(|item| visible(&grant, item)).collect();
    let infos = media_infos(state.catalog.as_ref(), rows.iter().map(|item| &item.sha256)).await?;
    let page: Vec<Value> = rows.iter().map(|item| media_json(item, infos.get(&item.sha256))).collect();
    Ok(Json(MediaPage { has_more, media_list: page, next_cursor: next_cursor.to_string() }))
}
