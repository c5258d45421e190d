//! `current` and `media_grant`: who the device is and which volumes it may use.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{DeviceCall, Status};
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::error::ApiError;

/// Bodies of these calls carry nothing but the key (and an ignored client `version`).
#[derive(Deserialize)]
pub struct Ignored {}

pub async fn current(call: DeviceCall<Ignored, Status>) -> Json<Value> {
    let Principal::Device { device: d, owner } = &call.principal else { unreachable!("device keys only") };
    Json(json!({
        "device_id": d.device_id,
        "device_name": d.device_name,
        "user_id": owner.user_id,
        "user_name": owner.name,
        "upload_priority": d.upload_priority,
        "is_disabled": d.is_disabled,
        "is_upload_disabled": d.is_upload_disabled,
        "is_download_disabled": d.is_download_disabled,
    }))
}

pub async fn media_grants(
    State(state): State<AppState>,
    call: DeviceCall<Ignored, Status>,
) -> Result<Json<Value>, ApiError> {
    let Principal::Device { device, .. } = &call.principal else { unreachable!("device keys only") };
    let grants = state.catalog.grants_of_device(device.device_id).await?;
    let list: Vec<Value> = grants
        .iter()
        .map(|g| {
            json!({
                "media_grant_id": g.media_grant_id.to_string(),
                "grant_name": g.grant_name,
                "volume_id": g.volume_id,
                "prefix_path": g.prefix_path,
                "is_disabled": g.is_disabled,
                "volume_encryption_key": g.volume_encryption_key,
            })
        })
        .collect();
    Ok(Json(json!({"is_device_disabled": device.is_disabled, "media_grant_list": list})))
}
