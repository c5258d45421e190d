//! Uploads whose parts are written in place (see `blob_store::local_parts`): each part
//! streams into its region of the upload's one staging object, whose SHA-256 is carried
//! across the parts as they are recorded; the finished object is verified from that and
//! committed by a link — never copied.

use bytes::Bytes;
use futures_util::Stream;

use super::receive::{self, Destination, Hold};
use super::staged::Owner;
use super::{Expectation, Ingest, IngestError, Raw, Received};
use crate::blob_store::Staged;
use crate::catalog::BlobRecord;

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
        E: std::error::Error + 'static,
    {
        self.receive_into(Destination::InPlace { key: key.to_owned(), offset, hold }, body, expect, true).await
    }

    /// Accepts an upload's staging object its parts' service hashed (see
    /// `multipart::frontier`) if it is what `expect` says. The object stays whatever the
    /// outcome (its upload owns it); committed, it gets a second name at its content address.
    pub fn accept_in_place(&self, hashed: HashedInPlace, expect: &Expectation) -> Result<Received, IngestError> {
        receive::verify(&hashed.blob, expect).map_err(IngestError::HashMismatch)?;
        let raw = Raw { staged: hashed.staged, blob: hashed.blob, head: hashed.head };
        Ok(self.guard(raw, Owner::InPlace))
    }
}

/// What an upload's staging object written in place holds, learnt without the pipeline
/// reading it: its size and hashes, and its first bytes (what the content is).
pub struct HashedInPlace {
    pub staged: Staged,
    pub blob: BlobRecord,
    pub head: Vec<u8>,
}
