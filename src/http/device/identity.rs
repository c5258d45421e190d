//! `current` and `media_grant`: who the device is and which volumes it may use.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{DeviceCall, Status};
use crate::http::AppState;
use crate::http::error::ApiError;

#[derive(Deserialize)]
pub struct Empty {}

pub async fn current(call: DeviceCall<Empty, Status>) -> Json<Value> {
    let d = &call.device;
    Json(json!({
        "device_id": d.device_id,
        "device_name": d.device_name,
        "user_id": call.owner.user_id,
        "user_name": call.owner.name,
        "upload_priority": d.upload_priority,
        "is_disabled": d.is_disabled,
        "is_upload_disabled": d.is_upload_disabled,
        "is_download_disabled": d.is_download_disabled,
    }))
}

#[derive(Deserialize)]
pub struct GrantsRequest {
    /// Client protocol version; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<Value>,
}

pub async fn media_grants(
    State(state): State<AppState>,
    call: DeviceCall<GrantsRequest, Status>,
) -> Result<Json<Value>, ApiError> {
    let grants = state
        .catalog
        .grants_of_device(call.device.device_id)
        .await?;
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
    Ok(Json(
        json!({"is_device_disabled": call.device.is_disabled, "media_grant_list": list}),
    ))
}
