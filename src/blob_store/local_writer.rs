//! The staging file a body is written into (local store): written back to the disk as it
//! grows, made durable when finished, removed when dropped unfinished.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::group_sync::{GROUP_SYNC_MAX, GroupSync, Since};
use super::local::{blocking, write_and_hand_on};
use super::{Staged, StagingWriter, StoreError};

pub(super) struct LocalWriter {
    pub(super) key: String,
    /// Rounds to share, and where this file's writes began.
    pub(super) group: Option<(Arc<GroupSync>, Since)>,
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    pub(super) written: u64,
    /// Bytes before this offset have had their writeback started.
    pub(super) handed_to_disk: u64,
    pub(super) finished: bool,
}

#[async_trait]
impl StagingWriter for LocalWriter {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        let file = self.file.take().ok_or_else(|| std::io::Error::other("staging file already failed"))?;
        let len: usize = batch.iter().map(Bytes::len).sum();
        let (from, to) = (self.handed_to_disk, self.written + len as u64);
        let (file, start_writeback) = write_and_hand_on(file, batch, from, to).await?;
        self.file = Some(file);
        self.written = to;
        if start_writeback {
            self.handed_to_disk = to;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Staged, StoreError> {
        let file = self.file.take().ok_or_else(|| std::io::Error::other("staging file already failed"))?;
        match &self.group {
            // its bytes are durable once a round that started after their write has ended
            Some((group, since)) if self.written <= GROUP_SYNC_MAX => group.sync(*since).await?,
            _ => blocking(move || file.sync_all()).await?,
        }
        self.finished = true;
        Ok(Staged { key: std::mem::take(&mut self.key), size: self.written })
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
