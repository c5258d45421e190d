//! The one HTTP error type. Every error body has a stable snake_case `error` code and a
//! `message`; each API family adds its own fields (API.md "Conventions"), applied by the
//! family's router through [`Family::layer`], so handlers and extractors stay family-blind.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::permissions::Denial;
use crate::catalog::CatalogError;
use crate::ingest::IngestError;
use crate::ingest::multipart::UploadError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Fields merged into the body (a 409's current state).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The same error with another stable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Adds the fields of `state` (a JSON object) to the body.
    pub fn with_state(mut self, state: Value) -> Self {
        if let Value::Object(map) = state {
            self.extra.extend(map);
        }
        self
    }

    /// A refusal from the permission table; `device_family` calls answer an unknown
    /// credential with 403, as that family's documentation says.
    pub fn from_denial(denial: Denial, device_family: bool) -> Self {
        match denial {
            Denial::Unauthenticated if device_family => {
                Self::new(StatusCode::FORBIDDEN, "unauthorized", "a valid device_session_key is required")
            }
            Denial::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API token is required")
            }
            Denial::Forbidden(why) => Self::forbidden(why),
            Denial::DeviceDisabled => {
                Self::new(StatusCode::PRECONDITION_FAILED, "device_disabled", "this device is disabled")
            }
        }
    }

    fn body(&self, family: Family) -> Value {
        let mut body = self.extra.clone();
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        match family {
            Family::Plain => {}
            Family::Session => {
                body.insert("status".into(), json!("error"));
                body.insert("user_message".into(), json!(self.message));
            }
            Family::Gallery => {
                body.insert("success".into(), json!(false));
            }
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body(Family::Plain))).into_response();
        // kept so a family layer can re-render it and the trace layer can log 5xx once
        response.extensions_mut().insert(self);
        response
    }
}

/// The error-body dialect of an API family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Plain,
    Session,
    Gallery,
}

impl Family {
    /// Re-renders an [`ApiError`] response in this family's shape.
    pub fn render(self, response: Response) -> Response {
        if self == Family::Plain {
            return response;
        }
        match response.extensions().get::<ApiError>().cloned() {
            Some(err) => {
                let mut rendered = (err.status, Json(err.body(self))).into_response();
                rendered.extensions_mut().insert(err);
                rendered
            }
            None => response,
        }
    }

    /// A layer applying [`Family::render`] to every response of a router.
    pub fn layer<S: Clone + Send + Sync + 'static>(self, router: axum::Router<S>) -> axum::Router<S> {
        router.layer(axum::middleware::map_response(move |response: Response| async move { self.render(response) }))
    }
}

/// 507: the blob store or the catalog is out of space; nothing was kept.
fn insufficient_storage(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
        format!("the server has no space left for this upload ({what}); nothing was kept"),
    )
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(what) => Self::not_found(format!("{what} not found")),
            CatalogError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            CatalogError::Gone(what) => Self::new(StatusCode::GONE, "gone", what),
            CatalogError::Full(why) => {
                tracing::error!(error = %why, "the catalog is out of space");
                insufficient_storage("catalog full")
            }
            other => {
                tracing::error!(error = %other, "catalog failure");
                Self::internal("the catalog failed; the request was not applied")
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the upload exceeds the limit of {limit} bytes"),
            ),
            IngestError::HashMismatch(why) => Self::bad_request("hash_mismatch", why),
            IngestError::Body(why) => {
                Self::bad_request("bad_body", format!("the request body could not be read: {why}"))
            }
            IngestError::Catalog(err) => err.into(),
            IngestError::Store(err) if err.is_full() => {
                tracing::error!(error = %err, "the blob store is out of space");
                insufficient_storage("disk full")
            }
            IngestError::Store(err) => {
                tracing::error!(error = %err, "blob store failure");
                Self::internal("storing the upload failed; nothing was kept")
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(err: UploadError) -> Self {
        let message = err.to_string();
        match err {
            UploadError::NoSuchUpload => Self::not_found(message).with_code("no_such_upload"),
            UploadError::Completed => Self::new(StatusCode::CONFLICT, "upload_completed", message),
            UploadError::Completing => Self::new(StatusCode::CONFLICT, "upload_completing", message),
            UploadError::MissingPart(_) => Self::bad_request("missing_part", message),
            UploadError::EtagMismatch(_) => Self::bad_request("etag_mismatch", message),
            UploadError::PartSize(_) => Self::bad_request("invalid_parts", message),
            UploadError::TooLarge { limit } => IngestError::TooLarge { limit }.into(),
            UploadError::Ingest(err) => err.into(),
        }
    }
}
