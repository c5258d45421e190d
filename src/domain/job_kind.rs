//! The kinds of background job. A kind is parsed at the edge (the catalog's `jobs.kind`
//! column, the admin CLI) and is a value everywhere else; each has a handler registered
//! where the application is assembled (`jobs::Handlers`).

use serde::{Deserialize, Serialize};

use super::Sha256Hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// What a blob's bytes are: metadata, a thumbnail (queued for every new content).
    MediaProcess,
    /// Fetching a remote URL into a library folder (`POST /api/upload/remote`).
    RemoteFetch,
    /// Fetching a harvested gallery event's file from its device's pull source.
    GalleryPull,
    /// A playable rendition of content a browser cannot show (queued by each arrival of a
    /// video or HEIF photo that did not waive it).
    Transcode,
    /// The device family's top-hash of content over 16 MiB that arrived through another
    /// family (API.md §5): one read of the blob, off the upload's path.
    DeviceHash,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::MediaProcess, JobKind::RemoteFetch, JobKind::GalleryPull, JobKind::Transcode, JobKind::DeviceHash];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::MediaProcess => "media_process",
            JobKind::RemoteFetch => "remote_fetch",
            JobKind::GalleryPull => "gallery_pull",
            JobKind::Transcode => "transcode",
            JobKind::DeviceHash => "device_hash",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The media job of new content: its kind, payload and key (at most one unfinished job per
/// content). The catalog queues it in the transaction that records new content, so every
/// new content is processed once whichever family brought it.
pub fn media_job(sha256: &Sha256Hex) -> (JobKind, serde_json::Value, String) {
    (JobKind::MediaProcess, serde_json::json!({ "sha256": sha256 }), format!("media:{sha256}"))
}

/// The job that computes the device top-hash of content recorded without one (at most one
/// unfinished job per content).
pub fn device_hash_job(sha256: &Sha256Hex) -> (JobKind, serde_json::Value, String) {
    (JobKind::DeviceHash, serde_json::json!({ "sha256": sha256 }), format!("device_hash:{sha256}"))
}

/// The rendition job of content: its kind, payload and key (at most one unfinished job per
/// content, however many arrivals queue it).
pub fn transcode_job(sha256: &Sha256Hex) -> (JobKind, serde_json::Value, String) {
    (JobKind::Transcode, serde_json::json!({ "sha256": sha256 }), format!("transcode:{sha256}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(JobKind::parse("thumb"), None);
    }
}
