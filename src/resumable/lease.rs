//! A PATCH's hold on its upload: a lease in the catalog (so one PATCH at a time changes an
//! upload, on any replica), renewed while the PATCH lives and given back when it ends — also
//! when the request is dropped. A holder whose renewals stop succeeding stops writing before
//! its lease can have run out, so two writers never append to one upload at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::catalog::{TusUpload, TusUploads};

/// How long a lease lasts unless renewed: after a crash, an upload is locked (423) this long
/// on other replicas (a server on an embedded catalog releases every lease when it starts).
pub(super) const LEASE: Duration = Duration::from_secs(60);
/// Renewed this often.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// A holder stops writing this long before its last renewal would run out (time for the
/// write in progress, and for clocks that differ between replicas).
const MARGIN: Duration = Duration::from_secs(20);

/// What a lease request got.
pub(super) enum Leased {
    Held(TusUpload),
    /// Not leased: the upload is complete already.
    Complete(TusUpload),
}

pub(super) struct Lease {
    catalog: Arc<dyn TusUploads>,
    /// The leased uploads (the first is the one a PATCH writes to).
    ids: Vec<String>,
    pub token: String,
    /// Until when writing is safe, moved on by each renewal.
    valid_until: Arc<Mutex<Instant>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

pub(super) fn new_token() -> String {
    ulid::Ulid::new().to_string()
}

impl Lease {
    /// Starts renewing a lease `ids` (an upload, or a final upload's partials) just took.
    pub fn hold(catalog: Arc<dyn TusUploads>, ids: Vec<String>, token: String) -> Self {
        let valid_until = Arc::new(Mutex::new(Instant::now() + LEASE - MARGIN));
        let heartbeat = {
            let (catalog, token, valid_until) = (catalog.clone(), token.clone(), valid_until.clone());
            let ids = ids.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let renewed_at = Instant::now();
                    let (mut lost, mut failed) = (false, false);
                    for id in &ids {
                        match catalog.renew_tus_lease(id, &token, LEASE).await {
                            Ok(true) => {}
                            Ok(false) => lost = true,
                            Err(e) => {
                                tracing::warn!(error = %e, upload = %id, "could not renew a tus lease; will try again");
                                failed = true;
                            }
                        }
                    }
                    // valid_until moves only when every renewal went through: after failures
                    // the holder stops in time, and a later renewal may still save the lease
                    if lost {
                        return;
                    }
                    if !failed {
                        *valid_until.lock().expect("not poisoned") = renewed_at + LEASE - MARGIN;
                    }
                }
            })
        };
        Self { catalog, ids, token, valid_until, heartbeat }
    }

    pub fn id(&self) -> &str {
        &self.ids[0]
    }

    /// Gives the lease back now (the answer must not come before it: a client retrying at
    /// once would find its upload locked).
    pub async fn release(mut self) {
        self.heartbeat.abort();
        for id in std::mem::take(&mut self.ids) {
            if let Err(e) = self.catalog.release_tus_lease(&id, &self.token).await {
                tracing::warn!(error = %e, upload = %id, "could not release a tus lease");
            }
        }
    }

    /// Whether the lease is surely still this holder's.
    pub fn valid(&self) -> bool {
        Instant::now() < *self.valid_until.lock().expect("not poisoned")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.ids.is_empty() {
            return; // released
        }
        // what `release` does, for a holder that never got to it (a panic)
        let (catalog, ids, token) =
            (self.catalog.clone(), std::mem::take(&mut self.ids), std::mem::take(&mut self.token));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for id in ids {
                    if let Err(e) = catalog.release_tus_lease(&id, &token).await {
                        tracing::warn!(error = %e, upload = %id, "could not release a tus lease");
                    }
                }
            });
        }
    }
}
