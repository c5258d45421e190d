//! Completing a multipart upload: check the parts, stream them in order through the
//! pipeline, record the file.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::start::own_upload;
use super::{location, parse_file_id};
use crate::blob_store::{DirectMultipart, Staged};
use crate::catalog::Part;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, JsonBody, MultipartUpload};
use crate::http::{AppState, direct_upload};
use crate::ingest::Expectation;

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

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// S3-style multipart ETag: a digest of the part digests, then `-N`.
fn multipart_etag(parts: &[&Part]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(hex::decode(part.sha256.as_str()).expect("stored hashes are hex"));
    }
    format!("\"{}-{}\"", hex::encode(digest.finalize()), parts.len())
}

/// Every part but the last needs S3's minimum size; `parts` are `(number, size)` in order.
fn check_part_sizes(parts: &[(u32, u64)]) -> Result<(), ApiError> {
    match parts[..parts.len().saturating_sub(1)].iter().find(|(_, size)| *size < MIN_PART) {
        Some((num, size)) => {
            Err(invalid("part_too_small", format!("part {num} has {size} bytes; every part but the last needs 5 MiB")))
        }
        None => Ok(()),
    }
}

pub async fn complete(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    Caller(principal, ..): Caller<MultipartUpload>,
    JsonBody(body): JsonBody<CompleteRequest>,
) -> Result<Json<Value>, ApiError> {
    let file_id = parse_file_id(&file_id)?;
    let user = principal.user().user_id;
    let upload = own_upload(&state, user, &file_id).await?;
    if upload.upload_id != body.upload_id {
        return Err(ApiError::not_found(format!("no upload {} of file '{file_id}'", body.upload_id))
            .with_code("no_such_upload"));
    }
    if let Some(answer) = upload.result.filter(|_| upload.completed) {
        return Ok(Json(answer));
    }
    let count = upload.part_count.unwrap_or(0);
    let mut listed: Vec<&CompletedPart> = body.parts.iter().collect();
    listed.sort_by_key(|p| p.part_number);
    if listed.len() != count as usize || listed.iter().zip(1..).any(|(p, n)| p.part_number != n) {
        return Err(invalid("invalid_parts", format!("parts must be exactly 1..{count}, each once")));
    }
    if let (Some(direct), Some(store_upload)) = (state.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
        let listed: Vec<(u32, &str)> = listed.iter().map(|p| (p.part_number, p.etag.as_str())).collect();
        let parts = direct_upload::checked_parts(direct, &store_upload, &listed).await?;
        let sizes: Vec<(u32, u64)> = parts.iter().map(|p| (p.part_num, p.size)).collect();
        check_part_sizes(&sizes)?;
        let total = sizes.iter().map(|(_, size)| size).sum();
        let expect = Expectation { size: Some(total), hash: None, max_size: None, size_hint: Some(total) };
        let received = match direct_upload::assemble(&state, direct, &store_upload, &parts, &expect).await {
            Ok(received) => received,
            Err(err) => {
                // the store may have consumed the parts; a new start begins afresh
                state.catalog.delete_upload(&upload.upload_id).await?;
                return Err(err);
            }
        };
        let ingested = state.ingest.commit(received, user).await?;
        let answer = json!({
            "id": file_id.as_str(),
            "location": location(&state, &file_id),
            "etag": format!("\"{}-{}\"", ingested.blob.sha256, parts.len()),
            "filesize": ingested.blob.size,
            "checksum": ingested.blob.sha256,
        });
        state.catalog.complete_upload(&upload.upload_id, &answer, &ingested.blob).await?;
        return Ok(Json(answer));
    }
    let stored = state.catalog.parts(&upload.upload_id).await?;
    let by_number: HashMap<u32, &Part> = stored.iter().map(|p| (p.part_num, p)).collect();
    let mut ordered = Vec::with_capacity(listed.len());
    for part in &listed {
        let found = by_number
            .get(&part.part_number)
            .ok_or_else(|| invalid("missing_part", format!("part {} was never uploaded", part.part_number)))?;
        if part.etag.trim().trim_matches('"') != found.etag {
            return Err(invalid(
                "etag_mismatch",
                format!("part {}: the ETag does not match the uploaded part", part.part_number),
            ));
        }
        ordered.push(*found);
    }
    check_part_sizes(&ordered.iter().map(|p| (p.part_num, p.size)).collect::<Vec<_>>())?;
    let staged: Vec<Staged> = ordered.iter().map(|p| Staged { key: p.staging_key.clone(), size: p.size }).collect();
    let total: u64 = ordered.iter().map(|p| p.size).sum();
    let expect = Expectation { size: Some(total), hash: None, max_size: None, size_hint: Some(total) };
    let received = state.ingest.assemble(&staged, &expect).await?;
    let ingested = state.ingest.commit(received, user).await?;
    let answer = json!({
        "id": file_id.as_str(),
        "location": location(&state, &file_id),
        "etag": multipart_etag(&ordered),
        "filesize": ingested.blob.size,
        "checksum": ingested.blob.sha256,
    });
    state.catalog.complete_upload(&upload.upload_id, &answer, &ingested.blob).await?;
    state.ingest.discard_staged(&staged).await?;
    Ok(Json(answer))
}
