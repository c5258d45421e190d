//! The S3-compatible blob store (AWS S3, MinIO, Garage, Ceph, s3s-fs…), through `object_store`.
//!
//! Layout in the bucket, under the configured key prefix:
//! - `sha256/<aa>/<bb>/<hash>`: committed blobs, as on local disk;
//! - `staging/requests/<ULID>`: request staging, written as a streaming multipart upload
//!   (a small body is one PUT), so memory stays bounded whatever the size;
//! - `staging/uploads/<ULID>`: parts of multipart uploads, objects assembled by S3 in direct
//!   mode, and resumable uploads (an S3 multipart upload of that key, plus a tail object
//!   `staging/uploads/<ULID>-tail-<ULID>` for bytes that do not fill a part yet; see
//!   `s3_resumable`);
//! - `staging/direct/<user>/<file_hash>-<size>`: single PUTs of direct mode (see `direct`).
//!
//! Commit is a server-side copy to the content address (bytes never travel through Ferry
//! again) followed by deleting the staging object; when the content address already holds
//! the blob, the staged copy is simply dropped (dedup). An S3 object is visible only once
//! its PUT, copy or multipart completion is done, so no reader ever sees part of a blob.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

pub(super) use super::s3_connect::io;
use super::s3_connect::{presigner, s3_client};
use super::s3_writer::S3Writer;
use super::*;
use crate::config::S3Config;

/// Bytes buffered before a staging write becomes a multipart upload, and the size of each
/// part: ≥ 5 MiB (S3's minimum) and large enough that 10,000 parts hold 80 GB.
pub(super) const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight per staging write; with the buffer, at most ~3 parts of memory.
const PARTS_IN_FLIGHT: usize = 2;
/// CopyObject's limit; larger blobs are copied by streaming them through a new upload.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

pub struct S3Store {
    pub(super) s3: Arc<AmazonS3>,
    /// Empty, or ends with `/`.
    pub(super) prefix: String,
    /// For messages.
    bucket: String,
    /// Presigns direct-mode PUTs (bound to their length); `None` without static credentials.
    pub(super) sigv4: Option<super::sigv4::SigV4>,
    pub(super) direct: bool,
    pub(super) http: reqwest::Client,
    /// Request staging younger than this survives `clean_request_staging`: other replicas
    /// share the bucket and may be streaming into it right now.
    request_staging_min_age: Duration,
    /// Largest staged object committed by one server-side copy.
    pub(super) max_single_copy: u64,
    /// Direct-mode PUTs never registered are removed after this (longer than a signed URL lives).
    direct_staging_max_age: Duration,
}

/// What a bad staging key is called in errors.
fn bad_key(key: &str) -> StoreError {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad staging key {key}")).into()
}

impl S3Store {
    /// Connects (lazily: the first request reaches the server) to the configured bucket.
    pub fn open(config: &S3Config) -> Result<Self, StoreError> {
        Ok(Self {
            s3: Arc::new(s3_client(config)?),
            prefix: config.prefix.clone(),
            bucket: config.bucket.clone(),
            sigv4: presigner(config),
            direct: config.direct,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(std::io::Error::other)?,
            request_staging_min_age: Duration::from_secs(3600),
            max_single_copy: MAX_SINGLE_COPY,
            direct_staging_max_age: Duration::from_secs(2 * 86_400),
        })
    }

    /// How old request staging must be before a start-up sweep removes it (tests use zero).
    pub fn with_request_staging_min_age(mut self, age: Duration) -> Self {
        self.request_staging_min_age = age;
        self
    }

    /// Commits objects over `bytes` by streaming them through a new upload, as blobs over
    /// CopyObject's 5 GiB limit are (tests lower it so the path runs on small objects).
    pub fn with_max_single_copy(mut self, bytes: u64) -> Self {
        self.max_single_copy = bytes;
        self
    }

    fn identity_path(&self) -> Path {
        Path::from(format!("{}ferry-store-id", self.prefix))
    }

    fn blob_path(&self, sha256: &Sha256Hex) -> Path {
        let h = sha256.as_str();
        Path::from(format!("{}sha256/{}/{}/{h}", self.prefix, &h[0..2], &h[2..4]))
    }

    /// Keys are made by `stage`, the resumable staging or the direct-mode helpers; anything
    /// else is refused so no key can name an object outside staging.
    pub(super) fn staged_path(&self, key: &str) -> Result<Path, StoreError> {
        let is_ulid = |s: &str| s.parse::<ulid::Ulid>().is_ok();
        let valid = match key.split('/').collect::<Vec<_>>()[..] {
            ["requests", name] => is_ulid(name),
            // or a resumable object's tail: `<its ULID>-tail-<ULID>`
            ["uploads", name] => {
                is_ulid(name)
                    || name.split_once("-tail-").is_some_and(|(object, tail)| is_ulid(object) && is_ulid(tail))
            }
            ["direct", user, name] => {
                user.bytes().all(|b| b.is_ascii_digit())
                    && name.split_once('-').is_some_and(|(hash, size)| {
                        Sha256Hex::parse(hash).is_ok() && !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit())
                    })
            }
            _ => false,
        };
        if !valid {
            return Err(bad_key(key));
        }
        Ok(Path::from(format!("{}staging/{key}", self.prefix)))
    }

    pub(super) async fn remove(&self, path: &Path) -> Result<(), StoreError> {
        match self.s3.delete(path).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes the objects under `staging/<area>/` last modified before `older_than` ago.
    async fn sweep(&self, area: &str, older_than: Duration) -> Result<usize, StoreError> {
        let prefix = Path::from(format!("{}staging/{area}", self.prefix));
        let now = SystemTime::now();
        let old: Vec<Path> = self
            .s3
            .list(Some(&prefix))
            .try_filter(|meta| {
                let age = now.duration_since(meta.last_modified.into()).unwrap_or_default();
                std::future::ready(age >= older_than)
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(io)?;
        for path in &old {
            self.remove(path).await?;
        }
        Ok(old.len())
    }

    /// Copies a large object by streaming it into a new multipart upload (CopyObject stops
    /// at 5 GiB); the target appears only when the upload completes.
    pub(super) async fn stream_copy(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        let mut source = self.s3.get(from).await.map_err(io)?.into_stream();
        let target: Arc<dyn ObjectStore> = self.s3.clone();
        let mut writer = BufWriter::with_capacity(target, to.clone(), PART_BYTES).with_max_concurrency(PARTS_IN_FLIGHT);
        while let Some(piece) = source.next().await {
            let piece = match piece {
                Ok(piece) => piece,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io(e));
                }
            };
            if let Err(e) = writer.put(piece).await {
                let _ = writer.abort().await;
                return Err(io(e));
            }
        }
        Ok(writer.shutdown().await?)
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn stage(&self, area: StagingArea) -> Result<Box<dyn StagingWriter>, StoreError> {
        let key = match area {
            StagingArea::Request => format!("requests/{}", ulid::Ulid::new()),
            StagingArea::Upload => format!("uploads/{}", ulid::Ulid::new()),
        };
        let target: Arc<dyn ObjectStore> = self.s3.clone();
        let writer =
            BufWriter::with_capacity(target, self.staged_path(&key)?, PART_BYTES).with_max_concurrency(PARTS_IN_FLIGHT);
        Ok(Box::new(S3Writer { key, writer: Some(writer), written: 0 }))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<ByteStream, StoreError> {
        let result = self.s3.get(&self.staged_path(&staged.key)?).await.map_err(io)?;
        Ok(result.into_stream().map_err(std::io::Error::from).boxed())
    }

    async fn commit(&self, staged: &Staged, sha256: &Sha256Hex) -> Result<Placed, StoreError> {
        let from = self.staged_path(&staged.key)?;
        let to = self.blob_path(sha256);
        // Content-addressed: an object already at `to` holds these very bytes.
        let placed = match self.s3.head(&to).await {
            Ok(_) => Placed::AlreadyPresent,
            Err(object_store::Error::NotFound { .. }) => {
                if staged.size > self.max_single_copy {
                    self.stream_copy(&from, &to).await?;
                } else {
                    self.s3.copy(&from, &to).await.map_err(io)?;
                }
                Placed::Stored
            }
            Err(e) => return Err(io(e)),
        };
        self.remove(&from).await?;
        Ok(placed)
    }

    async fn discard(&self, staged: &Staged) -> Result<(), StoreError> {
        self.remove(&self.staged_path(&staged.key)?).await
    }

    async fn start_resumable(&self) -> Result<Resumable, StoreError> {
        // nothing is written until bytes come: the multipart upload starts with the first part
        Ok(Resumable { key: format!("uploads/{}", ulid::Ulid::new()), size: 0, state: String::new() })
    }

    async fn append_resumable(&self, resumable: &Resumable) -> Result<Box<dyn ResumableWriter>, StoreError> {
        self.append_parts(resumable).await
    }

    async fn prune_resumable(&self, superseded: &Resumable, current: &Resumable) -> Result<(), StoreError> {
        self.prune_tail(superseded, current).await
    }

    async fn finish_resumable(&self, resumable: &Resumable) -> Result<Staged, StoreError> {
        self.finish_parts(resumable).await
    }

    async fn discard_resumable(&self, resumable: &Resumable) -> Result<(), StoreError> {
        self.discard_parts(resumable).await
    }

    fn resumable_keys(&self, resumable: &Resumable) -> Vec<String> {
        super::s3_resumable::keys(resumable)
    }

    fn resumable_upload(&self, resumable: &Resumable) -> Option<String> {
        super::s3_resumable::upload_id(resumable)
    }

    async fn clean_request_staging(&self) -> Result<usize, StoreError> {
        let requests = self.sweep("requests", self.request_staging_min_age).await?;
        Ok(requests + self.sweep("direct", self.direct_staging_max_age).await?)
    }

    async fn sweep_staging(&self, unregistered_after: Duration) -> Result<usize, StoreError> {
        // a finished request staging object is committed (or discarded) at once
        let requests = self.sweep("requests", self.request_staging_min_age).await?;
        Ok(requests + self.sweep("direct", unregistered_after).await?)
    }

    async fn list_staging(&self) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let root = Path::from(format!("{}staging", self.prefix));
        let metas: Vec<object_store::ObjectMeta> = self.s3.list(Some(&root)).try_collect().await.map_err(io)?;
        let strip = format!("{}staging/", self.prefix);
        Ok(metas
            .into_iter()
            .filter_map(|m| Some((m.location.as_ref().strip_prefix(&strip)?.to_owned(), m.last_modified.into())))
            .collect())
    }

    async fn size_of(&self, sha256: &Sha256Hex) -> Result<Option<u64>, StoreError> {
        match self.s3.head(&self.blob_path(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn read(&self, sha256: &Sha256Hex, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let options =
            GetOptions { range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)), ..GetOptions::default() };
        match self.s3.get_opts(&self.blob_path(sha256), options).await {
            Ok(result) => Ok(result.into_stream().map_err(std::io::Error::from).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::Missing(sha256.clone())),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, sha256: &Sha256Hex) -> Result<(), StoreError> {
        self.remove(&self.blob_path(sha256)).await
    }

    async fn list(&self) -> Result<Vec<(Sha256Hex, SystemTime)>, StoreError> {
        let root = Path::from(format!("{}sha256", self.prefix));
        let metas: Vec<object_store::ObjectMeta> = self.s3.list(Some(&root)).try_collect().await.map_err(io)?;
        // anything that is not a hash-named object is not a blob
        Ok(metas
            .into_iter()
            .filter_map(|m| Some((Sha256Hex::parse(m.location.filename()?).ok()?, m.last_modified.into())))
            .collect())
    }

    async fn identity(&self) -> Result<Option<String>, StoreError> {
        match self.s3.get(&self.identity_path()).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(io)?;
                Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn bind_identity(&self, id: &str) -> Result<String, StoreError> {
        // a conditional create (If-None-Match: *): of replicas starting together, one wins
        let payload = object_store::PutPayload::from(id.as_bytes().to_vec());
        match self.s3.put_opts(&self.identity_path(), payload, object_store::PutMode::Create.into()).await {
            Ok(_) => Ok(id.to_owned()),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                self.identity().await?.ok_or_else(|| std::io::Error::other("the store identity vanished").into())
            }
            Err(e) => Err(io(e)),
        }
    }

    async fn has_blobs(&self) -> Result<bool, StoreError> {
        let root = Path::from(format!("{}sha256", self.prefix));
        Ok(self.s3.list(Some(&root)).try_next().await.map_err(io)?.is_some())
    }

    fn describe(&self) -> String {
        format!("the blob store in S3 bucket '{}' under '{}sha256/'", self.bucket, self.prefix)
    }

    fn direct(&self) -> Option<&dyn DirectUploads> {
        self.direct.then_some(self as &dyn DirectUploads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Store {
        let config = S3Config {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "us-east-1".into(),
            bucket: "b".into(),
            access_key_id: Some("k".into()),
            secret_access_key: Some(crate::config::Secret("s".into())),
            path_style: true,
            prefix: prefix.into(),
            direct: false,
        };
        S3Store::open(&config).unwrap()
    }

    #[test]
    fn staging_keys_stay_inside_staging() {
        let s = store("p/");
        let ulid = ulid::Ulid::new();
        assert_eq!(s.staged_path(&format!("requests/{ulid}")).unwrap().as_ref(), format!("p/staging/requests/{ulid}"));
        let hash = Sha256Hex::of(b"x");
        assert!(s.staged_path(&format!("direct/7/{hash}-12")).is_ok());
        assert!(s.staged_path(&format!("uploads/{ulid}-tail-{}", ulid::Ulid::new())).is_ok());
        assert!(s.staged_path(&format!("uploads/{ulid}-tail-../x")).is_err());
        for bad in ["requests/../x", "sha256/aa", "uploads/x", "direct/7/abc-1", "direct/x/{hash}-1", ""] {
            assert!(s.staged_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            s.blob_path(&hash).as_ref(),
            format!("p/sha256/{}/{}/{hash}", &hash.as_str()[..2], &hash.as_str()[2..4])
        );
    }
}
