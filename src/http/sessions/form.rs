//! Session-family request bodies arrive as JSON, URL-encoded forms or multipart forms (curl
//! `-d` and `-F`), sometimes with values in the query string. [`Fields`] reads them all
//! into one text map so each option is parsed once, the same way.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::Value;

use crate::domain::MAX_BLOB_SIZE;
use crate::http::error::ApiError;
use crate::http::extract::read_json_value;

/// Text fields of a small request body (query-string values fill the gaps).
pub struct Fields(pub HashMap<String, String>);

const FORM_LIMIT: usize = 1024 * 1024;

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut fields = HashMap::new();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut form = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_form", format!("malformed multipart form: {e}")))?;
            while let Some(field) =
                form.next_field().await.map_err(|e| ApiError::bad_request("invalid_form", e.to_string()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let text = field.text().await.map_err(|e| ApiError::bad_request("invalid_form", e.to_string()))?;
                fields.insert(name, text);
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::to_bytes(req.into_body(), FORM_LIMIT)
                .await
                .map_err(|_| ApiError::bad_request("invalid_form", "the form body is too large"))?;
            fields.extend(form_urlencoded::parse(&bytes).into_owned());
        } else {
            match read_json_value(req, FORM_LIMIT).await? {
                Value::Object(map) => {
                    for (key, value) in map {
                        let text = match value {
                            Value::String(s) => s,
                            Value::Null => continue,
                            // numbers and booleans are taken as their text (`folder_id: 7` → "7")
                            other => other.to_string(),
                        };
                        fields.insert(key, text);
                    }
                }
                _ => return Err(ApiError::bad_request("invalid_request", "the body must be a JSON object or a form")),
            }
        }
        for (key, value) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            fields.entry(key).or_insert(value);
        }
        Ok(Fields(fields))
    }
}

impl Fields {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A size or count; absent or 0 means no limit. Stored as i64, as every size is.
    pub fn limit(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(raw) => match raw.parse::<u64>() {
                Ok(0) => Ok(None),
                Ok(n) if n <= MAX_BLOB_SIZE => Ok(Some(n)),
                _ => Err(ApiError::bad_request(
                    "invalid_option",
                    format!("{name} must be an integer from 0 to {MAX_BLOB_SIZE}"),
                )),
            },
        }
    }

    /// `0/1/true/false` (any case).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(_) => Err(ApiError::bad_request("invalid_option", format!("{name} must be 0, 1, true or false"))),
        }
    }
}

/// A `folder_id`: `[A-Za-z0-9_-]{1,64}`.
pub fn parse_folder_key(raw: &str) -> Result<String, ApiError> {
    let valid =
        (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request("invalid_folder_id", "folder_id must be 1-64 characters of A-Z a-z 0-9 _ -"))
    }
}
