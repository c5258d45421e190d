//! Names of gallery events as devices give them: a file name (`garage.jpg`) or a caption
//! (`doorbell ring`), shown back in listings and used to guess a media type.

/// Trimmed, non-empty, without control characters (NUL, line breaks, tabs, DEL, C1): a
/// name is a line of text wherever it is shown, and a NUL ends it early in many a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(String);

impl EventName {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(super::ParseError::new("a name is required"));
        }
        if name.chars().any(char::is_control) {
            return Err(super::ParseError::new(format!(
                "the name {:?} holds a control character (NUL, line break, tab…)",
                name
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_line_of_text() {
        assert_eq!(EventName::parse("  doorbell ring ").unwrap().as_str(), "doorbell ring");
        assert_eq!(EventName::parse("Haustür — café ☕.jpg").unwrap().as_str(), "Haustür — café ☕.jpg");
        for bad in ["", "  ", "a\u{0}b", "line\nbreak", "tab\there", "bell\u{7}", "del\u{7f}", "c1\u{85}x"] {
            assert!(EventName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
