//! Extractors that turn requests into typed input, answering bad input with the JSON
//! errors of [`ApiError`] (never axum's plain-text rejections).

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::body_idle::stalled;
use super::error::ApiError;
use crate::auth::permissions::{Endpoint, authorize};
use crate::auth::{Presented, Principal};
use crate::domain::ErrorCode;

/// JSON bodies up to this size unless a route says otherwise.
pub const JSON_LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body; an empty body counts as `{}` and the Content-Type is not required (device
/// clients often send neither).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let value = read_json_value(req, JSON_LIMIT).await?;
        parse_json(value).map(JsonBody)
    }
}

/// Reads a body of at most `limit` bytes as a JSON value (`{}` when empty).
pub async fn read_json_value(req: Request, limit: usize) -> Result<serde_json::Value, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| {
        stalled(&e)
            .unwrap_or_else(|| ApiError::new(ErrorCode::TooLarge, format!("the request body exceeds {limit} bytes")))
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("malformed JSON body: {e}")))
}

/// Deserialises a JSON value into the request type, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid request body: {e}")))
}

/// A boolean as forms and query strings spell it: `0/1/true/false`, any case.
pub fn parse_flag(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// Query parameters, with malformed ones answered as JSON 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("invalid query string: {e}")))
    }
}

/// The web gallery's session cookie.
pub const SESSION_COOKIE: &str = "ferry_session";
/// The header the page sends its CSRF token in with every request that changes state.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Credentials from headers, the query string and the web session cookie (bodies are read by
/// the family that allows keys there).
pub fn presented(parts: &Parts) -> Presented {
    let web_session = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned);
    let web_csrf_missing = !parts.method.is_safe()
        && web_session.as_deref().is_some_and(|secret| {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            !crate::auth::secrets::same(sent, &crate::auth::web::csrf_token(secret))
        });
    let mut presented = Presented {
        header_token: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Presented::from_authorization),
        web_session,
        web_csrf_missing,
        ..Presented::default()
    };
    for (key, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "device_session_key" => presented.device_session_key = Some(value.into_owned()),
            "user_session_key" => presented.user_session_key = Some(value.into_owned()),
            _ => {}
        }
    }
    presented
}

/// Resolves credentials and applies the permission table for `endpoint`.
pub async fn authenticate(state: &AppState, presented: &Presented, endpoint: Endpoint) -> Result<Principal, ApiError> {
    if presented.web_csrf_missing && matches!(presented.credential(), Some(crate::auth::Credential::WebSession(_))) {
        return Err(ApiError::new(
            ErrorCode::CsrfRefused,
            format!("a change made with the web session cookie needs the page's {CSRF_HEADER} header"),
        ));
    }
    let principal = state.principals.resolve(state.catalog.as_ref(), presented).await?;
    let device_family =
        matches!(endpoint, Endpoint::DeviceStatus | Endpoint::DeviceFamily | Endpoint::DeviceMediaDelete);
    authorize(endpoint, principal.as_ref()).map_err(|d| ApiError::from_denial(d, device_family))?;
    let principal = principal.expect("authorize refuses a missing principal");
    // the request's span (http::router) names who is calling, for every line logged under it
    let span = tracing::Span::current();
    span.record("user", principal.user().user_id.0);
    if let Principal::Device { device, .. } = &principal {
        span.record("device", device.device_id.0);
    }
    Ok(principal)
}

/// Names the permission-table row an extractor enforces.
pub trait Requires {
    const ENDPOINT: Endpoint;
}

/// An authenticated caller allowed to call endpoint `E` (credentials from headers/query).
pub struct Caller<E: Requires>(pub Principal, pub PhantomData<E>);

impl<E: Requires> FromRequestParts<AppState> for Caller<E> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = authenticate(state, &presented(parts), E::ENDPOINT).await?;
        Ok(Caller(principal, PhantomData))
    }
}

/// Declares marker types for permission-table rows.
macro_rules! requires {
    ($($marker:ident => $endpoint:ident),* $(,)?) => {
        $(
            #[doc = concat!("Marker for [`Endpoint::", stringify!($endpoint), "`].")]
            pub struct $marker;
            impl Requires for $marker {
                const ENDPOINT: Endpoint = Endpoint::$endpoint;
            }
        )*
    };
}

requires! {
    AccountInfo => AccountInfo,
    MultipartUpload => Multipart,
    OwnFile => OwnFile,
    SessionUpload => SessionUpload,
    GalleryRead => GalleryRead,
    GalleryUpload => GalleryUpload,
    GalleryDelete => GalleryDelete,
    FileDelete => FileDelete,
    UsageRead => UsageRead,
    TusUpload => Tus,
    TimelineRead => TimelineRead,
    TimelineDelete => TimelineDelete,
    DevicesRead => DevicesRead,
}
