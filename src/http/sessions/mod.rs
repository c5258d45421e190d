//! Upload-session family (API.md §3), at `/api/…` and also without the `/api` prefix:
//! register a session with limits, upload files to it (with the token, or to its signed
//! direct URL with no other credential), finish it; import from a remote URL or a bucket.

mod form;
mod import;
mod register;
mod requests;
mod upload;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::error::Family;
use super::openapi::{ApiRouter, family_router};

/// The upload host's target for `url_upload_direct` (a signed POST, no other credential).
pub const DIRECT_PREFIX: &str = "/signed/session/";

/// The route of that target: [`DIRECT_PREFIX`] and the session's ulid.
pub const DIRECT_PATH: &str = "/signed/session/{ulid}";

/// What a client may append to `url_upload_direct` outside its signature: `folder_id`, as
/// MediaLab's PHP SDK does per file in batch mode (API.md §3). It means what the form
/// field means; the signature still binds everything else.
pub const DIRECT_UNSIGNED: &[&str] = &["folder_id"];

pub fn router() -> ApiRouter {
    let family = ApiRouter::new()
        .routes(routes!(register::register, register::finish_by_body))
        .routes(routes!(register::finish))
        .routes(routes!(upload::with_token).layer(DefaultBodyLimit::disable()))
        .routes(routes!(import::remote))
        .routes(routes!(import::remote_status))
        .routes(routes!(import::blob));
    let both = ApiRouter::new()
        .nest("/api", family.clone())
        .merge(family)
        // Ferry's own: `urls.file` of a finished session (only under /api; tus owns /files/)
        .routes(routes!(upload::download, upload::delete))
        .routes(routes!(upload::rendition))
        .routes(routes!(upload::direct).layer(DefaultBodyLimit::disable()));
    family_router(Family::Session, both)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_direct_route_is_the_signed_prefix_and_a_ulid() {
        assert_eq!(super::DIRECT_PATH, format!("{}{{ulid}}", super::DIRECT_PREFIX));
    }
}
