//! Transfers in parts (multipart uploads of the presigned and device families, tus).

use serde::Serialize;

use crate::domain::{GrantId, Sha256Hex, UserId};

/// Which API family a transfer in parts belongs to (`uploads.family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadFamily {
    /// The device family's chunked multipart (API.md §1).
    Device,
    /// The presigned multipart family (API.md §2), including its single-PUT files.
    Multipart,
}

impl UploadFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadFamily::Device => "device",
            UploadFamily::Multipart => "multipart",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [UploadFamily::Device, UploadFamily::Multipart].into_iter().find(|f| f.as_str() == raw)
    }
}

/// A new transfer in parts.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub upload_id: String,
    pub family: UploadFamily,
    pub user_id: UserId,
    pub grant_id: Option<GrantId>,
    pub file_key: Option<String>,
    pub file_size: Option<u64>,
    pub file_hash: Option<Sha256Hex>,
    pub part_count: Option<u32>,
    pub content_type: Option<String>,
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub upload_id: String,
    pub family: UploadFamily,
    pub user_id: UserId,
    pub grant_id: Option<GrantId>,
    pub file_key: Option<String>,
    pub file_size: Option<u64>,
    pub file_hash: Option<Sha256Hex>,
    pub part_count: Option<u32>,
    pub content_type: Option<String>,
    pub completed: bool,
    /// The completion's answer, replayed when completion is repeated.
    pub result: Option<serde_json::Value>,
    /// The completed file's content.
    pub sha256: Option<Sha256Hex>,
    pub size: Option<u64>,
    pub expires_ms: i64,
}

/// What claiming an upload for completion found.
#[derive(Debug, Clone)]
pub enum CompletionClaim {
    /// This caller completes it; `token` ends the claim (release or complete).
    Claimed { upload: Upload, token: String },
    /// Another completion holds it; wait for its outcome.
    Busy(Upload),
    /// It is completed: its stored answer is the answer.
    Completed(Upload),
    /// It is gone (aborted or expired).
    Missing,
}

/// What claiming a one-time signed target found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetClaim {
    Claimed,
    Used,
    InFlight,
}

/// One received part, staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub part_num: u32,
    pub staging_key: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub etag: String,
}
