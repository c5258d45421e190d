//! Sending the contents the server needs, each once: a signed PUT up to 16 MiB (registered
//! with `s3_object` unless Ferry's own upload host already recorded it), the device
//! multipart above, its parts in parallel. Starting a multipart again for the same content
//! resumes it (API.md §5): parts the server marks `received` are not sent again, so a run
//! that was killed mid-file continues where it stopped. At most `--concurrency` PUTs are in
//! flight in all; file bytes stream from disk, so memory stays flat whatever the size.

use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;

use super::{Planned, PushSummary};
use crate::domain::{ErrorCode, Sha256Hex};
use crate::sync_client::api::{
    ApiError, Transient, error_chain, origin_of, refused_by, stalled_for, unless_stalled, with_retries,
};
use crate::sync_client::progress::Phase;
use crate::sync_client::walk::Stamp;
use crate::sync_client::{Session, SyncError};

/// What sending found.
#[derive(Default)]
pub(super) struct Sent {
    /// Contents that could not be sent, with the reason (their files are not created).
    pub failed: HashMap<(Sha256Hex, u64), String>,
    /// Contents this run sent.
    pub uploaded: HashSet<(Sha256Hex, u64)>,
    /// Failed contents whose failure was the server's or the network's (worth another try).
    pub transient: HashSet<(Sha256Hex, u64)>,
}

enum Outcome {
    /// Sent; this many bytes went over the wire.
    Sent(u64),
    /// The server turned out to hold it already (another client was quicker).
    AlreadyHeld,
}

#[derive(Debug)]
enum TransferError {
    Api(ApiError),
    Local(String),
}

impl Transient for TransferError {
    fn is_transient(&self) -> bool {
        matches!(self, TransferError::Api(e) if e.is_transient())
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            TransferError::Api(e) => Transient::retry_after(e),
            TransferError::Local(_) => None,
        }
    }
}

impl From<ApiError> for TransferError {
    fn from(e: ApiError) -> Self {
        TransferError::Api(e)
    }
}

struct Ctx<'a> {
    session: &'a Session,
    phase: Phase,
    permits: Arc<Semaphore>,
}

pub(super) async fn send_all(
    session: &Session,
    planned: &[Planned],
    needed: &[(usize, Value)],
    summary: &mut PushSummary,
) -> Result<Sent, SyncError> {
    let mut sent = Sent::default();
    if needed.is_empty() {
        return Ok(sent);
    }
    let total = needed.iter().map(|(i, _)| planned[*i].hash.size).sum();
    let phase = session.progress.phase("uploading", total, needed.len() as u64);
    let ctx = Ctx { session, phase: phase.clone(), permits: Arc::new(Semaphore::new(session.concurrency)) };
    let mut results = futures_util::stream::iter(needed)
        .map(|(index, entry)| {
            let ctx = &ctx;
            async move { (*index, send_one(ctx, &planned[*index], entry).await) }
        })
        .buffer_unordered(session.concurrency);
    while let Some((index, result)) = results.next().await {
        let p = &planned[index];
        phase.file_done();
        match result {
            Ok(Outcome::Sent(bytes)) => {
                summary.files_uploaded += 1;
                summary.bytes_sent += bytes;
                sent.uploaded.insert(p.hash.key());
                session.progress.line(format!("uploaded {} ({})", p.file.rel, indicatif::HumanBytes(p.hash.size)));
            }
            Ok(Outcome::AlreadyHeld) => {}
            // the key or the server is gone: every other file would fail the same way
            Err(TransferError::Api(e)) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                if e.is_transient() {
                    sent.transient.insert(p.hash.key());
                }
                sent.failed.insert(p.hash.key(), reason(&e));
            }
        }
    }
    drop(results);
    phase.finish();
    Ok(sent)
}

/// A failed transfer, said for a person.
fn reason(e: &TransferError) -> String {
    match e {
        TransferError::Local(why) => why.clone(),
        TransferError::Api(e) if e.is(ErrorCode::HashMismatch) => {
            "the file changed while it was being sent; run again".into()
        }
        TransferError::Api(e) if e.is(ErrorCode::NoSuchUpload) => {
            "the server dropped this upload (expired or aborted); run again".into()
        }
        TransferError::Api(e) => e.to_string(),
    }
}

async fn send_one(ctx: &Ctx<'_>, p: &Planned, entry: &Value) -> Result<Outcome, TransferError> {
    let meta =
        tokio::fs::metadata(&p.file.abs).await.map_err(|e| TransferError::Local(format!("cannot read it: {e}")))?;
    if Stamp::of(&meta).ok() != Some(p.file.stamp()) {
        return Err(TransferError::Local("it changed since it was hashed; run again".into()));
    }
    if p.hash.parts.is_empty() { single_put(ctx, p, entry).await } else { multipart(ctx, p).await }
}

async fn single_put(ctx: &Ctx<'_>, p: &Planned, entry: &Value) -> Result<Outcome, TransferError> {
    let opts = &entry["signed_opts"];
    let url = opts["url"].as_str().ok_or_else(|| TransferError::Local("the server gave no upload URL".into()))?;
    let method = Method::from_bytes(opts["method"].as_str().unwrap_or("PUT").as_bytes())
        .map_err(|_| TransferError::Local("the server gave a bad upload method".into()))?;
    let headers: Vec<(String, String)> = opts["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    let size = p.hash.size;
    let answer: Value = {
        let _permit = ctx.permits.acquire().await.expect("never closed");
        let response = with_retries(|| put_range(ctx, method.clone(), url, &headers, p, (0, size), None)).await?;
        let bytes = response.bytes().await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    // Ferry's own upload host verified and recorded the bytes (its answer names the file
    // hash); a PUT straight to a bucket must be registered
    if answer["file_hash"].as_str() != Some(p.hash.file_hash.as_str()) {
        let body = json!({"s3_bucket_id": entry["s3_bucket_id"], "file_hash": p.hash.file_hash, "file_size": size});
        ctx.session.api.call("s3_object", body).await?;
    }
    Ok(Outcome::Sent(size))
}

async fn multipart(ctx: &Ctx<'_>, p: &Planned) -> Result<Outcome, TransferError> {
    let hash = &p.hash;
    let plan: Vec<Value> = (1..=hash.parts.len() as u32)
        .zip(&hash.parts)
        .map(|(num, digest)| json!({"part_num": num, "part_size": hash.part_range(num).1, "part_hash": digest}))
        .collect();
    let api = &ctx.session.api;
    let start = json!({"file_size": hash.size, "file_hash": hash.file_hash, "part_list": plan});
    let started = match api.call("multipart", start).await {
        Ok(started) => started,
        Err(e) if e.body().is_some_and(|b| b["skip_upload"] == true) => return Ok(Outcome::AlreadyHeld),
        Err(e) => return Err(e.into()),
    };
    let protocol = |why: &str| TransferError::Local(format!("the server's multipart answer {why}"));
    let upload_id = started["upload_id"].as_str().ok_or_else(|| protocol("has no upload_id"))?.to_owned();
    let list = started["signed_url_list"].as_array().ok_or_else(|| protocol("has no signed_url_list"))?;
    let mut etags: Vec<Option<String>> = vec![None; hash.parts.len()];
    let mut todo = Vec::new();
    for entry in list {
        let num = entry["part_num"]
            .as_u64()
            .filter(|n| (1..=etags.len() as u64).contains(n))
            .ok_or_else(|| protocol("names a part outside the plan"))? as u32;
        match (entry["received"].as_bool(), entry["etag"].as_str()) {
            (Some(true), Some(etag)) => etags[num as usize - 1] = Some(etag.to_owned()),
            _ => {
                todo.push((num, entry["url"].as_str().ok_or_else(|| protocol("has a part without a url"))?.to_owned()))
            }
        }
    }
    let held = etags.iter().flatten().count();
    let resumed: u64 =
        (1..=etags.len() as u32).filter(|n| etags[*n as usize - 1].is_some()).map(|n| hash.part_range(n).1).sum();
    if held > 0 {
        ctx.session.progress.line(format!(
            "resuming {}: {held} of {} parts already on the server",
            p.file.rel,
            etags.len()
        ));
        ctx.phase.skip_bytes(resumed);
    }
    let bar = ctx.session.progress.file_bar(&p.file.rel, hash.size, resumed);
    let sent = match send_parts(ctx, p, todo, &bar, &mut etags).await {
        Ok(sent) => sent,
        Err(e) => {
            bar.finish_and_clear();
            return Err(e);
        }
    };
    // the server now reads the parts once more to assemble and verify the file
    bar.set_prefix("completing");
    let part_list: Vec<Value> = etags
        .iter()
        .zip(1..)
        .map(|(etag, num): (&Option<String>, u32)| json!({"part_num": num, "etag": etag}))
        .collect();
    let complete = json!({"file_size": hash.size, "file_hash": hash.file_hash, "s3_bucket_id": started["s3_bucket_id"],
                          "upload_id": upload_id, "part_list": part_list});
    // the server reads the whole file once more before it answers: allowed the stall timeout
    // and a second per 16 MiB (a slow disk or an S3 server assembling it)
    let allowed = api.stall() + Duration::from_secs(hash.size.div_ceil(16 << 20));
    let completed = api.call_allowing("multipart_complete", complete, allowed).await;
    bar.finish_and_clear();
    completed?;
    Ok(Outcome::Sent(sent))
}

/// PUTs the parts in `todo` in parallel (within the run's limit); returns the bytes sent.
async fn send_parts(
    ctx: &Ctx<'_>,
    p: &Planned,
    todo: Vec<(u32, String)>,
    bar: &ProgressBar,
    etags: &mut [Option<String>],
) -> Result<u64, TransferError> {
    let mut parts = futures_util::stream::iter(todo)
        .map(|(num, url)| async move {
            let _permit = ctx.permits.acquire().await.expect("never closed");
            let range = p.hash.part_range(num);
            let response = with_retries(|| put_range(ctx, Method::PUT, &url, &[], p, range, Some(bar))).await?;
            let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let etag = etag.ok_or_else(|| TransferError::Local(format!("part {num} was answered without an ETag")))?;
            Ok::<_, TransferError>((num, etag, range.1))
        })
        .buffer_unordered(ctx.session.concurrency);
    let mut sent = 0;
    while let Some(part) = parts.next().await {
        let (num, etag, len) = part?;
        etags[num as usize - 1] = Some(etag);
        sent += len;
    }
    Ok(sent)
}

/// One PUT of `(offset, len)` of the file, streamed from disk; a non-2xx answer is an error.
async fn put_range(
    ctx: &Ctx<'_>,
    method: Method,
    url: &str,
    headers: &[(String, String)],
    p: &Planned,
    (offset, len): (u64, u64),
    bar: Option<&ProgressBar>,
) -> Result<reqwest::Response, TransferError> {
    let local = |e: std::io::Error| TransferError::Local(format!("cannot read it: {e}"));
    let mut file = tokio::fs::File::open(&p.file.abs).await.map_err(local)?;
    file.seek(SeekFrom::Start(offset)).await.map_err(local)?;
    let (phase, bar) = (ctx.phase.clone(), bar.cloned());
    let moved = Arc::new(AtomicU64::new(0));
    let counted = moved.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024).inspect_ok(move |chunk| {
        counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        phase.add_bytes(chunk.len() as u64);
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    });
    let mut request = ctx.session.api.http().request(method, url).header(reqwest::header::CONTENT_LENGTH, len);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let api = &ctx.session.api;
    let sent = unless_stalled(api.stall(), &moved, request.body(reqwest::Body::wrap_stream(stream)).send()).await;
    let unreachable = |reason| TransferError::Api(ApiError::Unreachable { url: origin_of(url), reason });
    let response =
        sent.ok_or_else(|| unreachable(stalled_for(api.stall())))?.map_err(|e| unreachable(error_chain(&e)))?;
    if response.status().is_success() { Ok(response) } else { Err(refused_by(response).await.into()) }
}
