//! The presigned multipart family's `file_id`: a UUID (normalised to lowercase) or
//! `[A-Za-z0-9_-]{1,64}`.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(String);

impl FileId {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        if is_uuid(raw) {
            return Ok(Self(raw.to_ascii_lowercase()));
        }
        let valid =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(super::ParseError::new("file_id must be a UUID or 1-64 characters of A-Z a-z 0-9 _ -"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_uuid(raw: &str) -> bool {
    let groups: Vec<&str> = raw.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_lowercased_and_names_kept() {
        assert_eq!(
            FileId::parse("0F8FAD5B-D9CB-469F-A165-70867728950E").unwrap().as_str(),
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(FileId::parse("Clip_01-B").unwrap().as_str(), "Clip_01-B");
        assert!(FileId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "a b", "a/b", "../x", "ünï", &"a".repeat(65), "a.b"] {
            assert!(FileId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
