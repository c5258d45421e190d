//! Arrivals that may need a playable rendition queue its job (the `transcode` handler in
//! `media` decides and makes it).

use super::{Ingest, Received};

impl Ingest {
    /// Queues the rendition job of committed content that may need one. The upload is
    /// committed whatever happens here: a failure only costs the rendition, and is logged.
    pub(super) async fn queue_rendition(&self, received: &Received) {
        let kind = infer::get(&received.head);
        let media =
            kind.is_some_and(|k| k.matcher_type() == infer::MatcherType::Video || k.mime_type() == "image/heif");
        if !self.renditions || received.waive_rendition || !media {
            return;
        }
        let (kind, payload, key) = crate::domain::transcode_job(&received.blob.sha256);
        match self.catalog.enqueue_job_for(kind, &payload, Some(&key), None).await {
            Ok(_) => {
                // every idle worker looks (a media worker woken alone would not take it)
                if let Some(wake) = &self.wake {
                    wake.notify_waiters();
                    wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, blob = %received.blob.sha256, "could not queue a rendition"),
        }
    }
}
