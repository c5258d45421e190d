//! Session-family request bodies arrive as JSON, URL-encoded forms or multipart forms (curl
//! `-d` and `-F`), sometimes with values in the query string. [`Fields`] reads them all
//! into one map so each option is parsed once, the same way. Form and query values are
//! text; JSON values keep their kind, and each typed getter accepts only the kinds API.md
//! gives its option (a JSON `true` is no folder name, `5` no extension list).

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::Value;

use crate::domain::{ErrorCode, MAX_BLOB_SIZE};
use crate::http::body_idle::{stalled, unreadable_form};
use crate::http::error::ApiError;
use crate::http::extract::{parse_flag, read_json_value};

/// The fields of a small request body (query-string values fill the gaps); form values
/// are JSON strings here.
pub struct Fields(pub HashMap<String, Value>);

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
                .map_err(|e| ApiError::new(ErrorCode::InvalidForm, format!("malformed multipart form: {e}")))?;
            while let Some(field) = form.next_field().await.map_err(|e| unreadable_form(&e))? {
                let name = field.name().unwrap_or_default().to_owned();
                let text = field.text().await.map_err(|e| unreadable_form(&e))?;
                fields.insert(name, Value::String(text));
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::to_bytes(req.into_body(), FORM_LIMIT).await.map_err(|e| {
                stalled(&e).unwrap_or_else(|| ApiError::new(ErrorCode::InvalidForm, "the form body is too large"))
            })?;
            fields.extend(form_urlencoded::parse(&bytes).into_owned().map(|(k, v)| (k, Value::String(v))));
        } else {
            match read_json_value(req, FORM_LIMIT).await? {
                // null is an absent option
                Value::Object(map) => fields.extend(map.into_iter().filter(|(_, v)| !v.is_null())),
                _ => return Err(ApiError::new(ErrorCode::InvalidRequest, "the body must be a JSON object or a form")),
            }
        }
        for (key, value) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            fields.entry(key).or_insert(Value::String(value));
        }
        Ok(Fields(fields))
    }
}

impl Fields {
    /// A text option: a string (blank counts as absent); any other kind is 400 `code`.
    pub fn text(&self, name: &str, code: ErrorCode) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
            Some(_) => Err(ApiError::new(code, format!("{name} must be a string"))),
        }
    }

    /// `folder_id`: a string, or a JSON integer taken as its decimal string (API.md
    /// Conventions); then checked by [`parse_folder_key`].
    pub fn folder_key(&self) -> Result<Option<String>, ApiError> {
        match self.0.get("folder_id") {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => parse_folder_key(&n.to_string()).map(Some),
            Some(Value::String(_)) | None => {
                self.text("folder_id", ErrorCode::InvalidFolderId)?.map(parse_folder_key).transpose()
            }
            Some(_) => Err(invalid_folder_id()),
        }
    }

    /// A size or count: a JSON integer or a decimal string; absent or 0 means no limit.
    /// Stored as i64, as every size is.
    pub fn limit(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let bad =
            || ApiError::new(ErrorCode::InvalidOption, format!("{name} must be an integer from 0 to {MAX_BLOB_SIZE}"));
        let value = match self.0.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
        };
        match value {
            0 => Ok(None),
            n if n <= MAX_BLOB_SIZE => Ok(Some(n)),
            _ => Err(bad()),
        }
    }

    /// A boolean: a JSON boolean, the JSON numbers 0 and 1, or the text `0/1/true/false`
    /// (any case).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        let bad = || ApiError::new(ErrorCode::InvalidOption, format!("{name} must be 0, 1, true or false"));
        match self.0.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(bad()),
            },
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) => parse_flag(s.trim()).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }
}

fn invalid_folder_id() -> ApiError {
    ApiError::new(ErrorCode::InvalidFolderId, "folder_id must be 1-64 characters of A-Z a-z 0-9 _ -")
}

/// A `folder_id`: `[A-Za-z0-9_-]{1,64}`.
pub fn parse_folder_key(raw: &str) -> Result<String, ApiError> {
    crate::domain::FolderKey::parse(raw).map(|key| key.as_str().to_owned()).map_err(|_| invalid_folder_id())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Fields {
        let Value::Object(map) = value else { panic!("an object") };
        Fields(map.into_iter().collect())
    }

    #[test]
    fn each_getter_takes_only_its_kinds() {
        let f = fields(json!({
            "n": 7, "s": "x", "b": true, "flag_text": "TRUE", "one": 1, "two": 2, "big": 9_223_372_036_854_775_808u64,
            "list": ["a"], "neg": -1, "frac": 1.5, "digits": "12", "blank": " "
        }));
        assert_eq!(f.text("s", ErrorCode::InvalidForm).unwrap(), Some("x"));
        assert_eq!(f.text("blank", ErrorCode::InvalidForm).unwrap(), None);
        for other in ["n", "b", "list"] {
            assert_eq!(f.text(other, ErrorCode::InvalidForm).unwrap_err().code, ErrorCode::InvalidForm, "{other}");
        }
        assert_eq!((f.flag("b", false).unwrap(), f.flag("one", false).unwrap()), (true, true));
        assert!(
            f.flag("flag_text", false).unwrap() && f.flag("absent", true).unwrap() && !f.flag("blank", false).unwrap()
        );
        for bad in ["two", "frac", "list", "s", "neg"] {
            assert!(f.flag(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            (f.limit("n").unwrap(), f.limit("digits").unwrap(), f.limit("blank").unwrap()),
            (Some(7), Some(12), None)
        );
        for bad in ["b", "frac", "neg", "big", "list", "s"] {
            assert!(f.limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_folder_id_is_a_string_or_an_integer() {
        assert_eq!(fields(json!({"folder_id": 2026})).folder_key().unwrap().as_deref(), Some("2026"));
        assert_eq!(fields(json!({"folder_id": "trip-1"})).folder_key().unwrap().as_deref(), Some("trip-1"));
        assert_eq!(fields(json!({})).folder_key().unwrap(), None);
        for bad in [json!(true), json!(1.5), json!(["a"]), json!({"a": 1}), json!("a/b")] {
            let err = fields(json!({ "folder_id": bad })).folder_key().unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidFolderId, "{bad}");
        }
    }
}
