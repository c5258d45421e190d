//! Upload-session family (API.md §3), at `/api/…` and also without the `/api` prefix:
//! register a session with limits, upload files to it (with the token, or to its signed
//! direct URL with no other credential), finish it; import from a remote URL or a bucket.

mod form;
mod import;
mod register;
mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use super::AppState;
use super::error::Family;

/// The upload host's target for `url_upload_direct` (a signed POST, no other credential).
pub const DIRECT_PREFIX: &str = "/signed/session/";

/// What a client may append to `url_upload_direct` outside its signature: `folder_id`, as
/// MediaLab's PHP SDK does per file in batch mode (API.md §3). It means what the form
/// field means; the signature still binds everything else.
pub const DIRECT_UNSIGNED: &[&str] = &["folder_id"];

pub fn router() -> Router<AppState> {
    let family = Router::new()
        .route("/upload/id", post(register::register).delete(register::finish_by_body))
        .route("/upload/id/{ulid}", delete(register::finish))
        .route("/file/{ulid}", post(upload::with_token).layer(DefaultBodyLimit::disable()))
        .route("/upload/remote", post(import::remote))
        .route("/upload/remote/{job_id}", get(import::remote_status))
        .route("/upload/blob", post(import::blob));
    let both = Router::new()
        .nest("/api", family.clone())
        .merge(family)
        // Ferry's own: `urls.file` of a finished session (only under /api; tus owns /files/)
        .route("/api/files/{file_id}", get(upload::download).delete(upload::delete))
        .route(&format!("{DIRECT_PREFIX}{{ulid}}"), post(upload::direct).layer(DefaultBodyLimit::disable()));
    Family::Session.layer(both)
}
