//! Device-family parts written in place (on a store that can, the local disk): the plan fixes
//! each part's offset, so part N streams straight into its region of `uploads/<upload id>`,
//! and completing verifies that file (hashed as its parts are recorded, `frontier`) and links
//! it to its content address — the bytes are written to the disk once instead of twice (see
//! `blob_store::local_parts`).
//!
//! A region has no file of its own to replace, so a part is forgotten in the catalog before
//! it is written again (a crash mid-write leaves it missing, never wrong), two writes of one
//! part take turns, and a completion waits for the writes in flight and holds off new ones
//! while it reads and links the file (`InPlaceLocks`: one server owns a local store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::{MultipartUploads, UploadError};
use crate::blob_store::Staged;
use crate::catalog::{CatalogError, Part, Upload, UploadFamily};
use crate::domain::chunk_size_for;
use crate::ingest::{Expectation, Hold};

/// Locks by name (an upload, or one part of it), dropped from the map when nobody holds them.
#[derive(Clone, Default)]
pub(super) struct InPlaceLocks(Arc<Mutex<HashMap<String, Arc<RwLock<()>>>>>);

/// A held lock; the last holder removes its entry.
pub(super) struct Held<G> {
    _guard: G,
    name: String,
    locks: InPlaceLocks,
}

impl<G> Drop for Held<G> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().expect("never poisoned");
        // every clone is made under this mutex: two references are the map's and this one's
        if map.get(&self.name).is_some_and(|lock| Arc::strong_count(lock) <= 2) {
            map.remove(&self.name);
        }
    }
}

impl InPlaceLocks {
    fn entry(&self, name: &str) -> Arc<RwLock<()>> {
        self.0.lock().expect("never poisoned").entry(name.to_owned()).or_default().clone()
    }

    pub(super) async fn shared(&self, name: &str) -> Held<OwnedRwLockReadGuard<()>> {
        let guard = self.entry(name).read_owned().await;
        Held { _guard: guard, name: name.to_owned(), locks: self.clone() }
    }

    pub(super) async fn exclusive(&self, name: &str) -> Held<OwnedRwLockWriteGuard<()>> {
        let guard = self.entry(name).write_owned().await;
        Held { _guard: guard, name: name.to_owned(), locks: self.clone() }
    }
}

/// Where part `part_num` of a file of `file_size` bytes starts, by the file-hashing rule.
pub(super) fn planned_offset(file_size: u64, part_num: u32) -> Option<u64> {
    let chunk = chunk_size_for(file_size);
    let index = u64::from(part_num.checked_sub(1)?);
    match chunk {
        0 => (index == 0).then_some(0),
        chunk => Some(chunk * index).filter(|offset| *offset < file_size),
    }
}

/// How many bytes part `part_num` of a file of `file_size` bytes holds, by the same rule.
pub(super) fn planned_size(file_size: u64, part_num: u32) -> Option<u64> {
    let offset = planned_offset(file_size, part_num)?;
    Some(match chunk_size_for(file_size) {
        0 => file_size,
        chunk => chunk.min(file_size - offset),
    })
}

impl MultipartUploads {
    /// The staging object an upload writes its parts into, when it does: a device-family
    /// upload on a store that writes parts in place, whose recorded parts are all there (an
    /// upload begun by an earlier version keeps its parts as files of their own).
    pub(super) fn in_place_key(&self, upload: &Upload, parts: &[Part]) -> Option<String> {
        let in_place = self.store.writes_parts_in_place()
            && upload.family == UploadFamily::Device
            && upload.file_size.is_some()
            && upload.upload_id.parse::<ulid::Ulid>().is_ok();
        let key = format!("uploads/{}", upload.upload_id);
        (in_place && parts.iter().all(|p| p.staging_key == key)).then_some(key)
    }

    /// Receives part `part_num` into its region of `key` (see the module docs).
    pub(super) async fn put_part_in_place<S, E>(
        &self,
        upload: &Upload,
        key: &str,
        part_num: u32,
        body: S,
        expect: &Expectation,
    ) -> Result<String, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + 'static,
    {
        let id = &upload.upload_id;
        let offset = upload.file_size.and_then(|size| planned_offset(size, part_num));
        let offset = offset.ok_or_else(|| UploadError::PartSize(format!("part {part_num} is not in the plan")))?;
        let staged = Staged { key: key.to_owned(), size: 0 };
        let upload_lock = loop {
            // held shared, no completion can link the file meanwhile
            let shared = self.locks.shared(id).await;
            if !self.store.staged_is_linked(&staged).await? {
                break shared;
            }
            drop(shared);
            // a completion linked the file to its blob, then failed: the blob's bytes must
            // never change, so the upload starts a new file (its parts went with the old
            // one) — once, by whichever part gets here first
            let _alone = self.locks.exclusive(id).await;
            if self.store.staged_is_linked(&staged).await? {
                self.frontiers.forget(id);
                self.catalog.forget_parts(id, None).await.map_err(refused)?;
                self.store.discard(&staged).await?;
            }
        };
        let part_lock = self.locks.exclusive(&format!("{id}#{part_num}")).await;
        // kept here until the part is recorded, and by its writer until its last write landed
        let hold: Hold = Arc::new((upload_lock, part_lock));
        self.frontiers.unvouch(id, part_num);
        self.catalog.forget_parts(id, Some(part_num)).await.map_err(refused)?;
        let received = self.ingest.receive_in_place(body, expect, (key, offset), hold.clone()).await?;
        let etag = received.blob.sha256.to_string();
        let part = Part {
            part_num,
            staging_key: key.to_owned(),
            size: received.blob.size,
            sha256: received.blob.sha256.clone(),
            etag: etag.clone(),
        };
        match self.catalog.put_part(id, &part).await {
            Ok(_) => {
                received.keep();
                // vouched for before its locks go, so the frontier never asks the catalog
                self.advance_frontier(upload, key, &part);
                drop(hold);
                Ok(etag)
            }
            Err(CatalogError::NotFound(what)) => {
                // aborted or expired while it was written: its bytes may have made a new file
                self.store.discard(&staged).await?;
                Err(refused(CatalogError::NotFound(what)))
            }
            Err(other) => Err(refused(other)),
        }
    }
}

/// A part change the catalog refused: the upload is gone or being completed.
pub(super) fn refused(err: CatalogError) -> UploadError {
    match err {
        CatalogError::NotFound(_) => UploadError::NoSuchUpload,
        CatalogError::Conflict(_) => UploadError::Completing,
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_start_at_their_chunk() {
        let mib = 1024 * 1024;
        assert_eq!(planned_offset(5, 1), Some(0));
        assert_eq!(planned_offset(5, 2), None);
        assert_eq!(planned_offset(16 * mib + 1, 3), Some(16 * mib));
        assert_eq!(planned_offset(16 * mib + 1, 4), None);
        assert_eq!(planned_offset(16 * mib + 1, 0), None);
        assert_eq!(planned_size(5, 1), Some(5));
        assert_eq!(planned_size(16 * mib + 1, 2), Some(8 * mib));
        assert_eq!(planned_size(16 * mib + 1, 3), Some(1));
        assert_eq!(planned_size(16 * mib + 1, 4), None);
    }

    #[tokio::test]
    async fn a_lock_is_dropped_from_the_map_by_its_last_holder() {
        let locks = InPlaceLocks::default();
        let (first, second) = (locks.shared("u").await, locks.shared("u").await);
        drop(first);
        assert_eq!(locks.0.lock().unwrap().len(), 1, "still held");
        drop(second);
        assert!(locks.0.lock().unwrap().is_empty());
        let _held = locks.exclusive("u").await;
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), locks.shared("u")).await.is_err());
    }
}
