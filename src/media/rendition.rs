//! The `transcode` job's handler: a playable rendition of content a browser cannot show,
//! made once per content and stored as a blob beside it (`blob_renditions`).
//!
//! Each arrival of a video or HEIF photo queues the job (`Ingest`), unless the upload waived
//! it (a session with `no_transcode`); one unfinished job per content. The job decides from
//! the facts media processing recorded (or, before they are there, from the file itself)
//! whether anything is needed under `FERRY_TRANSCODE`, then runs ffmpeg or heif-convert in a
//! private work folder and stores the result through the pipeline, so a crash mid-way
//! leaves no rendition and the job runs again once its lease passes. A file the tools cannot
//! read fails its job with their reason, recorded; the original is never touched.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::transcode::{Plan, plan};
use super::work::{Failure, WorkDir};
use super::{Class, Metadata, ToolError, Tools, heif_to_jpeg, probe_video, transcode_video};
use crate::blob_store::BlobStore;
use crate::catalog::{
    BlobRecord, Blobs, Catalog, CatalogError, Job, JobOutcome, MediaResults, MediaStatus, NewRendition,
};
use crate::config::{Config, TranscodePolicy};
use crate::domain::Sha256Hex;
use crate::ingest::{Expectation, Ingest};
use crate::jobs::JobHandler;

/// Runs `transcode` jobs.
pub struct RenditionMaker {
    blobs: Arc<dyn Blobs>,
    results: Arc<dyn MediaResults>,
    store: Arc<dyn BlobStore>,
    /// Renditions are stored through the pipeline like any other content.
    ingest: Ingest,
    config: Arc<Config>,
}

impl RenditionMaker {
    pub fn new(catalog: Arc<dyn Catalog>, store: Arc<dyn BlobStore>, ingest: Ingest, config: Arc<Config>) -> Self {
        Self { blobs: catalog.clone(), results: catalog, store, ingest, config }
    }
}

#[async_trait]
impl JobHandler for RenditionMaker {
    async fn run(&self, job: &Job) -> JobOutcome {
        let Some(sha256) = job.payload["sha256"].as_str().and_then(|h| Sha256Hex::parse(h).ok()) else {
            return JobOutcome::Failed { error: "bad job payload".into() };
        };
        match make(self, &sha256).await {
            Ok(Made::Rendition | Made::Nothing) | Err(Failure::Gone) => JobOutcome::Done,
            // nothing recorded: once the tool is installed, the job can run again
            Ok(Made::Unavailable(why)) => JobOutcome::Failed { error: why },
            Err(Failure::Transient(error)) => {
                JobOutcome::Retry { error, after: Duration::from_secs(2u64.pow(job.attempts.clamp(0, 8) as u32)) }
            }
            Err(Failure::Broken { reason, .. }) => {
                tracing::info!(blob = %sha256, reason, "no rendition");
                let failed = NewRendition {
                    sha256,
                    status: MediaStatus::Failed,
                    content_type: None,
                    error: Some(reason.clone()),
                };
                match self.results.record_rendition(&failed, None).await {
                    Ok(()) | Err(CatalogError::NotFound(_)) => JobOutcome::Failed { error: reason },
                    Err(e) => JobOutcome::Retry { error: e.to_string(), after: Duration::from_secs(5) },
                }
            }
        }
    }
}

enum Made {
    Rendition,
    /// None needed (playable already, not media, renditions off) or made already.
    Nothing,
    /// A tool it needs is not installed.
    Unavailable(String),
}

async fn make(maker: &RenditionMaker, sha256: &Sha256Hex) -> Result<Made, Failure> {
    let (config, blobs, results) = (&maker.config.transcode, maker.blobs.as_ref(), maker.results.as_ref());
    if config.policy == TranscodePolicy::Off {
        return Ok(Made::Nothing);
    }
    let Some(blob) = blobs.blob(sha256).await? else { return Err(Failure::Gone) };
    if results.rendition_result(sha256).await?.is_some_and(|r| r.status == MediaStatus::Done) {
        return Ok(Made::Nothing);
    }
    let (facts, probed) = facts(maker, &blob).await?;
    let Some(wanted) = plan(&facts, config.policy, config.max_dimension) else {
        return Ok(Made::Nothing);
    };
    let tools = Tools::detect().await;
    let work = WorkDir::new(&maker.config).await?;
    let broken = |why: String| Failure::Broken { reason: why, meta: Box::default() };
    let output = match wanted {
        Plan::Photo if !tools.heif_convert => {
            return Ok(Made::Unavailable(
                "heif-convert is not installed (Debian: libheif-examples): no preview".into(),
            ));
        }
        Plan::Photo => {
            let input = work.spool(maker.store.as_ref(), &blob, "photo.heic").await?;
            let made = heif_to_jpeg(tools, &input, &work.path("preview.jpg"), maker.config.media_timeout).await;
            made.map_err(|e| tool_failure(e, broken))?
        }
        Plan::Video { .. } if !(tools.ffmpeg && tools.ffprobe) => {
            let why = "ffmpeg is not installed: no rendition (the original stays downloadable as it is)";
            return Ok(Made::Unavailable(why.into()));
        }
        Plan::Video { .. } => {
            let input = work.spool(maker.store.as_ref(), &blob, "video").await?;
            // the streams decide what is copied: probe them unless media processing has
            let wanted = if probed {
                wanted
            } else {
                let mut fresh = Metadata { kind: "video".into(), format: facts.format, ..Metadata::default() };
                let probe = probe_video(&input, maker.config.media_timeout, &mut fresh).await;
                probe.map_err(|e| tool_failure(e, broken))?;
                let Some(wanted) = plan(&fresh, config.policy, config.max_dimension) else { return Ok(Made::Nothing) };
                wanted
            };
            let output = work.path("rendition.mp4");
            let made = transcode_video(tools, &input, &output, wanted, config.max_dimension, config.timeout).await;
            made.map_err(|e| match e {
                ToolError::TimedOut(why) => broken(format!("{why} (FERRY_TRANSCODE_TIMEOUT)")),
                ToolError::Failed(why) => broken(why),
            })?;
            output
        }
    };
    store(maker, sha256, &output, wanted.content_type()).await?;
    Ok(Made::Rendition)
}

/// A tool that ran out of time may have met a busy machine (retried); one that refused the
/// file will refuse it again.
fn tool_failure(e: ToolError, broken: impl Fn(String) -> Failure) -> Failure {
    match e {
        ToolError::TimedOut(why) => Failure::Transient(why),
        ToolError::Failed(why) => broken(why),
    }
}

/// What the blob is: the facts media processing recorded (`true`: a video's streams were
/// probed), else what its first bytes say (`false`).
async fn facts(maker: &RenditionMaker, blob: &BlobRecord) -> Result<(Metadata, bool), Failure> {
    let recorded = maker.results.media_info(std::slice::from_ref(&blob.sha256)).await?.pop();
    let recorded: Option<Metadata> = recorded.and_then(|i| i.metadata).and_then(|m| serde_json::from_value(m).ok());
    // a video's facts from before pixel formats were recorded (or from a failed probe) cannot
    // tell a playable file: the file's own probe will
    if let Some(meta) = recorded.filter(|m| m.kind != "video" || m.pixel_format.is_some()) {
        return Ok((meta, true));
    }
    let head = super::work::read_prefix(maker.store.as_ref(), blob, 8 * 1024).await?;
    let format = super::sniff(&head, None).content_type.rsplit('/').next().map(str::to_owned);
    let kind = match Class::of(&head) {
        Class::Video(_) => "video",
        Class::Decodable(_) | Class::OtherImage(_) => "image",
        Class::Other => "other",
    };
    Ok((Metadata { kind: kind.into(), format, ..Metadata::default() }, false))
}

/// Stores the rendition file through the pipeline's staging and records it with its source
/// in one catalog step.
async fn store(
    maker: &RenditionMaker,
    sha256: &Sha256Hex,
    output: &std::path::Path,
    content_type: &str,
) -> Result<(), Failure> {
    let transient = |e: &dyn std::fmt::Display| Failure::Transient(format!("storing the rendition of {sha256}: {e}"));
    let file = tokio::fs::File::open(output).await.map_err(|e| transient(&e))?;
    let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let received = maker.ingest.receive(Box::pin(body), &Expectation::default()).await.map_err(|e| transient(&e))?;
    let mut result = NewRendition {
        sha256: sha256.clone(),
        status: MediaStatus::Done,
        content_type: Some(content_type.into()),
        error: None,
    };
    if &received.blob.sha256 == sha256 {
        // the rendition came out as the file itself: it plays as it is (no row pointing at itself)
        result.error = Some("the file plays as it is".into());
        return Ok(maker.results.record_rendition(&result, None).await?);
    }
    let (step, placed) = maker.ingest.placement(&received);
    maker.results.record_rendition(&result, Some((received.blob.clone(), step))).await?;
    maker.ingest.settle(received, &placed);
    Ok(())
}
