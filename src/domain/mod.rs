//! Domain newtypes: every value that crosses a trust boundary is parsed into one of these
//! once, at the edge, and is valid from then on. No I/O here.

mod address;
mod content_hash;
mod error_code;
mod event_name;
mod file_id;
mod folder_key;
mod ids;
mod job_kind;
mod level;
mod media_path;
mod media_type;
mod name;
mod range;
mod scope;
mod upload_checksum;
mod upload_metadata;

pub use address::{Cidr, is_forbidden};
pub use content_hash::{
    ChunkHasher, SHA256_STATE_LEN, Sha256Hex, WHOLE_FILE_LIMIT, chunk_size_for, sha256_from_state, sha256_state,
};
pub use error_code::ErrorCode;
pub use event_name::EventName;
pub use file_id::FileId;
pub use folder_key::FolderKey;
pub use ids::{BlobSize, DeviceId, GrantId, MAX_BLOB_SIZE, TokenId, UserId, VolumeId, WebSessionId};
pub use job_kind::{JobKind, device_hash_job, media_job, transcode_job};
pub use level::Level;
pub use media_path::MediaPath;
pub use media_type::MediaType;
pub use name::Name;
pub use range::{ByteRange, RangeRequest};
pub use scope::{Scope, ScopeSet};
pub use upload_checksum::{ChecksumAlgorithm, ChecksumError, UploadChecksum};
pub use upload_metadata::{MAX_METADATA_BYTES, UploadMetadata};

/// Why a value failed to parse; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
