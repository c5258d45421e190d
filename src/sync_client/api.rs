//! The device family (API.md §1) as a sync client speaks it: typed calls over HTTP, the key
//! in the JSON body (never in a URL a log could keep), transient failures retried a bounded
//! number of times, and errors a person can act on.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{ErrorCode, Sha256Hex};

/// How often a request that failed transiently (no connection, 5xx, 429) is tried in all.
const ATTEMPTS: u32 = 5;
/// The first pause before a retry; it doubles each time (0.5 + 1 + 2 + 4 s at most).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest a server's `Retry-After` makes a retry wait (a busier server is asked again
/// then, and the run fails after its attempts rather than hanging).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long a call may go unanswered, or a transfer without moving a byte, unless
/// `--stall-timeout` says otherwise: then the attempt counts as a lost connection (tried again).
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the Ferry server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server at {server} refused the device key: {message} (check --device-key / FERRY_DEVICE_KEY)")]
    BadKey { server: String, message: String },
    #[error("{message} (HTTP {status}, {code})")]
    Refused { status: u16, code: String, message: String, body: Value, retry_after: Option<Duration> },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ApiError {
    /// Worth another try later: the server or the network, not the request.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            // a completion still running (an earlier attempt that timed out here): its answer
            // comes to the next attempt
            ApiError::Refused { status, code, .. } => {
                *status >= 500 || *status == 429 || code == ErrorCode::UploadCompleting.as_str()
            }
            _ => false,
        }
    }

    /// The error code of a refusal (`path_conflict`, `no_such_upload`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether this is a refusal with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(code.as_str())
    }

    /// The full JSON body of a refusal (a 409 carries the current state).
    pub fn body(&self) -> Option<&Value> {
        match self {
            ApiError::Refused { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether the whole run must stop (the key or the server), not just one file.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ApiError::BadKey { .. } | ApiError::Unreachable { .. })
            || [
                ErrorCode::DeviceDisabled,
                ErrorCode::GrantDisabled,
                ErrorCode::NoSuchGrant,
                ErrorCode::UploadDisabled,
                ErrorCode::DownloadDisabled,
            ]
            .into_iter()
            .any(|code| self.is(code))
    }
}

/// One of the device's grants, as `media_grant` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantInfo {
    pub media_grant_id: String,
    pub prefix_path: String,
    pub is_disabled: bool,
}

/// A device-family client for one server, device key and grant.
#[derive(Clone)]
pub struct DeviceApi {
    http: reqwest::Client,
    server: String,
    key: String,
    grant: String,
    stall: Duration,
}

impl DeviceApi {
    /// A client that gives up an attempt after `stall` without an answer or progress.
    pub fn new(server: &str, key: &str, grant: &str, stall: Duration) -> Result<Self, ApiError> {
        let server = server.trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(ApiError::Unreachable {
                url: server,
                reason: "the server URL must start with http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ApiError::Unreachable { url: server.clone(), reason: e.to_string() })?;
        Ok(Self { http, server, key: key.to_owned(), grant: grant.to_owned(), stall })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn grant_id(&self) -> &str {
        &self.grant
    }

    /// The HTTP client, for signed URLs (they need no credential).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// How long an attempt may go without an answer or progress (`--stall-timeout`).
    pub fn stall(&self) -> Duration {
        self.stall
    }

    /// Checks the key and finds this client's grant: a refused key, a disabled device and a
    /// grant the device does not have are each said plainly.
    pub async fn grant_info(&self) -> Result<GrantInfo, ApiError> {
        let answer = match self.post("/device/1/media_grant", json!({}), self.stall).await {
            // the first call: a 404 here means the address is not a Ferry's (a path after it?)
            Err(ApiError::Refused { status: 404, .. }) => {
                let url = format!("{}/device/1/media_grant", self.server);
                let reason = format!("{url} is not a Ferry device API (HTTP 404); check --server");
                return Err(ApiError::Protocol { url, reason });
            }
            answer => answer?,
        };
        if answer["is_device_disabled"] == true {
            return Err(refusal(ErrorCode::DeviceDisabled, "this device is disabled on the server"));
        }
        let grants: Vec<GrantInfo> = serde_json::from_value(answer["media_grant_list"].clone())
            .map_err(|e| self.protocol("/device/1/media_grant", e))?;
        let grant = grants.into_iter().find(|g| g.media_grant_id == self.grant).ok_or_else(|| {
            refusal(
                ErrorCode::NoSuchGrant,
                &format!("this device has no media grant {} (check --grant / FERRY_GRANT)", self.grant),
            )
        })?;
        if grant.is_disabled {
            return Err(refusal(ErrorCode::GrantDisabled, &format!("media grant {} is disabled", self.grant)));
        }
        Ok(grant)
    }

    /// POSTs to `/device/1/media_grant/<grant>/<op>`; given up after `--stall-timeout`
    /// without an answer.
    pub async fn call(&self, op: &str, body: Value) -> Result<Value, ApiError> {
        self.call_allowing(op, body, self.stall).await
    }

    /// As [`Self::call`], for a call the server may work on for `allowed` before it answers
    /// (assembling a large file).
    pub async fn call_allowing(&self, op: &str, body: Value, allowed: Duration) -> Result<Value, ApiError> {
        self.post(&format!("/device/1/media_grant/{}/{op}", self.grant), body, allowed).await
    }

    /// `upload`: which of these contents the server needs (one entry per content, in order).
    pub async fn upload_check(&self, files: &[(Sha256Hex, u64)]) -> Result<Value, ApiError> {
        let list: Vec<Value> = files.iter().map(|(h, s)| json!({"file_hash": h, "file_size": s})).collect();
        self.call("upload", json!({"file_list": list})).await
    }

    async fn post(&self, path: &str, mut body: Value, allowed: Duration) -> Result<Value, ApiError> {
        body["device_session_key"] = json!(self.key);
        let url = format!("{}{path}", self.server);
        with_retries(|| self.post_once(&url, &body, allowed)).await
    }

    async fn post_once(&self, url: &str, body: &Value, allowed: Duration) -> Result<Value, ApiError> {
        let request = self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").timeout(allowed);
        let response = request.body(body.to_string()).send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return if value.is_object() {
                Ok(value)
            } else {
                Err(self.protocol(url, "the answer is not a JSON object"))
            };
        }
        let code = value["error"].as_str().unwrap_or("http_error").to_owned();
        let message = value["message"].as_str().map_or_else(|| status.to_string(), str::to_owned);
        if status == StatusCode::FORBIDDEN && code == ErrorCode::Unauthorized.as_str() {
            return Err(ApiError::BadKey { server: self.server.clone(), message });
        }
        if status == StatusCode::NOT_FOUND && value.is_null() {
            let message = format!("{url} is not a Ferry device API (HTTP 404); check --server");
            return Err(ApiError::Protocol { url: url.to_owned(), reason: message });
        }
        Err(ApiError::Refused { status: status.as_u16(), code, message, body: value, retry_after })
    }

    fn unreachable(&self, e: reqwest::Error) -> ApiError {
        let reason =
            if e.is_timeout() { "no answer in the time allowed (see --stall-timeout)".into() } else { error_chain(&e) };
        ApiError::Unreachable { url: self.server.clone(), reason }
    }

    fn protocol(&self, url: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::Protocol { url: url.to_owned(), reason: reason.to_string() }
    }
}

/// A refusal the client concludes itself, as the server would have answered it.
fn refusal(code: ErrorCode, message: &str) -> ApiError {
    let (status, code, message) = (code.status(), code.as_str().to_owned(), message.to_owned());
    ApiError::Refused { status, code, message, body: Value::Null, retry_after: None }
}

/// An error with its causes ("error sending request: … : Connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Why an attempt was given up after `stall` of silence.
pub fn stalled_for(stall: Duration) -> String {
    format!("no answer or progress for {} s (see --stall-timeout)", stall.as_secs_f64())
}

/// Runs `work`, a transfer whose progress `moved` counts, unless `moved` stays the same for
/// `stall`: `None` then (the server stopped reading or answering).
pub async fn unless_stalled<F: std::future::Future>(
    stall: Duration,
    moved: &std::sync::atomic::AtomicU64,
    work: F,
) -> Option<F::Output> {
    use std::sync::atomic::Ordering;
    let watchdog = async {
        let (mut seen, mut since) = (moved.load(Ordering::Relaxed), tokio::time::Instant::now());
        loop {
            tokio::time::sleep((stall / 8).max(Duration::from_millis(10))).await;
            let now = moved.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, tokio::time::Instant::now());
            } else if since.elapsed() >= stall {
                return;
            }
        }
    };
    tokio::select! {
        done = work => Some(done),
        () = watchdog => None,
    }
}

/// Errors that may go away on their own (the network, an overloaded server).
pub trait Transient {
    fn is_transient(&self) -> bool;
    /// How long the server asked to be left alone (`Retry-After`), if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        ApiError::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A `Retry-After` in seconds (the form Ferry and most servers send; an HTTP date is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Retries `attempt` while it fails transiently, with the same bounded backoff as API calls
/// (signed PUTs and GETs go to other hosts than the API, but fail the same ways), waiting
/// at least as long as a `Retry-After` asks (up to [`MAX_RETRY_AFTER`]).
pub async fn with_retries<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut pause = FIRST_BACKOFF;
    for _ in 1..ATTEMPTS {
        match attempt().await {
            Err(e) if e.is_transient() => {
                tokio::time::sleep(pause_before_retry(pause, e.retry_after())).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    attempt().await
}

/// The backoff, or what the server asked for when that is longer (at most
/// [`MAX_RETRY_AFTER`]).
fn pause_before_retry(backoff: Duration, asked: Option<Duration>) -> Duration {
    asked.map_or(backoff, |asked| asked.min(MAX_RETRY_AFTER).max(backoff))
}

/// The scheme, host and port of a URL (what an unreachable error names).
pub fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.origin().ascii_serialization())
}

/// A non-2xx answer of a signed URL as an [`ApiError`].
pub async fn refused_by(response: reqwest::Response) -> ApiError {
    let status = response.status().as_u16();
    let retry_after = retry_after(&response);
    let bytes = response.bytes().await.unwrap_or_default();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = value["error"].as_str().unwrap_or("http_error").to_owned();
    let message = value["message"].as_str().map_or_else(|| format!("HTTP {status}"), str::to_owned);
    ApiError::Refused { status, code, message, body: value, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_waits_as_long_as_the_server_asks_within_bounds() {
        let second = Duration::from_secs(1);
        assert_eq!(pause_before_retry(second, None), second);
        assert_eq!(pause_before_retry(second, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(pause_before_retry(second, Some(Duration::ZERO)), second, "never sooner than the backoff");
        assert_eq!(pause_before_retry(second, Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
    }
}
