//! A library folder's key (the session family's `folder_id`): `[A-Za-z0-9_-]{1,64}`.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderKey(String);

impl FolderKey {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let valid =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(super::ParseError::new("folder_id must be 1-64 characters of A-Z a-z 0-9 _ -"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FolderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_keys_are_short_and_plain() {
        assert_eq!(FolderKey::parse("tus_2024-x").unwrap().as_str(), "tus_2024-x");
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(FolderKey::parse(bad).is_err(), "{bad}");
        }
    }
}
