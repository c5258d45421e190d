//! Direct single PUTs (S3 direct mode): a device PUTs a file straight to the S3 server with
//! a presigned URL bound to its exact length (and to its SHA-256 when the file hash is that,
//! files up to 16 MiB), and registers it afterwards.
//!
//! The client may keep writing its staging key for as long as the URL lives, so what gets
//! verified must be something it can no longer change: registration first copies the object
//! into request staging (a key only Ferry writes) and removes the client's key, then reads
//! the copy back through the pipeline's hashing, and commits exactly that copy.

use std::time::Duration;

use super::{Expectation, Ingest, IngestError, Ingested};
use crate::blob_store::{DirectUploads, Presigned, StoreError};
use crate::domain::{Sha256Hex, UserId, chunk_size_for};

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no object with that file_hash and file_size was uploaded")]
    ObjectMissing,
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl From<StoreError> for RegisterError {
    fn from(err: StoreError) -> Self {
        RegisterError::Ingest(err.into())
    }
}

/// A presigned PUT for `user`'s file of `size` bytes with device hash `file_hash`.
pub async fn presign_file(
    direct: &dyn DirectUploads,
    user: UserId,
    file_hash: &Sha256Hex,
    size: u64,
    ttl: Duration,
) -> Result<Presigned, StoreError> {
    let key = direct.direct_key(user, file_hash, size);
    let plain = chunk_size_for(size) == 0;
    direct.presign_put(&key, size, plain.then_some(file_hash), ttl).await
}

/// Registers `user`'s direct PUT of a file: the object must exist, and its copy must give
/// exactly the bound size and file hash (`expect`); then it is committed and held like any
/// upload.
pub async fn register_file(
    ingest: &Ingest,
    direct: &dyn DirectUploads,
    user: UserId,
    file_hash: &Sha256Hex,
    expect: &Expectation,
) -> Result<Ingested, RegisterError> {
    let size = expect.size.expect("a registration binds the size");
    let key = direct.direct_key(user, file_hash, size);
    let staged = direct.take_over(&key).await?.ok_or(RegisterError::ObjectMissing)?;
    let received = ingest.verify_staged(staged, expect).await?;
    Ok(ingest.commit(received, user).await?)
}
