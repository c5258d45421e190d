//! Completing a multipart upload: the family's request checked for its shape, then the
//! upload service completes it (see `ingest::multipart`).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::start::own_upload;
use super::{location, parse_file_id};
use crate::domain::ErrorCode;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, JsonBody, MultipartUpload};
use crate::ingest::Expectation;
use crate::ingest::multipart::{Completion, PartRule, UploadError};

/// S3's minimum size for every part but the last.
const MIN_PART: u64 = 5 * 1024 * 1024;

#[derive(Deserialize)]
pub struct CompletedPart {
    part_number: u32,
    etag: String,
}

#[derive(Deserialize)]
pub struct CompleteRequest {
    upload_id: String,
    parts: Vec<CompletedPart>,
}

pub async fn complete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<MultipartUpload>,
    JsonBody(body): JsonBody<CompleteRequest>,
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
    let answer = |blob: &crate::catalog::BlobRecord, etag: &str| {
        json!({
            "id": file_id.as_str(),
            "location": location,
            "etag": etag,
            "filesize": blob.size,
            "checksum": blob.sha256,
        })
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
