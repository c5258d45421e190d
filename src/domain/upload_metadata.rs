//! tus `Upload-Metadata` (tus 1.0.0, creation extension): comma-separated pairs of a key and
//! an optional Base64 value, `filename d29ybGQ=,is_confidential`. Keys are non-empty, unique,
//! and hold no space or comma. The header is kept as sent: HEAD returns it unchanged.

use base64::Engine;

/// Longest `Upload-Metadata` accepted (it is stored with the upload and sent back on HEAD).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMetadata {
    raw: String,
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

impl UploadMetadata {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let bad = |why: String| super::ParseError::new(format!("Upload-Metadata: {why}"));
        if raw.len() > MAX_METADATA_BYTES {
            return Err(bad(format!("longer than {MAX_METADATA_BYTES} bytes")));
        }
        let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match pair.split_once(' ') {
                Some((key, value)) => (key, Some(value.trim())),
                None => (pair, None),
            };
            if key.bytes().any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii()) {
                return Err(bad(format!("'{key}' is not a valid key")));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("key '{key}' appears twice")));
            }
            let value = match value {
                // a key with a separating space but no value counts as having none
                Some("") | None => None,
                Some(encoded) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|_| bad(format!("the value of '{key}' is not Base64")))?,
                ),
            };
            pairs.push((key.to_owned(), value));
        }
        Ok(Self { raw: raw.to_owned(), pairs })
    }

    /// The header exactly as the client sent it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The decoded value of `key` (`Some(None)`: the key without a value).
    pub fn get(&self, key: &str) -> Option<Option<&[u8]>> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_deref())
    }

    /// The value of `key` as text: `None` when absent or empty; refused when not UTF-8.
    pub fn text(&self, key: &str) -> Result<Option<String>, super::ParseError> {
        match self.get(key).flatten() {
            None => Ok(None),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if text.trim().is_empty() => Ok(None),
                Ok(text) => Ok(Some(text.to_owned())),
                Err(_) => Err(super::ParseError::new(format!("Upload-Metadata: the value of '{key}' is not UTF-8"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_and_the_header_is_kept() {
        let raw = "filename d29ybGQubXA0,is_confidential, filetype dmlkZW8vbXA0";
        let metadata = UploadMetadata::parse(raw).unwrap();
        assert_eq!(metadata.raw(), raw);
        assert_eq!(metadata.text("filename").unwrap().as_deref(), Some("world.mp4"));
        assert_eq!(metadata.get("is_confidential"), Some(None));
        assert_eq!(metadata.text("filetype").unwrap().as_deref(), Some("video/mp4"));
        assert_eq!(metadata.get("missing"), None);
        assert!(UploadMetadata::parse("").unwrap().get("x").is_none());
    }

    #[test]
    fn malformed_metadata_is_refused() {
        for bad in ["filename !!notbase64", "a YQ==,a Yg==", "k\u{1}ey YQ==", "ké YQ=="] {
            assert!(UploadMetadata::parse(bad).is_err(), "{bad}");
        }
        assert!(UploadMetadata::parse(&"k YQ==,".repeat(3000)).is_err(), "too long");
        let latin1 = UploadMetadata::parse("name 6Q==").unwrap();
        assert!(latin1.text("name").is_err(), "values read as text must be UTF-8");
    }
}
