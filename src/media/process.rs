//! The media job's handler: what a blob's bytes are (EXIF and other metadata, a thumbnail),
//! recorded once per blob in `blob_media`. `Catalog::commit_blob` queues it for every new
//! content, whichever family uploaded it; the upload's answer never waits for it.
//!
//! Failures are sorted: input that cannot be understood (truncated, lying about its type,
//! a decompression bomb, a decoder panic) fails the job at once with the reason, recorded
//! beside whatever metadata was read; trouble that may pass (store or catalog errors, a
//! tool running out of time on a busy machine) is retried with backoff. The blob and every
//! item referring to it are never touched.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Class, Limits, Metadata, Tools, Unreadable, decode_image, probe_video, read_exif, read_image, video_frame,
};
use crate::blob_store::BlobStore;
use crate::catalog::{BlobRecord, Catalog, CatalogError, Job, JobOutcome, MediaStatus, NewMediaInfo};
use crate::config::Config;
use crate::domain::{ByteRange, Sha256Hex};
use crate::ingest::{Expectation, Ingest};
use crate::jobs::JobHandler;

/// Runs `media_process` jobs.
pub struct MediaProcessor {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn BlobStore>,
    /// Thumbnails are stored through the pipeline like any other content.
    ingest: Ingest,
    config: Arc<Config>,
}

impl MediaProcessor {
    pub fn new(catalog: Arc<dyn Catalog>, store: Arc<dyn BlobStore>, ingest: Ingest, config: Arc<Config>) -> Self {
        Self { catalog, store, ingest, config }
    }
}

#[async_trait]
impl JobHandler for MediaProcessor {
    async fn run(&self, job: &Job) -> JobOutcome {
        run(self, job).await
    }
}

/// First bytes read to classify a file.
const HEAD: u64 = 8 * 1024;
/// Read for metadata alone (EXIF sits near the start of the containers that carry it).
const METADATA_READ: u64 = 16 << 20;

enum Failure {
    /// The blob is gone (collected meanwhile): nothing to do.
    Gone,
    /// The bytes cannot be understood; `meta` is what could be read anyway.
    Broken { reason: String, meta: Box<Metadata> },
    /// Worth another try later.
    Transient(String),
}

impl From<CatalogError> for Failure {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(_) => Failure::Gone,
            other => Failure::Transient(other.to_string()),
        }
    }
}

/// What processing learnt, to be recorded.
struct Learnt {
    meta: Metadata,
    thumbnail: Option<Vec<u8>>,
    /// Why there is no thumbnail, when there is none.
    note: Option<String>,
}

async fn run(processor: &MediaProcessor, job: &Job) -> JobOutcome {
    let Some(sha256) = job.payload["sha256"].as_str().and_then(|h| Sha256Hex::parse(h).ok()) else {
        return JobOutcome::Failed { error: "bad job payload".into() };
    };
    let failure = match process(processor, &sha256).await {
        Ok(learnt) => match record(processor, &sha256, learnt).await {
            Ok(()) => return JobOutcome::Done,
            Err(failure) => failure,
        },
        Err(failure) => failure,
    };
    match failure {
        Failure::Gone => JobOutcome::Done,
        Failure::Transient(error) => {
            JobOutcome::Retry { error, after: Duration::from_secs(2u64.pow(job.attempts.clamp(0, 8) as u32)) }
        }
        Failure::Broken { reason, meta } => {
            tracing::info!(blob = %sha256, reason, "media processing failed");
            let info = NewMediaInfo {
                sha256,
                status: MediaStatus::Failed,
                metadata: Some(serde_json::to_value(&meta).expect("metadata serialises")),
                error: Some(reason.clone()),
            };
            match processor.catalog.record_media(&info, None).await {
                Ok(()) | Err(CatalogError::NotFound(_)) => JobOutcome::Failed { error: reason },
                Err(e) => JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
            }
        }
    }
}

async fn process(processor: &MediaProcessor, sha256: &Sha256Hex) -> Result<Learnt, Failure> {
    let catalog = processor.catalog.as_ref();
    let Some(blob) = catalog.blob(sha256).await? else { return Err(Failure::Gone) };
    let head = read_prefix(processor.store.as_ref(), &blob, HEAD).await?;
    let class = Class::of(&head);
    let format = super::sniff(&head, None).content_type.rsplit('/').next().map(str::to_owned);
    let kind = match class {
        Class::Decodable(_) | Class::OtherImage(_) => "image",
        Class::Video(_) => "video",
        Class::Other => "other",
    };
    let meta = Metadata { kind: kind.into(), format, ..Metadata::default() };
    match class {
        Class::Decodable(format) => image(processor, &blob, format, meta).await,
        Class::OtherImage(ext) => {
            let bytes = read_prefix(processor.store.as_ref(), &blob, METADATA_READ).await?;
            let meta = off_thread(move || {
                let mut meta = meta;
                read_exif(&bytes, &mut meta);
                meta
            })
            .await
            .map_err(|reason| Failure::Broken { reason: reason.0, meta: Box::default() })?;
            let note = format!("no thumbnail: no {ext} decoder on this server");
            Ok(Learnt { meta, thumbnail: None, note: Some(note) })
        }
        Class::Video(_) => video(processor, &blob, meta).await,
        Class::Other => Ok(Learnt { meta, thumbnail: None, note: None }),
    }
}

async fn image(
    processor: &MediaProcessor,
    blob: &BlobRecord,
    format: image::ImageFormat,
    meta: Metadata,
) -> Result<Learnt, Failure> {
    let limit = processor.config.media_max_size;
    if blob.size > limit {
        // too large to decode here; what its EXIF says is still worth having
        let bytes = read_prefix(processor.store.as_ref(), blob, METADATA_READ).await?;
        let meta = off_thread(move || {
            let mut meta = meta;
            read_exif(&bytes, &mut meta);
            meta
        })
        .await
        .unwrap_or_default();
        let reason = format!("{} bytes is over media_max_size ({limit}): not decoded", blob.size);
        return Err(Failure::Broken { reason, meta: Box::new(meta) });
    }
    let bytes = read_prefix(processor.store.as_ref(), blob, blob.size).await?;
    let side = processor.config.thumbnail_size;
    let fallback = meta.clone();
    let worked = off_thread(move || read_image(&bytes, format, side, meta)).await;
    match worked {
        Ok((mut meta, Ok(decoded))) => {
            (meta.width, meta.height) = (Some(decoded.width), Some(decoded.height));
            Ok(Learnt { meta, thumbnail: Some(decoded.thumbnail.jpeg), note: None })
        }
        Ok((meta, Err(reason))) => Err(Failure::Broken { reason: reason.0, meta: Box::new(meta) }),
        Err(reason) => Err(Failure::Broken { reason: reason.0, meta: Box::new(fallback) }),
    }
}

async fn video(processor: &MediaProcessor, blob: &BlobRecord, mut meta: Metadata) -> Result<Learnt, Failure> {
    let tools = Tools::detect().await;
    if !tools.ffprobe && !tools.ffmpeg {
        return Ok(Learnt { meta, thumbnail: None, note: Some("no thumbnail: ffmpeg is not installed".into()) });
    }
    let limit = processor.config.media_timeout;
    let file = spool(processor, blob).await?;
    let broken = |reason: String, meta: &Metadata| Failure::Broken { reason, meta: Box::new(meta.clone()) };
    if tools.ffprobe {
        match probe_video(&file.0, limit, &mut meta).await {
            Ok(()) => {}
            Err(super::ToolError::TimedOut(why)) => return Err(Failure::Transient(why)),
            Err(super::ToolError::Failed(why)) => return Err(broken(why, &meta)),
        }
    }
    if !tools.ffmpeg {
        return Ok(Learnt { meta, thumbnail: None, note: Some("no thumbnail: ffmpeg is not installed".into()) });
    }
    let side = processor.config.thumbnail_size;
    // a frame a little way in (the first is often black), else the very first
    let at = meta.duration.map_or(0.0, |d| (d / 10.0).min(1.0));
    let mut frame = video_frame(&file.0, at, side, limit).await;
    if matches!(frame, Ok(None)) && at > 0.0 {
        frame = video_frame(&file.0, 0.0, side, limit).await;
    }
    let png = match frame {
        Ok(Some(png)) => png,
        Ok(None) => return Ok(Learnt { meta, thumbnail: None, note: Some("no thumbnail: no video frame".into()) }),
        Err(super::ToolError::TimedOut(why)) => return Err(Failure::Transient(why)),
        Err(super::ToolError::Failed(why)) => return Err(broken(why, &meta)),
    };
    let decoded = off_thread(move || decode_image(&png, image::ImageFormat::Png, side, Limits::default()))
        .await
        .and_then(|d| d)
        .map_err(|why| broken(format!("ffmpeg's frame: {why}"), &meta))?;
    Ok(Learnt { meta, thumbnail: Some(decoded.thumbnail.jpeg), note: None })
}

/// Stores the thumbnail (through the pipeline's staging) and the result in one catalog step.
async fn record(processor: &MediaProcessor, sha256: &Sha256Hex, learnt: Learnt) -> Result<(), Failure> {
    let mut info = NewMediaInfo {
        sha256: sha256.clone(),
        status: MediaStatus::Done,
        metadata: Some(serde_json::to_value(&learnt.meta).expect("metadata serialises")),
        error: learnt.note,
    };
    let Some(jpeg) = learnt.thumbnail else {
        return Ok(processor.catalog.record_media(&info, None).await?);
    };
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(jpeg)) });
    let received = processor
        .ingest
        .receive(Box::pin(body), &Expectation::default())
        .await
        .map_err(|e| Failure::Transient(e.to_string()))?;
    if &received.blob.sha256 == sha256 {
        // the file is its own thumbnail: a row pointing at itself would keep it forever (the
        // staged copy goes with `received`)
        info.error = Some("the file is small enough to be its own thumbnail".into());
        return Ok(processor.catalog.record_media(&info, None).await?);
    }
    // placed like every other blob (the pipeline's one placement step), recorded with the result
    let (step, placed) = processor.ingest.placement(&received);
    processor.catalog.record_media(&info, Some((received.blob.clone(), step))).await?;
    processor.ingest.settle(received, &placed);
    Ok(())
}

/// Runs CPU-heavy decoding on a blocking thread; a panic there becomes a reason.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Unreadable> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        if !e.is_panic() {
            return Unreadable(format!("decoding was cancelled: {e}"));
        }
        let panic = e.into_panic();
        let said = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Unreadable(format!("the decoder panicked: {said}"))
    })
}

/// The first `len` bytes of a blob (all of it when `len` ≥ its size).
async fn read_prefix(store: &dyn BlobStore, blob: &BlobRecord, len: u64) -> Result<Vec<u8>, Failure> {
    let len = len.min(blob.size);
    if len == 0 {
        return Ok(Vec::new());
    }
    let range = (len < blob.size).then_some(ByteRange { start: 0, end: len - 1 });
    let transient = |e: &dyn std::fmt::Display| Failure::Transient(format!("reading blob {}: {e}", blob.sha256));
    let mut stream = store.read(&blob.sha256, range).await.map_err(|e| transient(&e))?;
    let mut out = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.map_err(|e| transient(&e))?);
        if out.len() as u64 >= len {
            break;
        }
    }
    out.truncate(len as usize);
    Ok(out)
}

/// A temporary copy of a blob for the external tools, removed when dropped.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Copies a blob to `<data_dir>/media-work/` (tools need a seekable file: an MP4's index
/// may sit at its end). Copies left by a crash are removed after an hour.
async fn spool(processor: &MediaProcessor, blob: &BlobRecord) -> Result<Spooled, Failure> {
    let dir = processor.config.data_dir.join("media-work");
    let io = |e: std::io::Error| Failure::Transient(format!("spooling a video in {}: {e}", dir.display()));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let old =
                entry.metadata().await.ok().and_then(|m| m.modified().ok()).and_then(|t| {
                    SystemTime::now().duration_since(t).ok().filter(|age| *age > Duration::from_secs(3600))
                });
            if old.is_some() {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
    let spooled = Spooled(dir.join(format!("{}-{}", blob.sha256, ulid::Ulid::new())));
    let mut file = tokio::fs::File::create(&spooled.0).await.map_err(io)?;
    let mut stream = processor
        .store
        .read(&blob.sha256, None)
        .await
        .map_err(|e| Failure::Transient(format!("reading blob {}: {e}", blob.sha256)))?;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(io)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &piece).await.map_err(io)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(io)?;
    Ok(spooled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_decoder_is_a_reason_not_a_crash() {
        let err = off_thread(|| -> u32 { panic!("bad huffman table") }).await.unwrap_err();
        assert!(err.0.contains("panicked") && err.0.contains("bad huffman table"), "{err}");
        assert_eq!(off_thread(|| 7).await, Ok(7));
    }
}
