//! Where blob import (`POST /api/upload/blob`) reads objects that are already stored: the
//! `local` bucket (a directory, `import_dir`) and any S3 buckets named in `import_buckets`,
//! reached with the `s3_*` endpoint and credentials. Objects are only read, never moved:
//! Ferry streams each one through the ingest pipeline, which hashes and stores its own copy.

use std::collections::HashMap;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectStoreExt};

use crate::blob_store::{StoreError, s3_client};
use crate::config::Config;

/// The name API.md gives the local import directory.
pub const LOCAL_BUCKET: &str = "local";

/// One object being read: its name for the library, size when known, and its bytes.
pub struct SourceObject {
    pub title: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no bucket '{0}' is configured")]
    UnknownBucket(String),
    #[error("key must be a relative path inside the bucket")]
    InvalidKey,
    #[error("no object '{key}' in bucket {bucket}")]
    NoSuchObject { bucket: String, key: String },
    #[error("cannot read '{key}' from bucket {bucket}: {message}")]
    Unreadable { bucket: String, key: String, message: String },
}

pub struct ImportBuckets {
    local: PathBuf,
    s3: HashMap<String, Arc<AmazonS3>>,
}

impl ImportBuckets {
    /// Connects lazily: a bucket's server is first reached when an object is imported.
    pub fn open(config: &Config) -> Result<Self, StoreError> {
        let s3 = config
            .import_buckets
            .iter()
            .map(|bucket| Ok((bucket.bucket.clone(), Arc::new(s3_client(bucket)?))))
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { local: config.import_dir.clone(), s3 })
    }

    pub async fn open_object(&self, bucket: &str, key: &str) -> Result<SourceObject, ImportError> {
        if bucket == LOCAL_BUCKET {
            return self.open_local(key).await;
        }
        let s3 = self.s3.get(bucket).ok_or_else(|| ImportError::UnknownBucket(bucket.to_owned()))?;
        // `parse` would quietly drop a leading `/`; the local bucket refuses one, so does this
        let path = match ObjectPath::parse(key) {
            Ok(path) if !key.is_empty() && !key.starts_with('/') && key.len() <= 1024 => path,
            _ => return Err(ImportError::InvalidKey),
        };
        let object = s3.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                ImportError::NoSuchObject { bucket: bucket.to_owned(), key: key.to_owned() }
            }
            other => {
                ImportError::Unreadable { bucket: bucket.to_owned(), key: key.to_owned(), message: other.to_string() }
            }
        })?;
        let content_type = object.attributes.get(&Attribute::ContentType).map(|v| v.to_string());
        Ok(SourceObject {
            title: path.filename().unwrap_or(key).to_owned(),
            size: Some(object.meta.size),
            content_type,
            body: object.into_stream().map_err(std::io::Error::other).boxed(),
        })
    }

    async fn open_local(&self, key: &str) -> Result<SourceObject, ImportError> {
        let path = local_object_path(&self.local, key)?;
        let unreadable = |e: std::io::Error| ImportError::Unreadable {
            bucket: LOCAL_BUCKET.into(),
            key: key.to_owned(),
            message: e.to_string(),
        };
        let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
        Ok(SourceObject {
            title: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| key.to_owned()),
            size: Some(size),
            content_type: None,
            body: tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024).boxed(),
        })
    }
}

/// A key inside the import directory: relative, no `..`, no symlink escape.
fn local_object_path(root: &FsPath, key: &str) -> Result<PathBuf, ImportError> {
    let relative = FsPath::new(key);
    if key.is_empty() || key.contains('\0') || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ImportError::InvalidKey);
    }
    let missing = || {
        // the client hears the bucket and key; the server's log says where it looked
        tracing::info!(key, import_dir = %root.display(), "blob import: no such file in the import directory");
        ImportError::NoSuchObject {
            bucket: format!("{LOCAL_BUCKET} (the server's FERRY_IMPORT_DIR)"),
            key: key.to_owned(),
        }
    };
    let root = root.canonicalize().map_err(|_| missing())?;
    let path = root.join(relative).canonicalize().map_err(|_| missing())?;
    if !path.starts_with(&root) {
        return Err(ImportError::InvalidKey);
    }
    if !path.is_file() {
        return Err(missing());
    }
    Ok(path)
}
