//! The media job's handler: what a blob's bytes are (EXIF and other metadata, a thumbnail),
//! recorded once per blob in `blob_media`. `Catalog::commit_blob` queues it for every new
//! content, whichever family uploaded it; the upload's answer never waits for it.
//!
//! Failures are sorted: input that cannot be understood (truncated, lying about its type,
//! a decompression bomb, a decoder panic) fails the job at once with the reason, recorded
//! beside whatever metadata was read; trouble that may pass (store or catalog errors, a
//! tool running out of time on a busy machine) is retried with backoff. The blob and every
//! item referring to it are never touched.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use async_trait::async_trait;

use super::work::{Failure, WorkDir, off_thread, read_prefix};
use super::{
    Class, Limits, Metadata, Tools, decode_image, heif_to_jpeg, probe_video, read_exif, read_image, video_frame,
};
use crate::blob_store::BlobStore;
use crate::catalog::{
    BlobRecord, Blobs, Catalog, CatalogError, Job, JobOutcome, MediaResults, MediaStatus, NewMediaInfo,
};
use crate::config::Config;
use crate::domain::Sha256Hex;
use crate::ingest::{Expectation, Ingest};
use crate::jobs::JobHandler;

/// Runs `media_process` jobs.
pub struct MediaProcessor {
    blobs: Arc<dyn Blobs>,
    results: Arc<dyn MediaResults>,
    store: Arc<dyn BlobStore>,
    /// Thumbnails are stored through the pipeline like any other content.
    ingest: Ingest,
    config: Arc<Config>,
}

impl MediaProcessor {
    pub fn new(catalog: Arc<dyn Catalog>, store: Arc<dyn BlobStore>, ingest: Ingest, config: Arc<Config>) -> Self {
        Self { blobs: catalog.clone(), results: catalog, store, ingest, config }
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
            match processor.results.record_media(&info, None).await {
                Ok(()) | Err(CatalogError::NotFound(_)) => JobOutcome::Failed { error: reason },
                Err(e) => JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
            }
        }
    }
}

async fn process(processor: &MediaProcessor, sha256: &Sha256Hex) -> Result<Learnt, Failure> {
    let Some(blob) = processor.blobs.blob(sha256).await? else { return Err(Failure::Gone) };
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
            let tools = Tools::detect().await;
            if ext == "heif" && tools.heif_convert {
                return heif(processor, &blob, meta, tools).await;
            }
            let note = match ext {
                "heif" => "no thumbnail: heif-convert is not installed (Debian: libheif-examples)".into(),
                _ => format!("no thumbnail: no {ext} decoder on this server"),
            };
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
    let work = WorkDir::new(&processor.config).await?;
    let file = work.spool(processor.store.as_ref(), blob, "video").await?;
    let broken = |reason: String, meta: &Metadata| Failure::Broken { reason, meta: Box::new(meta.clone()) };
    if tools.ffprobe {
        match probe_video(&file, limit, &mut meta).await {
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
    let mut frame = video_frame(&file, at, side, limit).await;
    if matches!(frame, Ok(None)) && at > 0.0 {
        frame = video_frame(&file, 0.0, side, limit).await;
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

/// A HEIF photo's size and thumbnail, from the upright JPEG `heif-convert` makes of it.
async fn heif(
    processor: &MediaProcessor,
    blob: &BlobRecord,
    mut meta: Metadata,
    tools: Tools,
) -> Result<Learnt, Failure> {
    let work = WorkDir::new(&processor.config).await?;
    let input = work.spool(processor.store.as_ref(), blob, "photo.heic").await?;
    let broken = |reason: String, meta: &Metadata| Failure::Broken { reason, meta: Box::new(meta.clone()) };
    let jpeg = match heif_to_jpeg(tools, &input, &work.path("photo.jpg"), processor.config.media_timeout).await {
        Ok(jpeg) => jpeg,
        Err(super::ToolError::TimedOut(why)) => return Err(Failure::Transient(why)),
        Err(super::ToolError::Failed(why)) => return Err(broken(why, &meta)),
    };
    let bytes =
        tokio::fs::read(&jpeg).await.map_err(|e| Failure::Transient(format!("reading {}: {e}", jpeg.display())))?;
    let side = processor.config.thumbnail_size;
    let decoded = off_thread(move || decode_image(&bytes, image::ImageFormat::Jpeg, side, Limits::default()))
        .await
        .and_then(|d| d)
        .map_err(|why| broken(format!("heif-convert's image: {why}"), &meta))?;
    // the pixels are upright already: the stored EXIF orientation was applied by the decoder
    (meta.width, meta.height) = (Some(decoded.width), Some(decoded.height));
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
        return Ok(processor.results.record_media(&info, None).await?);
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
        return Ok(processor.results.record_media(&info, None).await?);
    }
    // placed like every other blob (the pipeline's one placement step), recorded with the result
    let (step, placed) = processor.ingest.placement(&received);
    processor.results.record_media(&info, Some((received.blob.clone(), step))).await?;
    processor.ingest.settle(received, &placed);
    Ok(())
}
