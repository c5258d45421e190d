//! API token scopes and sets of them.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Basic,
    UserInfo,
    Upload,
    Read,
    Delete,
    Manage,
    Share,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::Basic,
        Scope::UserInfo,
        Scope::Upload,
        Scope::Read,
        Scope::Delete,
        Scope::Manage,
        Scope::Share,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Basic => "basic",
            Scope::UserInfo => "user.info",
            Scope::Upload => "upload",
            Scope::Read => "read",
            Scope::Delete => "delete",
            Scope::Manage => "manage",
            Scope::Share => "share",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl std::str::FromStr for Scope {
    type Err = super::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s.trim()).ok_or_else(|| {
            super::ParseError::new(format!(
                "unknown scope '{s}' (expected one of basic, user.info, upload, read, delete, manage, share, admin)"
            ))
        })
    }
}

/// A non-empty set of scopes, rendered as the comma list `upload,read` in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u16);

impl ScopeSet {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Canonical storage form: scopes in their fixed order, comma separated.
    pub fn to_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = super::ParseError;
    /// Parses a comma list; empty entries are ignored but at least one scope is required.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let set =
            s.split(',').filter(|part| !part.trim().is_empty()).map(str::parse).collect::<Result<ScopeSet, _>>()?;
        if set.0 == 0 {
            return Err(super::ParseError::new("at least one scope is required"));
        }
        Ok(set)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_round_trip_in_canonical_order() {
        let set: ScopeSet = "read, upload,,delete".parse().unwrap();
        assert!(set.contains(Scope::Upload) && set.contains(Scope::Read));
        assert!(!set.contains(Scope::Admin));
        assert_eq!(set.to_list(), "upload,read,delete");
        assert_eq!(set.to_list().parse::<ScopeSet>().unwrap(), set);
    }

    #[test]
    fn unknown_or_empty_scopes_are_refused() {
        assert!("upload,everything".parse::<ScopeSet>().is_err());
        assert!(" , ".parse::<ScopeSet>().is_err());
    }
}
