//! Resumable staging on local disk: one append-only file `staging/uploads/<ULID>`. An append
//! opens it, cuts it back to the recorded size (bytes an unrecorded append left) and writes
//! on; `persist` fsyncs. The file stays where it is when finished: its key is already a
//! staging key, and commit renames it like any other.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};

use async_trait::async_trait;
use bytes::Bytes;

use super::local::{LocalStore, UPLOADS, blocking, sync_dir, write_and_hand_on};
use super::{Resumable, ResumableWriter, Staged, StoreError};

impl LocalStore {
    pub(super) async fn start_file(&self) -> Result<Resumable, StoreError> {
        let key = format!("{UPLOADS}/{}", ulid::Ulid::new());
        let path = self.staged_path(&Staged { key: key.clone(), size: 0 })?;
        blocking(move || {
            File::create_new(&path)?.sync_all()?;
            // the catalog will name this file: its directory entry must survive a crash too
            sync_dir(path.parent().expect("staging files have a parent"))
        })
        .await?;
        Ok(Resumable { key, size: 0, state: String::new() })
    }

    pub(super) async fn append_file(&self, resumable: &Resumable) -> Result<Box<dyn ResumableWriter>, StoreError> {
        let path = self.staged_path(&Staged { key: resumable.key.clone(), size: resumable.size })?;
        let size = resumable.size;
        let file = blocking(move || {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            let held = file.metadata()?.len();
            if held < size {
                return Err(std::io::Error::other(format!(
                    "the resumable staging file {} holds {held} bytes, fewer than the {size} recorded",
                    path.display()
                )));
            }
            file.set_len(size)?;
            file.seek(SeekFrom::Start(size))?;
            Ok(file)
        })
        .await?;
        Ok(Box::new(FileAppender {
            file: Some(file),
            start: resumable.clone(),
            written: 0,
            handed_to_disk: 0,
            persisted: 0,
        }))
    }

    pub(super) async fn finish_file(&self, resumable: &Resumable) -> Result<Staged, StoreError> {
        let staged = Staged { key: resumable.key.clone(), size: resumable.size };
        let path = self.staged_path(&staged)?;
        let size = resumable.size;
        blocking(move || {
            let file = OpenOptions::new().write(true).open(&path)?;
            if file.metadata()?.len() < size {
                return Err(std::io::Error::other(format!("{} lost bytes it had recorded", path.display())));
            }
            file.set_len(size)?;
            file.sync_all()
        })
        .await?;
        Ok(staged)
    }
}

struct FileAppender {
    /// `None` after a failed write.
    file: Option<File>,
    start: Resumable,
    written: u64,
    /// Bytes (since `start`) whose writeback has been started.
    handed_to_disk: u64,
    /// Bytes (since `start`) made durable.
    persisted: u64,
}

#[async_trait]
impl ResumableWriter for FileAppender {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        let file = self.file.take().ok_or_else(|| std::io::Error::other("resumable staging already failed"))?;
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        let base = self.start.size;
        let (from, to) = (base + self.handed_to_disk, base + self.written + len);
        let (file, start_writeback) = write_and_hand_on(file, batch, from, to).await?;
        self.file = Some(file);
        self.written += len;
        if start_writeback {
            self.handed_to_disk = self.written;
        }
        Ok(())
    }

    async fn persist(&mut self) -> Result<Resumable, StoreError> {
        let state = Resumable { size: self.start.size + self.written, ..self.start.clone() };
        if self.persisted == self.written {
            return Ok(state);
        }
        let file = self.file.take().ok_or_else(|| std::io::Error::other("resumable staging already failed"))?;
        let file = blocking(move || file.sync_data().map(|()| file)).await?;
        self.file = Some(file);
        self.persisted = self.written;
        Ok(state)
    }
}
