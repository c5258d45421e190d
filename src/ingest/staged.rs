//! The guard over a staging object an upload has not committed yet: who removes it when
//! the upload goes no further.

use std::sync::Arc;

use crate::blob_store::{BlobStore, Staged};

/// A staging object that removes itself when dropped, unless kept or committed — or owned
/// by something that outlives the request (a tus upload's row names it until it commits).
pub(super) struct StagedUpload {
    pub(super) store: Arc<dyn BlobStore>,
    pub(super) staged: Option<Staged>,
    pub(super) owner: Owner,
}

/// Who removes a staging object that was not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The request: dropped, it goes.
    Request,
    /// Something that outlives the request (a tus upload's row).
    Elsewhere,
    /// An upload whose parts were written in place: committed by a link, so the staging name
    /// stays until the upload records its completion (see `in_place`).
    InPlace,
}

impl std::fmt::Debug for StagedUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StagedUpload").field(&self.staged).finish()
    }
}

impl Drop for StagedUpload {
    fn drop(&mut self) {
        if let Some(staged) = self.staged.take()
            && self.owner == Owner::Request
        {
            self.store.clone().discard_on_drop(staged);
        }
    }
}
