//! The device family's request extractor: credentials from header, query or JSON body,
//! the permission table applied, the rest of the body parsed as the call's input.

use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Principal;
use crate::auth::permissions::Endpoint;
use crate::catalog::{Device, User};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Requires, authenticate, parse_json, presented, read_json_value};

/// Device-family bodies may be large (a 10,000-entry upload batch); API.md asks ≥ 4 MiB.
pub const DEVICE_JSON_LIMIT: usize = 16 * 1024 * 1024;

/// An authenticated device call with body `T`.
pub struct DeviceCall<T, E: Requires = Enabled> {
    pub device: Device,
    pub owner: User,
    pub body: T,
    _endpoint: PhantomData<E>,
}

/// Calls any enabled device may make.
pub struct Enabled;
impl Requires for Enabled {
    const ENDPOINT: Endpoint = Endpoint::DeviceFamily;
}

/// Calls a disabled device may still make (`current`, `media_grant`).
pub struct Status;
impl Requires for Status {
    const ENDPOINT: Endpoint = Endpoint::DeviceStatus;
}

impl<T: DeserializeOwned, E: Requires> FromRequest<AppState> for DeviceCall<T, E> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let mut credentials = presented(&parts);
        let mut value =
            read_json_value(Request::from_parts(parts, body), DEVICE_JSON_LIMIT).await?;
        if let Value::Object(map) = &mut value {
            if let Some(Value::String(key)) = map.remove("device_session_key") {
                credentials.device_session_key.get_or_insert(key);
            }
            if let Some(Value::String(key)) = map.remove("user_session_key") {
                credentials.user_session_key.get_or_insert(key);
            }
        }
        let principal = authenticate(state, &credentials, E::ENDPOINT).await?;
        let Principal::Device { device, owner } = principal else {
            return Err(ApiError::forbidden("this call needs a device_session_key"));
        };
        Ok(DeviceCall {
            device,
            owner,
            body: parse_json(value)?,
            _endpoint: PhantomData,
        })
    }
}
