//! Resumable staging: one staging object that grows by appends made in separate requests —
//! possibly by other processes sharing the store — until it is finished into an ordinary
//! staging object and committed like any other (tus uploads, `resumable`).
//!
//! A [`Resumable`] says where an object stands; the caller keeps it (in the catalog) between
//! appends and hands it back to continue. Each append opens a [`ResumableWriter`] at the
//! recorded size, writes, and [`ResumableWriter::persist`]s: the state it returns holds every
//! byte written so far, durably. Until the caller records that state, the recorded one stays
//! valid: an append that is abandoned (a refused checksum, a crash) changes nothing a
//! recorded state describes.
//!
//! - Local disk: one append-only file in upload staging; bytes past the recorded size (left
//!   by an append never recorded) are cut off by the next append or the finish.
//! - S3: an S3 multipart upload of the object's key, each part at least 5 MiB; the bytes that
//!   do not fill a part yet wait in a *tail* object of their own (a new key each time, so a
//!   recorded tail is never overwritten), read back by the next append.

use async_trait::async_trait;
use bytes::Bytes;

use super::{Resumable, StoreError};

/// Appends to a resumable staging object (see the module docs). Dropped without
/// [`ResumableWriter::persist`], what it wrote is not part of any state.
#[async_trait]
pub trait ResumableWriter: Send {
    /// Appends `batch` in order.
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), StoreError>;
    /// Makes every byte written so far durable and returns the state holding them (the
    /// starting state when nothing was written). Writing may go on afterwards.
    async fn persist(&mut self) -> Result<Resumable, StoreError>;
}
