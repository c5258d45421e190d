//! A small HTTP proxy on loopback between the real `ferry push`/`pull` and a test server: it
//! records every request (method, path, query, status, body bytes) so tests count what the
//! client really sent, and can hold part PUTs (to kill a client mid-file deterministically).
//! The server's `upload_url` points at the proxy, so signed byte transfers pass through too.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::Notify;

use crate::helpers::*;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Request body bytes forwarded to the server.
    pub bytes: u64,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Seen {
    /// The device-family operation (`upload`, `media`, `multipart`, …) or the signed target.
    pub fn op(&self) -> &str {
        match self.path.split_once("/media_grant/") {
            Some((_, rest)) => rest.split_once('/').map_or("", |(_, op)| op),
            None => &self.path,
        }
    }

    /// The `part` of a signed part PUT.
    pub fn part(&self) -> Option<u32> {
        self.query.split('&').find_map(|kv| kv.strip_prefix("part=")).and_then(|n| n.parse().ok())
    }
}

struct Inner {
    target: String,
    client: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
    /// Part PUTs of this part number or above are held (`None`: nothing is).
    hold_from: Mutex<Option<u32>>,
    held: Mutex<u32>,
    release: Notify,
    /// The next calls of this operation answer 503 with `Retry-After`: (op, how many, seconds).
    busy: Mutex<Option<(String, u32, u64)>>,
    /// Downloads (GETs) break off after this many bytes of their answer (`None`: never).
    cut_after: Mutex<Option<u64>>,
}

pub struct Proxy {
    pub address: String,
    inner: Arc<Inner>,
}

/// A test server behind a proxy (signed URLs point at the proxy too).
pub async fn spawn_behind_proxy() -> (TestApp, Proxy) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let public = address.clone();
    let app = spawn_app_with(move |layer| {
        layer.insert("upload_url", public.clone());
    })
    .await;
    let inner = Arc::new(Inner {
        target: app.address.clone(),
        client: reqwest::Client::new(),
        seen: Mutex::new(Vec::new()),
        hold_from: Mutex::new(None),
        held: Mutex::new(0),
        release: Notify::new(),
        busy: Mutex::new(None),
        cut_after: Mutex::new(None),
    });
    let router = Router::new().fallback(forward).with_state(inner.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, Proxy { address, inner })
}

impl Proxy {
    /// Everything seen so far, and forgets it.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.inner.seen.lock().unwrap())
    }

    /// Requests of this device-family operation among `seen`.
    pub fn count(seen: &[Seen], op: &str) -> usize {
        seen.iter().filter(|s| s.op() == op).count()
    }

    /// Holds part PUTs of part `from` and above until [`Proxy::release`].
    pub fn hold_parts_from(&self, from: u32) {
        *self.inner.hold_from.lock().unwrap() = Some(from);
    }

    /// How many part PUTs are being held.
    pub fn held(&self) -> u32 {
        *self.inner.held.lock().unwrap()
    }

    /// Answers the next `times` calls of device-family operation `op` as a server that is
    /// briefly unavailable would: 503 `unavailable` with `Retry-After: seconds`.
    pub fn busy_for(&self, op: &str, times: u32, seconds: u64) {
        *self.inner.busy.lock().unwrap() = Some((op.to_owned(), times, seconds));
    }

    /// Breaks every download (GET) off after `bytes` bytes of its answer, as a lost connection
    /// would (`None`: lets them through whole again).
    pub fn cut_downloads_after(&self, bytes: Option<u64>) {
        *self.inner.cut_after.lock().unwrap() = bytes;
    }

    /// Answers held PUTs with a 503 and holds nothing more.
    pub fn release(&self) {
        *self.inner.hold_from.lock().unwrap() = None;
        self.inner.release.notify_waiters();
    }
}

async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let at = std::time::Instant::now();
    let mut seen = Seen { method: parts.method.to_string(), path, query, status: 0, bytes: 0, at };
    if let Some(seconds) = take_busy(&inner, seen.op()) {
        seen.status = 503;
        inner.seen.lock().unwrap().push(seen);
        let body = r#"{"error":"unavailable","message":"the catalog is unavailable (test proxy)"}"#;
        let response = Response::builder().status(503).header("retry-after", seconds.to_string());
        return response.header("content-type", "application/json").body(Body::from(body)).unwrap();
    }
    let hold_from = *inner.hold_from.lock().unwrap();
    if let (Some(from), Some(part)) = (hold_from, seen.part())
        && part >= from
    {
        // take a little of the body (the client is mid-part), then wait: the server never
        // sees this part
        let mut stream = body.into_data_stream();
        let _ = stream.next().await;
        *inner.held.lock().unwrap() += 1;
        let released = inner.release.notified();
        released.await;
        return Response::builder().status(503).body(Body::from("held by the test proxy")).unwrap();
    }
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = counted.clone();
    let stream = body.into_data_stream().inspect_ok(move |chunk| {
        counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    });
    let mut outgoing = inner
        .client
        .request(parts.method.clone(), format!("{}{}", inner.target, parts.uri))
        .body(reqwest::Body::wrap_stream(stream));
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "connection" | "transfer-encoding") {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Response::builder().status(502).body(Body::from(e.to_string())).unwrap(),
    };
    seen.status = answer.status().as_u16();
    seen.bytes = counted.load(std::sync::atomic::Ordering::Relaxed);
    inner.seen.lock().unwrap().push(seen);
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "connection" | "transfer-encoding") {
            response = response.header(name, value);
        }
    }
    let cut = if parts.method == axum::http::Method::GET { *inner.cut_after.lock().unwrap() } else { None };
    match cut {
        Some(limit) => response.body(Body::from_stream(cut_off(Box::pin(answer.bytes_stream()), limit))).unwrap(),
        None => response.body(Body::from_stream(answer.bytes_stream())).unwrap(),
    }
}

/// `stream` until `limit` bytes, then an error: the connection is dropped mid-answer.
fn cut_off(
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    limit: u64,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold((stream, Some(limit)), |(mut stream, left)| async move {
        let left = left?;
        if left == 0 {
            return Some((Err(std::io::Error::other("cut off by the test proxy")), (stream, None)));
        }
        match stream.next().await? {
            Ok(mut chunk) => {
                chunk.truncate(chunk.len().min(left as usize));
                let rest = left - chunk.len() as u64;
                Some((Ok(chunk), (stream, Some(rest))))
            }
            Err(e) => Some((Err(std::io::Error::other(e)), (stream, None))),
        }
    })
}

/// Counts down a busy spell for `op`: its `Retry-After` seconds while it lasts.
fn take_busy(inner: &Inner, op: &str) -> Option<u64> {
    let mut busy = inner.busy.lock().unwrap();
    let (busy_op, times, seconds) = busy.as_mut()?;
    if busy_op != op || *times == 0 {
        return None;
    }
    *times -= 1;
    Some(*seconds)
}
