//! Uploads whose parts are written in place (see `blob_store::local_parts`): each part
//! streams into its region of the upload's one staging object, and the finished object is
//! read back once to verify it, then committed by a link — never copied.

use bytes::Bytes;
use futures_util::Stream;

use super::receive::{self, Destination, Hold};
use super::staged::Owner;
use super::{Expectation, Ingest, IngestError, Received, read_back};
use crate::blob_store::Staged;

impl Ingest {
    /// Receives one part at `offset` of the upload-staging object `key`. What it wrote stays
    /// whatever happens: the caller forgot the part before writing it again. `hold` (the
    /// part's locks) is kept until the last write has landed, even when the request is
    /// cancelled first.
    pub async fn receive_in_place<S, E>(
        &self,
        body: S,
        expect: &Expectation,
        (key, offset): (&str, u64),
        hold: Hold,
    ) -> Result<Received, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.receive_into(Destination::InPlace { key: key.to_owned(), offset, hold }, body, expect, true).await
    }

    /// Reads an upload's staging object back once, hashed as a body is, and checks it
    /// against `expect`. The object stays whatever the outcome (its upload owns it);
    /// committed, it gets a second name at its content address.
    pub async fn verify_in_place(&self, staged: Staged, expect: &Expectation) -> Result<Received, IngestError> {
        let raw = read_back::read_back(self.store.as_ref(), staged, expect).await?;
        receive::verify(&raw.blob, expect).map_err(IngestError::HashMismatch)?;
        Ok(self.guard(raw, Owner::InPlace))
    }
}
