//! Principals resolved in the last moment, kept in memory so a burst of requests with one
//! credential costs one catalog query, not one each.
//!
//! An entry lives [`PRINCIPAL_TTL`] (under a second) and nothing else invalidates it: a
//! token revoked, a device or user disabled — on this replica or any other sharing the
//! catalog — is refused within that time everywhere, with no message between replicas.
//! Unknown credentials are never cached, so a token just created works at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Credential, Presented, Principal, resolve_credential};
use crate::catalog::{CatalogResult, Identities, WebSessions};

/// How long a resolved principal is trusted without asking the catalog again.
pub const PRINCIPAL_TTL: Duration = Duration::from_millis(750);
/// Entries kept at most; past this the cache starts over (a flood of distinct valid
/// credentials only costs the queries it would have cost without a cache).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct PrincipalCache {
    entries: Mutex<HashMap<Credential, (Instant, Principal)>>,
}

impl PrincipalCache {
    /// [`super::resolve`], answered from memory while the entry is fresh.
    pub async fn resolve<C: Identities + WebSessions + ?Sized>(
        &self,
        catalog: &C,
        presented: &Presented,
    ) -> CatalogResult<Option<Principal>> {
        let Some(credential) = presented.credential() else { return Ok(None) };
        if let Some(principal) = self.fresh(&credential) {
            return Ok(Some(principal));
        }
        let resolved = resolve_credential(catalog, &credential).await?;
        if let Some(principal) = &resolved {
            let mut entries = self.entries.lock().expect("not poisoned");
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(credential, (Instant::now(), principal.clone()));
        }
        Ok(resolved)
    }

    fn fresh(&self, credential: &Credential) -> Option<Principal> {
        let entries = self.entries.lock().expect("not poisoned");
        let (at, principal) = entries.get(credential)?;
        (at.elapsed() < PRINCIPAL_TTL).then(|| principal.clone())
    }
}
