//! The protocol's headers: parsing what clients send (a bad value is a 400 naming the
//! header; nothing is stored) and rendering where an upload stands.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::catalog::TusConcat;
use crate::domain::ErrorCode;
use crate::http::error::ApiError;
use crate::resumable::{ConcatRequest, Status, is_upload_id};

pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
pub const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
pub const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
pub const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
pub const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
pub const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
pub const UPLOAD_CONCAT: HeaderName = HeaderName::from_static("upload-concat");
pub const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
/// Where a finished upload's file can be fetched with the same credential (Ferry's own: tus
/// says nothing of where an upload goes, and a library file has no other way to be found).
pub const FERRY_LOCATION: HeaderName = HeaderName::from_static("ferry-location");

/// The content type of PATCH bodies (and of creation-with-upload).
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName, code: ErrorCode) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| v.to_str().map(str::trim).map_err(|_| ApiError::new(code, format!("{name} is not text"))))
        .transpose()
}

/// A non-negative integer header (`Upload-Offset`, `Upload-Length`): digits only.
pub fn number(headers: &HeaderMap, name: &HeaderName, code: ErrorCode) -> Result<Option<u64>, ApiError> {
    let Some(raw) = text(headers, name, code)? else { return Ok(None) };
    let valid = !raw.is_empty() && raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit());
    let parsed = valid.then(|| raw.parse::<u64>().ok()).flatten().filter(|n| i64::try_from(*n).is_ok());
    parsed.map(Some).ok_or_else(|| ApiError::new(code, format!("{name} must be a non-negative integer, not '{raw}'")))
}

/// Whether the request's `Content-Type` is the protocol's.
pub fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

pub fn metadata(headers: &HeaderMap) -> Result<Option<crate::domain::UploadMetadata>, ApiError> {
    let Some(raw) = text(headers, &UPLOAD_METADATA, ErrorCode::InvalidMetadata)? else { return Ok(None) };
    crate::domain::UploadMetadata::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMetadata, e.to_string()))
}

pub fn checksum(headers: &HeaderMap) -> Result<Option<crate::domain::UploadChecksum>, ApiError> {
    let Some(raw) = text(headers, &UPLOAD_CHECKSUM, ErrorCode::InvalidChecksum)? else { return Ok(None) };
    crate::domain::UploadChecksum::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::new(ErrorCode::InvalidChecksum, e.to_string()))
}

/// `Upload-Concat: partial` or `final;<url> <url>…` (each URL absolute or a path ending in
/// an upload id).
pub fn concat(headers: &HeaderMap) -> Result<Option<ConcatRequest>, ApiError> {
    let Some(raw) = text(headers, &UPLOAD_CONCAT, ErrorCode::InvalidConcat)? else { return Ok(None) };
    if raw == "partial" {
        return Ok(Some(ConcatRequest::Partial));
    }
    let bad = |why: String| ApiError::new(ErrorCode::InvalidConcat, format!("Upload-Concat: {why}"));
    let urls = raw.strip_prefix("final;").ok_or_else(|| bad("must be 'partial' or 'final;<upload URLs>'".into()))?;
    let ids = urls
        .split_whitespace()
        .map(|url| {
            let path = url.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
            match path.rsplit_once("/files/") {
                Some((_, id)) if is_upload_id(id) => Ok(id.to_owned()),
                _ => Err(bad(format!("'{url}' is not an upload URL of this server"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(bad("a final upload names its partial uploads".into()));
    }
    Ok(Some(ConcatRequest::Final(ids)))
}

/// Puts where the upload stands into `headers` (HEAD shows all of it; `full: false` only
/// the offset, expiry and file location that PATCH and creation answers carry). `public` is
/// the base of links.
pub fn render(status: &Status, headers: &mut HeaderMap, full: bool, public: &str) {
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(status.offset));
    if let Some(expires) = status.expires_ms {
        let date = crate::clock::http_date(expires);
        headers.insert(UPLOAD_EXPIRES, HeaderValue::from_str(&date).expect("dates are ASCII"));
    }
    if let Some(location) = status.result.as_ref().and_then(|r| file_location(r, public)) {
        headers.insert(FERRY_LOCATION, location);
    }
    if !full {
        return;
    }
    match status.length {
        Some(length) => headers.insert(UPLOAD_LENGTH, HeaderValue::from(length)),
        None => headers.insert(UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
    };
    if let Some(metadata) = status.metadata.as_deref().and_then(|m| HeaderValue::from_str(m).ok()) {
        headers.insert(UPLOAD_METADATA, metadata);
    }
    let concat = match &status.concat {
        None => None,
        Some(TusConcat::Partial) => Some("partial".to_owned()),
        Some(TusConcat::Final(ids)) => {
            Some(format!("final;{}", ids.iter().map(|id| format!("/files/{id}")).collect::<Vec<_>>().join(" ")))
        }
    };
    if let Some(value) = concat.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(UPLOAD_CONCAT, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The URL of what a finished upload became: a library file, or a gallery event's file.
fn file_location(result: &serde_json::Value, public: &str) -> Option<HeaderValue> {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let segment = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    let url = match (result["file_id"].as_str(), result["event_id"].as_str(), result["device"].as_str()) {
        (Some(file), _, _) => format!("{public}/api/files/{}", segment(file)),
        (None, Some(event), Some(device)) => {
            format!("{public}/api/gallery/{}/events/{}/file", segment(device), segment(event))
        }
        _ => return None,
    };
    HeaderValue::from_str(&url).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn offsets_are_plain_non_negative_integers() {
        assert_eq!(number(&with(&UPLOAD_OFFSET, "42"), &UPLOAD_OFFSET, ErrorCode::InvalidOffset).unwrap(), Some(42));
        assert_eq!(number(&HeaderMap::new(), &UPLOAD_OFFSET, ErrorCode::InvalidOffset).unwrap(), None);
        for bad in ["-1", "1.5", "+3", "", "0x10", "99999999999999999999", "9223372036854775808"] {
            assert!(number(&with(&UPLOAD_OFFSET, bad), &UPLOAD_OFFSET, ErrorCode::InvalidOffset).is_err(), "{bad}");
        }
    }

    #[test]
    fn concatenation_names_upload_urls() {
        let (a, b) = ("0".repeat(32), "f".repeat(32));
        let raw = format!("final;http://host/files/{a} /files/{b}");
        assert_eq!(concat(&with(&UPLOAD_CONCAT, &raw)).unwrap(), Some(ConcatRequest::Final(vec![a, b])));
        assert_eq!(concat(&with(&UPLOAD_CONCAT, "partial")).unwrap(), Some(ConcatRequest::Partial));
        for bad in ["final;", "final;/files/xyz", "whole", "final;/other/0000"] {
            assert!(concat(&with(&UPLOAD_CONCAT, bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn finished_uploads_say_where_their_file_is() {
        let file = serde_json::json!({"file_id": "01J", "folder_id": "tus"});
        assert_eq!(file_location(&file, "http://h").unwrap(), "http://h/api/files/01J");
        let event = serde_json::json!({"event_id": "evt_1", "device": "porch cam"});
        assert_eq!(file_location(&event, "http://h").unwrap(), "http://h/api/gallery/porch%20cam/events/evt_1/file");
        assert!(file_location(&serde_json::json!({}), "http://h").is_none());
    }

    #[test]
    fn the_content_type_is_the_protocols() {
        assert!(is_offset_stream(&with(&header::CONTENT_TYPE, "application/offset+octet-stream")));
        assert!(!is_offset_stream(&with(&header::CONTENT_TYPE, "application/octet-stream")));
        assert!(!is_offset_stream(&HeaderMap::new()));
    }
}
