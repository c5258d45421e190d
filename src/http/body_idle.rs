//! A backstop for request bodies that stop arriving: once the server has asked for more of a
//! body, it waits at most a while for it, then the body ends with [`BodyIdle`]. Without it a
//! client that sends the headers and part of a JSON or form body keeps its connection and
//! task forever (hyper's deadline covers the headers only; see [`super::serve`]).
//!
//! Upload bodies have their own guard in ingest, which answers 408 saying what was kept; this
//! one waits [`MARGIN`] longer, so that answer comes first, and covers every other body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::error::ApiError;
use crate::domain::ErrorCode;

/// How much longer than an upload's own guard this one waits.
pub const MARGIN: Duration = Duration::from_secs(1);

/// The error a stalled body ends with.
#[derive(Debug)]
pub struct BodyIdle(pub Duration);

impl std::fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no bytes of the body arrived for {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyIdle {}

/// Middleware: every request's body, guarded (the state is how long it may stall).
pub async fn guard(State(idle): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = Body::new(Guarded { inner: body, idle, waiting: None });
    next.run(Request::from_parts(parts, body)).await
}

/// A multipart form part that could not be read: it stalled (408), or is malformed (400).
pub fn unreadable_form(error: &(dyn std::error::Error + 'static)) -> ApiError {
    stalled(error).unwrap_or_else(|| ApiError::new(ErrorCode::InvalidForm, error.to_string()))
}

/// 408 `body_timeout` when reading a body failed because it stalled (`error` or what caused
/// it); `None` for any other failure, which the caller answers as its own.
pub fn stalled(error: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(idle) = error.downcast_ref::<BodyIdle>() {
            return Some(ApiError::new(ErrorCode::BodyTimeout, idle.to_string()));
        }
        cause = error.source();
    }
    None
}

struct Guarded {
    inner: Body,
    idle: Duration,
    /// Runs from the first time the body had nothing when asked; reset by every frame, so
    /// a reader that is slow to ask (writing to slow storage) is never the client's fault.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let idle = this.idle;
                let waiting = this.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyIdle(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
