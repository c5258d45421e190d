//! The device family's request extractor: credentials from header, query or JSON body,
//! the permission table applied, the rest of the body parsed as the call's input.

use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Principal;
use crate::auth::permissions::Endpoint;
use crate::catalog::{Device, User};
use crate::domain::DeviceId;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Requires, authenticate, parse_json, presented, read_json_value};

/// Device-family bodies may be large (a 10,000-entry upload batch); API.md asks ≥ 4 MiB.
pub const DEVICE_JSON_LIMIT: usize = 16 * 1024 * 1024;

/// An authenticated device-family call with body `T`, allowed by table row `E`.
pub struct DeviceCall<T, E: Requires = Enabled> {
    pub principal: Principal,
    pub body: T,
    _endpoint: PhantomData<E>,
}

/// Calls any enabled device may make with its key.
pub struct Enabled;
impl Requires for Enabled {
    const ENDPOINT: Endpoint = Endpoint::DeviceFamily;
}

/// Calls a disabled device may still make (`current`, `media_grant`).
pub struct Status;
impl Requires for Status {
    const ENDPOINT: Endpoint = Endpoint::DeviceStatus;
}

/// DELETE media: the device key or the owner's token.
pub struct MediaDelete;
impl Requires for MediaDelete {
    const ENDPOINT: Endpoint = Endpoint::DeviceMediaDelete;
}

impl<T, E: Requires> DeviceCall<T, E> {
    /// The calling device (`None` when the owner called with a token or from the web page).
    pub fn device(&self) -> Option<&Device> {
        match &self.principal {
            Principal::Device { device, .. } => Some(device),
            Principal::Token { .. } | Principal::Web { .. } => None,
        }
    }

    pub fn device_id(&self) -> Option<DeviceId> {
        self.device().map(|d| d.device_id)
    }

    /// The device's owner, who owns everything the call touches.
    pub fn owner(&self) -> &User {
        self.principal.user()
    }
}

impl<T> DeviceCall<T, Enabled> {
    /// For calls only a device key can make.
    pub fn calling_device(&self) -> &Device {
        self.device().expect("the permission table admits device keys only here")
    }
}

impl<T: DeserializeOwned, E: Requires> FromRequest<AppState> for DeviceCall<T, E> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let mut credentials = presented(&parts);
        let mut value = read_json_value(Request::from_parts(parts, body), DEVICE_JSON_LIMIT).await?;
        if let Value::Object(map) = &mut value {
            if let Some(Value::String(key)) = map.remove("device_session_key") {
                credentials.device_session_key.get_or_insert(key);
            }
            if let Some(Value::String(key)) = map.remove("user_session_key") {
                credentials.user_session_key.get_or_insert(key);
            }
        }
        let principal = authenticate(state, &credentials, E::ENDPOINT).await?;
        Ok(DeviceCall { principal, body: parse_json(value)?, _endpoint: PhantomData })
    }
}
