//! Who is calling. Credentials arrive in several spellings (API.md "Identity and
//! permissions"); [`Presented`] collects them, [`resolve`] turns them into one
//! [`Principal`], and [`permissions`] decides what that principal may do. No HTTP types.

pub mod permissions;
pub mod secrets;

use crate::catalog::{Catalog, CatalogResult, Device, TokenRecord, User};

/// The credentials a request carried, wherever they were.
#[derive(Debug, Default, Clone)]
pub struct Presented {
    /// The token from `Authorization: Bearer|Token|Private-Token <token>`.
    pub header_token: Option<String>,
    /// `device_session_key` from the query string or JSON body.
    pub device_session_key: Option<String>,
    /// `user_session_key` (a user's API token) from the query string or JSON body.
    pub user_session_key: Option<String>,
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
        self.header_token.is_none() && self.device_session_key.is_none() && self.user_session_key.is_none()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user acting through one of their API tokens.
    Token { user: User, token: TokenRecord },
    /// A device acting with its session key, on behalf of its owner.
    Device { device: Device, owner: User },
}

impl Principal {
    /// The account that owns what this principal uploads.
    pub fn user(&self) -> &User {
        match self {
            Principal::Token { user, .. } => user,
            Principal::Device { owner, .. } => owner,
        }
    }
}

/// Resolves presented credentials: a device key wins over tokens (device clients send it
/// with every call); unknown credentials resolve to `None`.
pub async fn resolve(catalog: &dyn Catalog, presented: &Presented) -> CatalogResult<Option<Principal>> {
    if let Some(key) = &presented.device_session_key {
        let found = catalog.device_by_key_hash(&secrets::hash(key)).await?;
        return Ok(found.map(|(device, owner)| Principal::Device { device, owner }));
    }
    let Some(token) = presented.header_token.as_ref().or(presented.user_session_key.as_ref()) else {
        return Ok(None);
    };
    Ok(catalog.token_by_hash(&secrets::hash(token)).await?.map(|(token, user)| Principal::Token { user, token }))
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
