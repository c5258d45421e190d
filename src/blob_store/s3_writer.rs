//! A staging write to S3: a streaming multipart upload (one PUT for a small body), aborted
//! when dropped unfinished so no parts are left to cost storage.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::s3::io;
use super::s3_connect::io_of_writer;
use super::{Staged, StagingWriter, StoreError};

pub(super) struct S3Writer {
    pub(super) key: String,
    /// `None` once finished (or after a failed finish).
    pub(super) writer: Option<BufWriter>,
    pub(super) written: u64,
}

#[async_trait]
impl StagingWriter for S3Writer {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        let writer = self.writer.as_mut().ok_or_else(|| std::io::Error::other("staging upload already failed"))?;
        for piece in batch {
            self.written += piece.len() as u64;
            writer.put(piece).await.map_err(io)?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Staged, StoreError> {
        let mut writer = self.writer.take().ok_or_else(|| std::io::Error::other("staging upload already failed"))?;
        writer.shutdown().await.map_err(io_of_writer)?;
        Ok(Staged { key: std::mem::take(&mut self.key), size: self.written })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An unfinished multipart upload keeps its parts (and costs storage) until aborted;
        // Drop cannot wait, so the abort runs as a task of its own.
        if let (Some(mut writer), Ok(runtime)) = (self.writer.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}
