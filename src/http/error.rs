//! The one HTTP error type. Every error body has a stable snake_case `error` code and a
//! `message`; each API family adds its own fields (API.md "Conventions"), applied by the
//! family's router through [`Family::layer`], so handlers and extractors stay family-blind.
//! The layer renders every error response of the family's routes: an [`ApiError`] keeps the
//! headers its handler set (a 416's `Content-Range`), the router's 405 is the family's own,
//! and an error axum answered itself in plain text becomes an [`ApiError`] of its status.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::permissions::Denial;
use crate::catalog::CatalogError;
pub use crate::domain::ErrorCode;
use crate::ingest::IngestError;
use crate::ingest::multipart::UploadError;

/// What a 503 `unavailable` asks clients to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Fields merged into the body (a 409's current state).
    pub extra: Map<String, Value>,
    /// What went wrong inside, for the server's log line of the request (never sent).
    pub cause: Option<String>,
}

impl ApiError {
    /// An error answered with its code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.status()).expect("error codes carry valid statuses");
        Self { status, code, message: message.into(), extra: Map::new(), cause: None }
    }

    /// The inner failure behind it, logged with the request (one line per failed request).
    pub fn because(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// The same error answered with another status (a code some family answers otherwise).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The answer to a method a route does not take (every router's 405).
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "this route does not take that method")
    }

    /// An error response axum built itself (an extractor's rejection, in plain text) as an
    /// [`ApiError`] of the same status, its text as the message. A 422 becomes a 400: API.md
    /// answers malformed input 400 in every family.
    async fn from_framework(status: StatusCode, body: Body) -> Self {
        // rejection texts are one line; more is not worth reading
        let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        };
        let message = match text.is_empty() {
            true => status.canonical_reason().unwrap_or("the request failed").to_owned(),
            false => text,
        };
        Self::new(code, message).with_status(status)
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
                Self::new(ErrorCode::Unauthorized, "a valid device_session_key is required")
                    .with_status(StatusCode::FORBIDDEN)
            }
            Denial::Unauthenticated => Self::new(ErrorCode::Unauthorized, "a valid API token is required"),
            Denial::Forbidden(why) => Self::forbidden(why),
            Denial::DeviceDisabled => Self::new(ErrorCode::DeviceDisabled, "this device is disabled"),
        }
    }

    fn body(&self, family: Family) -> Value {
        let mut body = self.extra.clone();
        body.insert("error".into(), json!(self.code.as_str()));
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
        if self.code == ErrorCode::Unavailable {
            // a dependency is down: clients (and proxies) retry after this many seconds
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
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
    /// Renders an error response in this family's shape: an [`ApiError`]'s body is rendered
    /// again with every header of the response kept; an error response axum built itself
    /// becomes an [`ApiError`] first. Other responses pass unchanged.
    pub async fn render(self, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        let err = match parts.extensions.get::<ApiError>() {
            // already in the plain shape
            Some(_) if self == Family::Plain => return Response::from_parts(parts, body),
            Some(err) => err.clone(),
            None if is_framework_error(&parts) => ApiError::from_framework(parts.status, body).await,
            None => return Response::from_parts(parts, body),
        };
        let rendered = Json(err.body(self)).into_response().into_body();
        parts.status = err.status;
        // the new body has its own length; every other header (Content-Range, Allow, …) stays
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts.extensions.insert(err);
        Response::from_parts(parts, rendered)
    }

    /// A layer applying [`Family::render`] to every response of a router, its 405s included.
    pub fn layer<S: Clone + Send + Sync + 'static>(self, router: axum::Router<S>) -> axum::Router<S> {
        // set before the layer so the layer wraps it (a 405 fallback the enclosing router
        // sets later would not pass through this family's layer)
        router
            .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
            .layer(axum::middleware::map_response(move |response: Response| self.render(response)))
    }
}

/// 507: the blob store or the catalog is out of space; nothing was kept.
fn insufficient_storage(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InsufficientStorage,
        format!("the server has no space left for this upload ({what}); nothing was kept"),
    )
}

/// An error status without an [`ApiError`] and without a JSON body: axum's own answer.
fn is_framework_error(parts: &axum::http::response::Parts) -> bool {
    let json = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    (parts.status.is_client_error() || parts.status.is_server_error()) && !json
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(what) => Self::not_found(format!("{what} not found")),
            CatalogError::Conflict(what) => Self::new(ErrorCode::Conflict, what),
            CatalogError::Gone(what) => Self::new(ErrorCode::Gone, what),
            CatalogError::QuotaExceeded(why) => Self::new(ErrorCode::QuotaExceeded, why),
            CatalogError::Unavailable(why) => Self::new(
                ErrorCode::Unavailable,
                "the catalog database cannot be reached; nothing was applied — try again shortly",
            )
            .because(format!("catalog unavailable: {why}")),
            CatalogError::Full(why) => {
                insufficient_storage("catalog full").because(format!("the catalog is out of space: {why}"))
            }
            other => Self::internal("the catalog failed; the request was not applied")
                .because(format!("catalog failure: {other}")),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::TooLarge { limit } => {
                Self::new(ErrorCode::TooLarge, format!("the upload exceeds the limit of {limit} bytes"))
            }
            IngestError::HashMismatch(why) => Self::new(ErrorCode::HashMismatch, why.to_string()),
            IngestError::Idle(idle) => Self::new(
                ErrorCode::BodyTimeout,
                format!("no bytes of the body arrived for {} s; the upload was dropped", idle.as_secs()),
            ),
            IngestError::Body(why) => {
                Self::new(ErrorCode::BadBody, format!("the request body could not be read: {why}"))
            }
            IngestError::Catalog(err) => err.into(),
            IngestError::Store(err) if err.is_full() => {
                insufficient_storage("disk full").because(format!("the blob store is out of space: {err}"))
            }
            IngestError::Store(err) if err.is_unavailable() => Self::new(
                ErrorCode::Unavailable,
                "the blob store cannot be reached; nothing was kept — try again shortly",
            )
            .because(format!("blob store unavailable: {err}")),
            IngestError::Store(err) => Self::internal("storing the upload failed; nothing was kept")
                .because(format!("blob store failure: {err}")),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(err: UploadError) -> Self {
        let message = err.to_string();
        match err {
            UploadError::NoSuchUpload => Self::new(ErrorCode::NoSuchUpload, message),
            UploadError::Completed => Self::new(ErrorCode::UploadCompleted, message),
            UploadError::Completing => Self::new(ErrorCode::UploadCompleting, message),
            UploadError::MissingPart(_) => Self::new(ErrorCode::MissingPart, message),
            UploadError::EtagMismatch(_) => Self::new(ErrorCode::EtagMismatch, message),
            UploadError::PartSize(_) => Self::new(ErrorCode::InvalidParts, message),
            UploadError::TooLarge { limit } => IngestError::TooLarge { limit }.into(),
            UploadError::Ingest(err) => err.into(),
        }
    }
}

impl From<crate::gallery::EventError> for ApiError {
    fn from(err: crate::gallery::EventError) -> Self {
        use crate::gallery::EventError;
        let message = err.to_string();
        match err {
            EventError::InvalidMediaType(_) => Self::new(ErrorCode::InvalidMediaType, message),
            EventError::Exists(_) => Self::new(ErrorCode::Conflict, message),
            EventError::NoSuchEvent(_) => Self::new(ErrorCode::NoSuchEvent, message),
            EventError::Ingest(err) => err.into(),
        }
    }
}

impl From<crate::library::LibraryError> for ApiError {
    fn from(err: crate::library::LibraryError) -> Self {
        use crate::library::LibraryError;
        let message = err.to_string();
        match err {
            LibraryError::SessionFinished(_) => Self::new(ErrorCode::SessionFinished, message),
            LibraryError::Recorded(_) => Self::new(ErrorCode::Conflict, message),
            LibraryError::Ingest(err) => err.into(),
        }
    }
}

impl From<crate::resumable::TusError> for ApiError {
    fn from(err: crate::resumable::TusError) -> Self {
        use crate::resumable::TusError;
        let message = err.to_string();
        match err {
            TusError::NotFound => Self::new(ErrorCode::NoSuchUpload, message),
            TusError::Expired => Self::new(ErrorCode::UploadExpired, message),
            TusError::Locked => Self::new(ErrorCode::UploadLocked, message),
            TusError::OffsetMismatch { offset, .. } => {
                Self::new(ErrorCode::OffsetMismatch, message).with_state(json!({ "offset": offset }))
            }
            TusError::InvalidLength(_) => Self::new(ErrorCode::InvalidLength, message),
            TusError::TooLarge { .. } | TusError::PastLength { .. } => Self::new(ErrorCode::TooLarge, message),
            TusError::ChecksumMismatch => Self::new(ErrorCode::ChecksumMismatch, message),
            TusError::HashMismatch(_) => Self::new(ErrorCode::HashMismatch, message),
            TusError::ConflictingTarget => Self::new(ErrorCode::ConflictingTarget, message),
            TusError::UnknownDevice(_) => Self::new(ErrorCode::UnknownDevice, message),
            TusError::InvalidMetadata(_) => Self::new(ErrorCode::InvalidMetadata, message),
            TusError::FinalUpload => Self::new(ErrorCode::FinalUpload, message),
            TusError::InvalidConcat(_) => Self::new(ErrorCode::InvalidConcat, message),
            TusError::Body(why) => IngestError::Body(why).into(),
            TusError::Ingest(err) => err.into(),
            TusError::Library(err) => err.into(),
            TusError::Event(err) => err.into(),
        }
    }
}
