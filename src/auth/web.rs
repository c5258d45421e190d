//! The web gallery's credentials: one-time sign-in links and the session cookie they open.
//! Both are secrets of [`super::secrets`], stored as their hash.

use super::secrets::{self, Issued};

/// Where a sign-in link points, below the public URL.
pub const SIGN_IN_PATH: &str = "/web/signin";
/// The query parameter (and form field) carrying a sign-in link's secret.
pub const LINK_PARAMETER: &str = "link";

/// A new one-time sign-in link's secret (`fry_l_…`).
pub fn new_link() -> Issued {
    secrets::issue("fry_l_")
}

/// A new session's secret (`fry_w_…`, the `ferry_session` cookie).
pub fn new_session() -> Issued {
    secrets::issue("fry_w_")
}

/// The sign-in link for `secret` on a server reached at `base`.
pub fn sign_in_url(base: &str, secret: &str) -> String {
    format!("{}{SIGN_IN_PATH}?{LINK_PARAMETER}={secret}", base.trim_end_matches('/'))
}

/// The CSRF token of a web session: derived from its secret, so the page learns it from the
/// server and another site, which cannot read the cookie, cannot compute it.
pub fn csrf_token(session_secret: &str) -> String {
    secrets::hash(&format!("csrf:{session_secret}"))
}
