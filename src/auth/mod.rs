//! Who is calling. Credentials arrive in several spellings (API.md "Identity and
//! permissions"); [`Presented`] collects them, [`resolve`] turns them into one
//! [`Principal`], and [`permissions`] decides what that principal may do. No HTTP types.

mod cache;
pub mod permissions;
pub mod secrets;
pub mod web;

pub use cache::{PRINCIPAL_TTL, PrincipalCache};

use crate::catalog::{CatalogResult, Device, Identities, TokenRecord, User, WebSession, WebSessions};
use crate::domain::ScopeSet;

/// The credentials a request carried, wherever they were.
#[derive(Debug, Default, Clone)]
pub struct Presented {
    /// The token from `Authorization: Bearer|Token|Private-Token <token>`.
    pub header_token: Option<String>,
    /// `device_session_key` from the query string or JSON body.
    pub device_session_key: Option<String>,
    /// `user_session_key` (a user's API token) from the query string or JSON body.
    pub user_session_key: Option<String>,
    /// The web gallery's session cookie, used only when no other credential came.
    pub web_session: Option<String>,
    /// The request changes state and carries the cookie without the page's CSRF token (so
    /// it may come from another site's form): refused when the cookie is what it rests on.
    pub web_csrf_missing: bool,
}

impl Presented {
    /// Reads an `Authorization` header value; unknown schemes are ignored.
    pub fn from_authorization(value: &str) -> Option<String> {
        let (scheme, token) = value.trim().split_once(' ')?;
        let known = ["bearer", "token", "private-token"].iter().any(|s| scheme.eq_ignore_ascii_case(s));
        let token = token.trim();
        (known && !token.is_empty()).then(|| token.to_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.credential().is_none()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user acting through one of their API tokens.
    Token { user: User, token: TokenRecord },
    /// A device acting with its session key, on behalf of its owner.
    Device { device: Device, owner: User },
    /// A user signed in to the web gallery (a browser's session cookie).
    Web { user: User, session: WebSession },
}

impl Principal {
    /// The account that owns what this principal uploads.
    pub fn user(&self) -> &User {
        match self {
            Principal::Token { user, .. } | Principal::Web { user, .. } => user,
            Principal::Device { owner, .. } => owner,
        }
    }

    /// What a user principal may do; `None` for a device (its rules are its flags).
    pub fn scopes(&self) -> Option<&ScopeSet> {
        match self {
            Principal::Token { token, .. } => Some(&token.scopes),
            Principal::Web { session, .. } => Some(&session.scopes),
            Principal::Device { .. } => None,
        }
    }
}

/// The credential a request is judged by: a device key wins over tokens (device clients
/// send it with every call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    DeviceKey(String),
    Token(String),
    WebSession(String),
}

impl Presented {
    /// The credential to resolve, as its at-rest hash.
    pub fn credential(&self) -> Option<Credential> {
        if let Some(key) = &self.device_session_key {
            return Some(Credential::DeviceKey(secrets::hash(key)));
        }
        if let Some(token) = self.header_token.as_ref().or(self.user_session_key.as_ref()) {
            return Some(Credential::Token(secrets::hash(token)));
        }
        let session = self.web_session.as_ref()?;
        Some(Credential::WebSession(secrets::hash(session)))
    }
}

/// Resolves presented credentials in one catalog query; unknown credentials resolve to `None`.
pub async fn resolve<C: Identities + WebSessions + ?Sized>(
    catalog: &C,
    presented: &Presented,
) -> CatalogResult<Option<Principal>> {
    match presented.credential() {
        Some(credential) => resolve_credential(catalog, &credential).await,
        None => Ok(None),
    }
}

async fn resolve_credential<C: Identities + WebSessions + ?Sized>(
    catalog: &C,
    credential: &Credential,
) -> CatalogResult<Option<Principal>> {
    Ok(match credential {
        Credential::DeviceKey(hash) => {
            catalog.device_by_key_hash(hash).await?.map(|(device, owner)| Principal::Device { device, owner })
        }
        Credential::Token(hash) => {
            catalog.token_by_hash(hash).await?.map(|(token, user)| Principal::Token { user, token })
        }
        Credential::WebSession(hash) => {
            catalog.web_session_by_hash(hash).await?.map(|(session, user)| Principal::Web { user, session })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes_are_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "Token abc", "TOKEN abc", "Private-Token abc", "private-token  abc "]
        {
            assert_eq!(Presented::from_authorization(header).as_deref(), Some("abc"), "{header}");
        }
        for header in ["Basic abc", "abc", "Bearer ", ""] {
            assert_eq!(Presented::from_authorization(header), None, "{header}");
        }
    }
}
