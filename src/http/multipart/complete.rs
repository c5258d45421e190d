//! Completing a multipart upload: the family's request checked for its shape, then the
//! upload service completes it (see `ingest::multipart`).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::start::own_upload;
use super::{location, parse_file_id};
use crate::domain::{ErrorCode, Sha256Hex};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, JsonBody, MultipartUpload};
use crate::http::openapi::tag;
use crate::ingest::Expectation;
use crate::ingest::multipart::{Completion, PartRule, UploadError};

/// S3's minimum size for every part but the last.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// One uploaded part, as its PUT answered it.
#[derive(Deserialize, ToSchema)]
pub struct MultipartPart {
    /// 1..N.
    #[schema(example = 1)]
    part_number: u32,
    /// The `ETag` header of the part's PUT; the quotes are optional.
    #[schema(example = "\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"")]
    etag: String,
}

#[derive(Deserialize, ToSchema)]
pub struct MultipartCompleteRequest {
    /// The `upload_id` that `multipart_upload_start` answered.
    upload_id: String,
    /// Every part 1..N, each once (in any order).
    parts: Vec<MultipartPart>,
}

/// A completed file (also what completing it again answers: the answer is stored with the
/// completion and replayed).
#[derive(Serialize, ToSchema)]
pub struct MultipartCompleted {
    /// SHA-256 of the whole file.
    #[schema(value_type = String, example = "67905ad3cc2dd52b1f5f6a6d2814de0396618b29b4238b9af5207aeb69936e6d")]
    checksum: Sha256Hex,
    /// The multipart ETag, with its quotes, ending in the part count.
    #[schema(example = "\"d887db09649dab0d83951d8d5d69b2e7d8bb70e79daa2a3a279b4fd6b8346cea-3\"")]
    etag: String,
    #[schema(example = 12582912)]
    filesize: u64,
    /// The normalised `file_id`.
    #[schema(example = "clip-1")]
    id: String,
    /// Where the file is fetched, with the same token.
    #[schema(example = "http://127.0.0.1:8080/api/users/files/clip-1")]
    location: String,
}

/// Completes a multipart upload from its parts' ETags.
///
/// The parts must be exactly 1..N, each once; every part but the last must be at least 5 MiB.
/// Completing again answers the same.
#[utoipa::path(post, path = "/api/users/multipart_upload_complete/{file_id}", tag = tag::MULTIPART,
    params(("file_id" = String, Path, description = "The caller's name for the file: a UUID, or 1-64 of `A-Z a-z 0-9 _ -`")),
    request_body(content = MultipartCompleteRequest, example = json!({
        "upload_id": "01JQ8Z6V2K3M4N5P6Q7R8S9T0V",
        "parts": [
            {"part_number": 1, "etag": "\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\""},
            {"part_number": 2, "etag": "\"fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\""},
            {"part_number": 3, "etag": "\"baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096\""}
        ]
    })),
    responses(
        (status = 200, body = MultipartCompleted),
        (status = 400, description = "Malformed JSON (`invalid_json`, `invalid_request`); a bad `file_id` (`invalid_file_id`); the parts are not exactly 1..N (`invalid_parts`); \
            a wrong ETag (`etag_mismatch`); a part never sent (`missing_part`); a part but the last under 5 MiB (`part_too_small`)"),
        (status = 404, description = "No such `upload_id` for this `file_id` (`no_such_upload`)"),
        (status = 409, description = "Another completion of this upload is running (`upload_completing`)"),
        (status = 413, description = "Over FERRY_MAX_UPLOAD_SIZE (`too_large`) or the account's quota (`quota_exceeded`)"),
        (status = 507, description = "No space left; nothing kept (`insufficient_storage`)"),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<MultipartUpload>,
    JsonBody(body): JsonBody<MultipartCompleteRequest>,
) -> Result<Json<Value>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let upload = own_upload(&state, principal.user().user_id, &file_id).await?;
    if upload.upload_id != body.upload_id {
        return Err(ApiError::new(
            ErrorCode::NoSuchUpload,
            format!("no upload {} of file '{file_id}'", body.upload_id),
        ));
    }
    if let Some(answer) = upload.result.filter(|_| upload.completed) {
        return Ok(Json(answer));
    }
    let count = upload.part_count.unwrap_or(0);
    let mut listed: Vec<(u32, String)> = body.parts.into_iter().map(|p| (p.part_number, p.etag)).collect();
    listed.sort_by_key(|(num, _)| *num);
    if listed.len() != count as usize || listed.iter().zip(1..).any(|((num, _), n)| *num != n) {
        return Err(ApiError::new(ErrorCode::InvalidParts, format!("parts must be exactly 1..{count}, each once")));
    }
    let location = location(&state, &file_id);
    // stored with the completion and replayed to repeats, hence a JSON value
    let answer = |blob: &crate::catalog::BlobRecord, etag: &str| {
        let completed = MultipartCompleted {
            checksum: blob.sha256.clone(),
            etag: etag.to_owned(),
            filesize: blob.size,
            id: file_id.as_str().to_owned(),
            location: location.clone(),
        };
        serde_json::to_value(completed).expect("an answer serialises")
    };
    let completion = Completion {
        upload_id: &upload.upload_id,
        parts: &listed,
        rule: PartRule::MinSize(MIN_PART),
        expect: Expectation::default(),
        answer: &answer,
    };
    match state.uploads.complete(completion).await {
        Ok(done) => Ok(Json(done.answer)),
        Err(UploadError::PartSize(why)) => Err(ApiError::new(ErrorCode::PartTooSmall, why)),
        Err(other) => Err(other.into()),
    }
}
