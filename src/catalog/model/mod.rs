//! Rows of the catalog as the rest of Ferry sees them. Serialised field names are the
//! admin CLI's JSON contract.

mod content;
mod identities;
mod jobs;
mod library;
mod tus;
mod uploads;

pub use content::*;
pub use identities::*;
pub use jobs::*;
pub use library::*;
pub use tus::*;
pub use uploads::*;
