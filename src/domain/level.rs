//! User levels, ordered: viewer < uploader < manager < admin.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Viewer,
    Uploader,
    Manager,
    Admin,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Viewer, Level::Uploader, Level::Manager, Level::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Viewer => "viewer",
            Level::Uploader => "uploader",
            Level::Manager => "manager",
            Level::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = super::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            super::ParseError::new(format!("unknown level '{s}' (expected viewer, uploader, manager or admin)"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_parse_case_insensitively() {
        assert!(Level::Viewer < Level::Uploader && Level::Manager < Level::Admin);
        assert_eq!("Admin".parse::<Level>().unwrap(), Level::Admin);
        assert!("root".parse::<Level>().is_err());
    }
}
