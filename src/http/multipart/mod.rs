//! Presigned multipart family (API.md §2), under `/api/users`: start an upload of N parts,
//! PUT each part to its presigned URL (the upload host's `/signed/part`), complete, abort;
//! or store a file with one signed PUT. Completed files live under the caller's `file_id`.

mod complete;
mod files;
mod start;

use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::AppState;
use super::openapi::ApiRouter;
use crate::domain::ErrorCode;

pub fn router() -> ApiRouter {
    // paths are in the handlers' descriptions: `/api/users/…` and files::SINGLE_PUT
    ApiRouter::new()
        .routes(routes!(start::start))
        .routes(routes!(complete::complete))
        .routes(routes!(start::abort))
        .routes(routes!(files::upload_url))
        .routes(routes!(files::download, files::delete))
        .routes(routes!(files::single_put).layer(axum::extract::DefaultBodyLimit::disable()))
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
