//! A backstop for request bodies that stop arriving: once the server has asked for more of a
//! body and the client has nothing, it waits at most a while, then the body ends with
//! [`BodyIdle`]. Without it a client that sends the headers and part of a JSON or form body
//! keeps its connection and task for ever (hyper's deadline covers the headers only; see
//! [`super::serve`]).
//!
//! Upload bodies have their own guard in ingest, which answers 408 saying what was kept; this
//! one waits [`MARGIN`] longer, so that answer usually comes first, and ingest answers the
//! same when this one notices first (its reader was busy writing when the client stopped).
//! On an HTTP/2 connection one stream nobody reads can hold the connection's window, so the
//! others stall too and end here: that is the client's own connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::ApiError;
use crate::domain::ErrorCode;
use crate::ingest::BodyIdle;

/// How much longer than an upload's own guard this one waits.
pub const MARGIN: Duration = Duration::from_secs(1);

/// Middleware: every request's body, guarded (the state is how long it may stall).
pub async fn guard(State(idle): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = Body::new(Guarded { inner: Some(body), idle, deadline: None, waiting: false });
    next.run(Request::from_parts(parts, body)).await
}

/// A multipart form part that could not be read: it stalled (408), or is malformed (400).
pub fn unreadable_form(error: &(dyn std::error::Error + 'static)) -> ApiError {
    stalled(error).unwrap_or_else(|| ApiError::new(ErrorCode::InvalidForm, error.to_string()))
}

/// 408 `body_timeout` when reading a body failed because it stalled; `None` for any other
/// failure, which the caller answers as its own.
pub fn stalled(error: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    BodyIdle::behind(error).map(|idle| ApiError::new(ErrorCode::BodyTimeout, idle.to_string()))
}

struct Guarded {
    /// `None` once the body stalled: it has ended.
    inner: Option<Body>,
    idle: Duration,
    /// One timer for the body's whole life, moved on rather than made anew.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether the deadline runs: from the first time the body had nothing when asked, until
    /// the next frame, so a reader that is slow to ask is never the client's fault.
    waiting: bool,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame);
        }
        let at = Instant::now() + this.idle;
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !this.waiting {
            deadline.as_mut().reset(at);
            this.waiting = true;
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.inner = None;
                Poll::Ready(Some(Err(axum::Error::new(BodyIdle(this.idle)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}
