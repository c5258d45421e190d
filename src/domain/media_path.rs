//! Volume-absolute media paths (API.md §1): `/` + segments, no empty segments, no `.` or
//! `..`, no trailing `/`, no NUL or control characters.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaPath(String);

impl MediaPath {
    /// A file path: at least one segment.
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let err = |why: &str| super::ParseError::new(format!("invalid media_path: {why}"));
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(err("must start with '/'"));
        };
        if rest.is_empty() {
            return Err(err("must name a file, not the volume root"));
        }
        if raw.len() > 4096 {
            return Err(err("longer than 4096 bytes"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("control characters are not allowed"));
        }
        for segment in rest.split('/') {
            match segment {
                "" => return Err(err("empty segment or trailing '/'")),
                "." | ".." => return Err(err("'.' and '..' segments are not allowed")),
                _ => {}
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// A grant prefix: `/` (the whole volume) or a path as above.
    pub fn parse_prefix(raw: &str) -> Result<Self, super::ParseError> {
        if raw == "/" { Ok(Self::root()) } else { Self::parse(raw) }
    }

    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// True when this path is `prefix` itself or lies beneath it (segment-wise, so
    /// `/photos2` is not under `/photos`).
    pub fn is_under(&self, prefix: &MediaPath) -> bool {
        prefix.0 == "/"
            || self.0 == prefix.0
            || (self.0.starts_with(&prefix.0) && self.0.as_bytes()[prefix.0.len()] == b'/')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MediaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MediaPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        assert!(MediaPath::parse("/a.jpg").is_ok());
        assert!(MediaPath::parse("/DCIM/2026/IMG 0001.HEIC").is_ok());
        assert!(MediaPath::parse("/.hidden/file").is_ok());
    }

    #[test]
    fn refuses_malformed_paths() {
        for bad in ["", "/", "a.jpg", "/a//b", "/a/", "/a/./b", "/a/../b", "/..", "/a\0b", "/a\nb"] {
            assert!(MediaPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prefix_containment_is_segment_wise() {
        let photos = MediaPath::parse_prefix("/photos").unwrap();
        assert!(MediaPath::parse("/photos/a.jpg").unwrap().is_under(&photos));
        assert!(!MediaPath::parse("/photos2/a.jpg").unwrap().is_under(&photos));
        assert!(MediaPath::parse("/x").unwrap().is_under(&MediaPath::root()));
    }
}
