//! Understanding stored media. For now: sniffing a file's media type from its first bytes
//! (inline, since responses need it); EXIF and thumbnails come as jobs (issue 8).

mod sniff;

pub use sniff::{Sniffed, sniff};
