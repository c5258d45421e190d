//! Names of users, devices, volumes and grants as people type them on the CLI.

/// 1–64 characters, no control characters, no `/` (a `/` separates `USER/DEVICE`), no
/// leading or trailing whitespace, and not all digits (an all-digit name would be
/// mistaken for an id wherever a name-or-id is accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let err = |why: &str| super::ParseError::new(format!("invalid name '{raw}': {why}"));
        if raw.is_empty() || raw.chars().count() > 64 {
            return Err(err("must be 1 to 64 characters"));
        }
        if raw.trim() != raw {
            return Err(err("leading or trailing whitespace"));
        }
        if raw.chars().any(|c| c.is_control() || c == '/') {
            return Err(err("control characters and '/' are not allowed"));
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(err("must not be all digits"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_people_words_and_refuse_ambiguity() {
        assert!(Name::parse("alice").is_ok());
        assert!(Name::parse("Kitchen camera 2").is_ok());
        for bad in ["", " x", "x ", "a/b", "123", "tab\there", &"x".repeat(65)] {
            assert!(Name::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
