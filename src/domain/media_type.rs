//! The gallery's media types (API.md §4 `media_type`).

use serde::{Deserialize, Serialize};

use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Video,
    Audio,
    Document,
    Other,
}

impl MediaType {
    pub const ALL: [MediaType; 5] =
        [MediaType::Image, MediaType::Video, MediaType::Audio, MediaType::Document, MediaType::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Document => "document",
            MediaType::Other => "other",
        }
    }

    /// Parses a media type as clients spell it (exactly, lower case).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            ParseError::new(format!("media_type '{raw}' is not one of {}", known.join(", ")))
        })
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::MediaType;

    #[test]
    fn media_types_round_trip_and_refuse_others() {
        for t in MediaType::ALL {
            assert_eq!(MediaType::parse(t.as_str()), Ok(t));
        }
        assert!(MediaType::parse("Image").is_err());
        assert!(MediaType::parse("photo").unwrap_err().to_string().contains("image, video"));
    }
}
