//! Integer identifiers of catalog rows. Each kind has its own type so a device id can never
//! be passed where a user id is expected.

use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Catalog id of a ", $what, ".")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = super::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.parse::<i64>() {
                    Ok(v) if v > 0 && !s.starts_with('+') => Ok(Self(v)),
                    _ => Err(super::ParseError::new(format!(concat!("'{}' is not a valid ", $what, " id"), s))),
                }
            }
        }
    };
}

row_id!(UserId, "user");
row_id!(TokenId, "token");
row_id!(DeviceId, "device");
row_id!(VolumeId, "volume");
row_id!(GrantId, "media grant");
row_id!(WebSessionId, "web session");

/// A byte count as stored in the catalog (an `i64` column), always non-negative.
pub type BlobSize = u64;

/// The largest byte count a catalog column holds (API.md: sizes are unsigned integers stored
/// as i64). No file has a larger size; a declared one is refused where it enters.
pub const MAX_BLOB_SIZE: BlobSize = i64::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_positive_decimal_only() {
        assert_eq!("42".parse::<UserId>().unwrap(), UserId(42));
        for bad in ["0", "-1", "+3", "abc", "", "1.0", "99999999999999999999"] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad} accepted");
        }
    }
}
