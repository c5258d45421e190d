//! Resumable staging on S3: the object `staging/uploads/<ULID>` is built as an S3 multipart
//! upload of that key, started with the first part. Bytes are gathered in memory until they
//! fill a part (8 MiB); when an append persists with less than S3's 5 MiB part minimum
//! gathered, those bytes go to a tail object of a new key (`<ULID>-tail-<ULID>`), which the
//! next append reads back first. The state kept by the caller lists the parts with their
//! ETags and names the tail; finishing uploads the tail as the last part and completes.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::s3::{PART_BYTES, S3Store, io};
use super::{Resumable, ResumableWriter, Staged, StoreError};

/// S3's smallest part (all but the last): an append that persists with at least this much
/// gathered sends it as a part, less goes to the tail.
const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// The store's half of a [`Resumable`] (its `state`, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The S3 multipart upload, once a part was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<String>,
    /// Parts 1..=N in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<SentPart>,
    /// The tail object's staging key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<String>,
    #[serde(default)]
    tail_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SentPart {
    etag: String,
    size: u64,
}

impl Progress {
    /// The state as recorded, whatever size the caller believes it has.
    fn parse(resumable: &Resumable) -> Result<Self, StoreError> {
        match resumable.state.as_str() {
            "" => Ok(Progress::default()),
            state => serde_json::from_str(state).map_err(|e| bad_state(&resumable.key, &e.to_string())),
        }
    }

    /// The state of an object about to be written to: it must add up to the size recorded.
    fn of(resumable: &Resumable) -> Result<Self, StoreError> {
        let progress = Self::parse(resumable)?;
        if progress.size() != resumable.size {
            return Err(bad_state(&resumable.key, "its parts and tail do not add up to its size"));
        }
        Ok(progress)
    }

    fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.tail_size
    }

    fn state(&self) -> String {
        serde_json::to_string(self).expect("a progress serialises")
    }
}

fn bad_state(key: &str, why: &str) -> StoreError {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("resumable staging {key}: {why}")).into()
}

/// The staging keys a resumable object uses: its own, and its tail's. Read from the state
/// alone: `admin check` knows an upload's state but not its size, and a live upload's tail
/// must never look like a leftover.
pub(super) fn keys(resumable: &Resumable) -> Vec<String> {
    let tail = Progress::parse(resumable).ok().and_then(|p| p.tail);
    std::iter::once(resumable.key.clone()).chain(tail).collect()
}

/// The S3 multipart upload a resumable object's state records.
pub(super) fn upload_id(resumable: &Resumable) -> Option<String> {
    Progress::parse(resumable).ok().and_then(|p| p.upload)
}

impl S3Store {
    pub(super) async fn append_parts(&self, resumable: &Resumable) -> Result<Box<dyn ResumableWriter>, StoreError> {
        let progress = Progress::of(resumable)?;
        let path = self.staged_path(&resumable.key)?;
        let mut buffer = Vec::new();
        if let Some(tail) = &progress.tail {
            let bytes = self.s3.get(&self.staged_path(tail)?).await.map_err(io)?.bytes().await.map_err(io)?;
            if bytes.len() as u64 != progress.tail_size {
                return Err(bad_state(&resumable.key, "its tail object changed"));
            }
            buffer.push(bytes);
        }
        Ok(Box::new(PartAppender {
            s3: self.s3.clone(),
            tails: TailKeys { prefix: self.prefix.clone(), object: resumable.key.clone() },
            path,
            buffered: progress.tail_size as usize,
            buffer,
            progress,
            dirty: false,
        }))
    }

    pub(super) async fn prune_tail(&self, superseded: &Resumable, current: &Resumable) -> Result<(), StoreError> {
        let (gone, kept) = (Progress::of(superseded)?, Progress::of(current)?);
        if let Some(tail) = gone.tail.filter(|t| kept.tail.as_ref() != Some(t)) {
            self.remove(&self.staged_path(&tail)?).await?;
        }
        // an append never recorded that started the multipart upload: nothing will use it
        if let Some(upload) = gone.upload.filter(|u| kept.upload.as_ref() != Some(u)) {
            self.abort_upload(&self.staged_path(&superseded.key)?, &upload).await?;
        }
        Ok(())
    }

    /// Aborts a multipart upload; one that is gone (aborted, or completed into its object) is
    /// not an error. S3 answers 404 for it; s3s-fs answers 403, as for an upload of another key.
    async fn abort_upload(&self, path: &Path, upload: &String) -> Result<(), StoreError> {
        match self.s3.abort_multipart(path, upload).await {
            Ok(()) | Err(object_store::Error::NotFound { .. } | object_store::Error::PermissionDenied { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    pub(super) async fn finish_parts(&self, resumable: &Resumable) -> Result<Staged, StoreError> {
        let staged = Staged { key: resumable.key.clone(), size: resumable.size };
        let path = self.staged_path(&resumable.key)?;
        // finished before (a caller that did not get to record it): the object is there
        match self.s3.head(&path).await {
            Ok(meta) if meta.size == resumable.size => return Ok(staged),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(io(e)),
        }
        let progress = Progress::of(resumable)?;
        let tail = progress.tail.as_deref().map(|key| self.staged_path(key)).transpose()?;
        match (&progress.upload, progress.parts.is_empty()) {
            (Some(upload), false) => {
                let mut ids: Vec<PartId> =
                    progress.parts.iter().map(|p| PartId { content_id: p.etag.clone() }).collect();
                if let Some(tail) = &tail {
                    // the last part may be smaller than 5 MiB
                    let bytes = self.s3.get(tail).await.map_err(io)?.bytes().await.map_err(io)?;
                    ids.push(self.s3.put_part(&path, upload, ids.len(), bytes.into()).await.map_err(io)?);
                }
                self.s3.complete_multipart(&path, upload, ids).await.map_err(io)?;
            }
            _ => match &tail {
                Some(tail) => self.s3.copy(tail, &path).await.map_err(io)?,
                None => {
                    self.s3.put(&path, PutPayload::default()).await.map_err(io)?;
                }
            },
        }
        let finished = self.s3.head(&path).await.map_err(io)?;
        if finished.size != resumable.size {
            return Err(bad_state(&resumable.key, &format!("finished with {} bytes", finished.size)));
        }
        if let Some(tail) = &tail {
            self.remove(tail).await?;
        }
        Ok(staged)
    }

    pub(super) async fn discard_parts(&self, resumable: &Resumable) -> Result<(), StoreError> {
        let path = self.staged_path(&resumable.key)?;
        // a state that cannot be read still names its object, which goes
        let progress = Progress::of(resumable).unwrap_or_default();
        if let Some(upload) = &progress.upload {
            self.abort_upload(&path, upload).await?;
        }
        if let Some(tail) = &progress.tail {
            self.remove(&self.staged_path(tail)?).await?;
        }
        self.remove(&path).await
    }
}

/// Names new tail objects of one resumable object.
struct TailKeys {
    prefix: String,
    object: String,
}

impl TailKeys {
    fn next(&self) -> (String, Path) {
        let key = format!("{}-tail-{}", self.object, ulid::Ulid::new());
        let path = Path::from(format!("{}staging/{key}", self.prefix));
        (key, path)
    }
}

struct PartAppender {
    s3: Arc<AmazonS3>,
    tails: TailKeys,
    path: Path,
    /// Bytes not in a part yet (the tail's first, when there was one).
    buffer: Vec<Bytes>,
    buffered: usize,
    /// What the parts sent and the last tail written hold.
    progress: Progress,
    /// Whether bytes came since the last persist.
    dirty: bool,
}

impl PartAppender {
    /// Sends everything gathered as the next part; the tail's bytes are in it now.
    async fn send_part(&mut self) -> Result<(), StoreError> {
        let upload = match &self.progress.upload {
            Some(upload) => upload.clone(),
            None => {
                let upload = self.s3.create_multipart(&self.path).await.map_err(io)?;
                self.progress.upload = Some(upload.clone());
                upload
            }
        };
        let payload: PutPayload = self.buffer.iter().cloned().collect();
        let number = self.progress.parts.len();
        let part = self.s3.put_part(&self.path, &upload, number, payload).await.map_err(io)?;
        self.progress.parts.push(SentPart { etag: part.content_id, size: self.buffered as u64 });
        self.buffer.clear();
        self.buffered = 0;
        self.progress.tail = None;
        self.progress.tail_size = 0;
        Ok(())
    }

    fn state(&self) -> Resumable {
        Resumable { key: self.tails.object.clone(), size: self.progress.size(), state: self.progress.state() }
    }
}

#[async_trait]
impl ResumableWriter for PartAppender {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        for piece in batch {
            self.buffered += piece.len();
            self.buffer.push(piece);
            self.dirty = true;
            if self.buffered >= PART_BYTES {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn persist(&mut self) -> Result<Resumable, StoreError> {
        if !self.dirty {
            return Ok(self.state());
        }
        if self.buffered >= MIN_PART_BYTES {
            self.send_part().await?;
        } else if self.buffered > 0 {
            // a new key: the tail a recorded state names stays as it is
            let (key, path) = self.tails.next();
            let payload: PutPayload = self.buffer.iter().cloned().collect();
            self.s3.put(&path, payload).await.map_err(io)?;
            self.progress.tail = Some(key);
            self.progress.tail_size = self.buffered as u64;
        }
        self.dirty = false;
        Ok(self.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_must_add_up_to_its_size() {
        let progress = Progress {
            upload: Some("u".into()),
            parts: vec![SentPart { etag: "\"e\"".into(), size: 6 }],
            tail: Some("uploads/x-tail-y".into()),
            tail_size: 2,
        };
        let resumable = Resumable { key: "uploads/x".into(), size: 8, state: progress.state() };
        assert_eq!(Progress::of(&resumable).unwrap(), progress);
        assert_eq!(keys(&resumable), vec!["uploads/x".to_owned(), "uploads/x-tail-y".to_owned()]);
        assert!(Progress::of(&Resumable { size: 9, ..resumable.clone() }).is_err());
        let size_unknown = Resumable { size: 0, ..resumable.clone() };
        assert_eq!(keys(&size_unknown), keys(&resumable), "the tail is named whatever the size");
        assert_eq!(upload_id(&size_unknown).as_deref(), Some("u"), "the recorded S3 upload, whatever the size");
        assert_eq!(Progress::of(&Resumable { key: "k".into(), size: 0, state: String::new() }).unwrap().size(), 0);
    }
}
