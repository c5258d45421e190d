//! How media processing results show in the families' JSON, as extra fields (every family
//! allows them): `captured`, `width`, `height`, `duration`, `codec`, camera facts under
//! `exif`, everything under `media`, and `media_status` (`pending` until the job has run,
//! then `done` or `failed` with `media_error`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, CatalogError, MediaInfo, MediaStatus};
use crate::domain::Sha256Hex;

/// Results for a batch of contents (one catalog query), by hash.
pub async fn media_infos<'a>(
    catalog: &dyn Catalog,
    hashes: impl IntoIterator<Item = &'a Sha256Hex>,
) -> Result<HashMap<Sha256Hex, MediaInfo>, CatalogError> {
    let mut wanted: Vec<Sha256Hex> = hashes.into_iter().cloned().collect();
    wanted.sort();
    wanted.dedup();
    Ok(catalog.media_info(&wanted).await?.into_iter().map(|info| (info.sha256.clone(), info)).collect())
}

/// Adds the fields of `info` (or `media_status: pending` without one) to a JSON object.
pub fn add_media_fields(object: &mut Value, info: Option<&MediaInfo>) {
    let Some(object) = object.as_object_mut() else { return };
    let Some(info) = info else {
        object.insert("media_status".into(), json!("pending"));
        return;
    };
    let status = match info.status {
        MediaStatus::Done => "done",
        MediaStatus::Failed => "failed",
    };
    object.insert("media_status".into(), json!(status));
    if let Some(error) = &info.error {
        object.insert("media_error".into(), json!(error));
    }
    let Some(Value::Object(meta)) = &info.metadata else { return };
    for key in ["captured", "width", "height", "duration", "codec"] {
        if let Some(value) = meta.get(key) {
            object.insert(key.into(), value.clone());
        }
    }
    let exif: Map<String, Value> = ["make", "model", "lens", "orientation", "gps"]
        .into_iter()
        .filter_map(|key| meta.get(key).map(|v| (key.to_owned(), v.clone())))
        .collect();
    if !exif.is_empty() {
        object.insert("exif".into(), Value::Object(exif));
    }
    object.insert("media".into(), Value::Object(meta.clone()));
}
