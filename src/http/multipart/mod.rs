//! Presigned multipart family (API.md §2), under `/api/users`: start an upload of N parts,
//! PUT each part to its presigned URL (the upload host's `/signed/part`), complete, abort;
//! or store a file with one signed PUT. Completed files live under the caller's `file_id`.

mod complete;
mod files;
mod start;

use axum::Router;
use axum::routing::{delete, get, post, put};

use super::AppState;
use crate::domain::ErrorCode;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/multipart_upload_start/{file_id}", get(start::start))
        .route("/api/users/multipart_upload_complete/{file_id}", post(complete::complete))
        .route("/api/users/multipart_upload/{file_id}", delete(start::abort))
        .route("/api/users/uploads/{file_id}", get(files::upload_url))
        .route("/api/users/files/{file_id}", get(files::download).delete(files::delete))
        .route(files::SINGLE_PUT, put(files::single_put).layer(axum::extract::DefaultBodyLimit::disable()))
}

const FAMILY: crate::catalog::UploadFamily = crate::catalog::UploadFamily::Multipart;

/// Content types the family accepts (compared case-insensitively).
const CONTENT_TYPES: [&str; 13] = [
    "image/jpeg",
    "image/png",
    "video/mp4",
    "image/heif",
    "image/heic",
    "video/quicktime",
    "image/webp",
    "video/3gpp",
    "video/webm",
    "image/gif",
    "video/x-m4v",
    "image/bmp",
    "application/octet-stream",
];

fn parse_file_id(raw: &str) -> Result<crate::domain::FileId, super::error::ApiError> {
    crate::domain::FileId::parse(raw).map_err(|e| super::error::ApiError::new(ErrorCode::InvalidFileId, e.to_string()))
}

/// Where a completed file can be fetched with the same credential.
fn location(state: &AppState, file_id: &crate::domain::FileId) -> String {
    format!("{}/api/users/files/{file_id}", state.public_url)
}
