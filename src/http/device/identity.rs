//! `current` and `media_grant`: who the device is and which volumes it may use.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::call::{DeviceCall, Status};
use crate::auth::Principal;
use crate::domain::MediaPath;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::tag;

/// Bodies of these calls carry nothing but the key (and an ignored client `version`).
#[derive(Deserialize, ToSchema)]
#[schema(as = DeviceIgnored)]
pub struct Ignored {}

// fields in the order the former `json!` wrote them (sorted): the answer stays byte for byte
/// The calling device and its owner.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceCurrent)]
pub struct Current {
    device_id: i64,
    device_name: String,
    /// A disabled device still gets this answer (its other calls answer 412).
    is_disabled: bool,
    is_download_disabled: bool,
    is_upload_disabled: bool,
    upload_priority: i64,
    user_id: i64,
    user_name: String,
}

/// Who the calling device is.
///
/// Answered for a disabled device as well, with `is_disabled: true`.
#[utoipa::path(post, path = "/current", tag = tag::DEVICE,
    operation_id = "device_current",
    request_body(content = Option<Ignored>, description = "Nothing needed: may carry the key"),
    responses(
        (status = 200, body = Current),
        (status = 403, description = "No valid device_session_key (`unauthorized`)"),
    ))]
pub async fn current(call: DeviceCall<Ignored, Status>) -> Json<Current> {
    let Principal::Device { device: d, owner } = &call.principal else { unreachable!("device keys only") };
    Json(Current {
        device_id: d.device_id.0,
        device_name: d.device_name.clone(),
        is_disabled: d.is_disabled,
        is_download_disabled: d.is_download_disabled,
        is_upload_disabled: d.is_upload_disabled,
        upload_priority: d.upload_priority,
        user_id: owner.user_id.0,
        user_name: owner.name.clone(),
    })
}

// fields sorted, as with `Current`
/// One grant of the device: a volume mounted on it.
#[derive(Serialize, ToSchema)]
#[schema(as = DeviceGrantEntry)]
pub struct GrantEntry {
    grant_name: String,
    is_disabled: bool,
    /// The grant's id, as a string.
    #[schema(example = "1")]
    media_grant_id: String,
    /// The part of the volume the grant sees.
    #[schema(value_type = String, example = "/")]
    prefix_path: MediaPath,
    /// `null` unless set.
    #[schema(required = true)]
    volume_encryption_key: Option<String>,
    volume_id: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeviceMediaGrants)]
pub struct MediaGrants {
    is_device_disabled: bool,
    media_grant_list: Vec<GrantEntry>,
}

/// The media grants of the calling device: the volumes it may use.
///
/// Answered for a disabled device as well, with `is_device_disabled: true`. The body may
/// carry a client `version`, which is ignored.
#[utoipa::path(post, path = "/media_grant", tag = tag::DEVICE,
    operation_id = "device_media_grants",
    request_body(content = Option<Ignored>,
        description = "Nothing needed: may carry the key and a client `version` (ignored)",
        example = json!({"device_session_key": "fry_d_…"})),
    responses(
        (status = 200, body = MediaGrants),
        (status = 403, description = "No valid device_session_key (`unauthorized`)"),
    ))]
pub async fn media_grants(
    State(state): State<AppState>,
    call: DeviceCall<Ignored, Status>,
) -> Result<Json<MediaGrants>, ApiError> {
    let Principal::Device { device, .. } = &call.principal else { unreachable!("device keys only") };
    let grants = state.catalog.grants_of_device(device.device_id).await?;
    let list = grants
        .into_iter()
        .map(|g| GrantEntry {
            grant_name: g.grant_name,
            is_disabled: g.is_disabled,
            media_grant_id: g.media_grant_id.to_string(),
            prefix_path: g.prefix_path,
            volume_encryption_key: g.volume_encryption_key,
            volume_id: g.volume_id.0,
        })
        .collect();
    Ok(Json(MediaGrants { is_device_disabled: device.is_disabled, media_grant_list: list }))
}
