//! Reading a volume back: `download` (signed GET URLs by hash) and `media_list` (the
//! per-volume change feed for sync clients).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::DeviceCall;
use super::mount::{media_json, mounted, parse_hash, visible};
use crate::domain::{ErrorCode, chunk_size_for};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::media_info::media_infos;
use crate::signing::targets;

#[derive(Deserialize)]
pub struct DownloadRequest {
    hash_list: Vec<String>,
}

pub async fn download(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<DownloadRequest>,
) -> Result<Json<Value>, ApiError> {
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
    let list: Vec<Value> = hashes
        .iter()
        .map(|hash| match found.get(hash) {
            Some(item) => json!({
                "file_hash": hash,
                "file_size": item.file_size,
                "chunk_size": chunk_size_for(item.file_size),
                "url": targets::blob_get(&state.signer, &state.upload_url, &item.sha256, expires),
                "is_deleted": item.is_deleted,
            }),
            None => json!({"file_hash": hash, "file_size": null, "chunk_size": null, "url": null, "is_deleted": false}),
        })
        .collect();
    Ok(Json(json!({"download_list": list})))
}

#[derive(Deserialize)]
pub struct ListRequest {
    #[serde(default)]
    cursor: Value,
    limit: Option<i64>,
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

pub async fn media_list(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    call: DeviceCall<ListRequest>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"media_list": page, "next_cursor": next_cursor.to_string(), "has_more": has_more})))
}
