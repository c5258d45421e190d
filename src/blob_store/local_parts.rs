//! Parts written in place on local disk. A device-family multipart upload knows where each
//! part goes (its parts are the chunks of the file-hashing rule), so every part is written
//! at its offset of one staging file, `staging/uploads/<upload id>`, and completing needs no
//! second copy: the file is verified (its SHA-256 read as its parts are recorded, see
//! `ingest::multipart::frontier`) and linked to its content address. A copy would write
//! every byte to the disk twice, which is what made a 1 GiB device upload
//! take twice as long as a signed PUT of the same bytes.
//!
//! The link leaves the staging name until the completion is recorded, so a completion that
//! fails after placing the bytes can simply run again; a part written after that must not
//! reach the linked inode (`staged_is_linked` lets the caller start a new file instead).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use async_trait::async_trait;
use bytes::Bytes;

use super::local::{LocalStore, UPLOADS, blocking, sync_dir};
use super::{Placed, Staged, StagingWriter, StoreError};
use crate::domain::Sha256Hex;

/// Writes one part at its offset; finishing makes it durable. Dropped unfinished, its bytes
/// stay: the catalog forgot the part before it was written again, so nothing counts on them.
///
/// Unlike a staging file of its own, a part starts no writeback as it goes: on a file shared
/// by parts, `POSIX_FADV_DONTNEED` also evicts pages another part's fdatasync has already
/// cleaned, and the completion then read them back from the disk (a 1 GiB completion took
/// 2.8 s instead of 1.4 s). Each part's fdatasync writes what is dirty by then.
struct PartWriter {
    key: String,
    file: Option<File>,
    written: u64,
}

#[async_trait]
impl StagingWriter for PartWriter {
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError> {
        let mut file = self.file.take().ok_or_else(|| std::io::Error::other("part file already failed"))?;
        let len: u64 = batch.iter().map(|piece| piece.len() as u64).sum();
        let file = blocking(move || {
            for piece in &batch {
                file.write_all(piece)?;
            }
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        self.written += len;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Staged, StoreError> {
        let file = self.file.take().ok_or_else(|| std::io::Error::other("part file already failed"))?;
        // the file may have grown: fdatasync writes the size too when it changed
        blocking(move || file.sync_data()).await?;
        Ok(Staged { key: std::mem::take(&mut self.key), size: self.written })
    }
}

impl LocalStore {
    pub(super) async fn part_writer(&self, key: &str, offset: u64) -> Result<Box<dyn StagingWriter>, StoreError> {
        let path = self.staged_path(&Staged { key: key.to_owned(), size: 0 })?;
        if !key.starts_with(&format!("{UPLOADS}/")) {
            return Err(std::io::Error::other(format!("parts are written in upload staging, not {key}")).into());
        }
        let file = blocking(move || {
            let mut file = match File::create_new(&path) {
                Ok(file) => {
                    // the catalog will name this file: its entry must survive a crash too
                    sync_dir(path.parent().expect("staging files have a parent"))?;
                    file
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    OpenOptions::new().write(true).open(&path)?
                }
                Err(e) => return Err(e),
            };
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;
        Ok(Box::new(PartWriter { key: key.to_owned(), file: Some(file), written: 0 }))
    }

    pub(super) async fn link_to_blob(&self, staged: &Staged, sha256: &Sha256Hex) -> Result<Placed, StoreError> {
        let from = self.staged_path(staged)?;
        let to = self.blob_path(sha256);
        blocking(move || {
            let dir = to.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            let placed = match std::fs::hard_link(&from, &to) {
                Ok(()) => Placed::Stored,
                // stored already (or by a concurrent commit still syncing its directory)
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Placed::AlreadyPresent,
                Err(e) => return Err(e),
            };
            sync_dir(dir)?;
            Ok(placed)
        })
        .await
    }

    pub(super) async fn has_second_name(&self, staged: &Staged) -> Result<bool, StoreError> {
        let path = self.staged_path(staged)?;
        match tokio::fs::metadata(path).await {
            Ok(meta) => Ok(meta.nlink() > 1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
