//! Understanding stored media. Sniffing a file's media type from its first bytes runs
//! inline (responses need it); everything else runs as the `media_process` job
//! ([`MediaProcessor`]), once per blob, after the upload has been answered:
//!
//! ```text
//! classify (magic bytes) → image: EXIF (`exif`) + decode with limits → oriented thumbnail (`picture`,
//!                          or the camera's own when it is large enough: `exif_thumbnail`)
//!                        → HEIF photo: EXIF + heif-convert's upright JPEG → thumbnail
//!                        → video: ffprobe facts + one frame from ffmpeg, both with a timeout (`video`)
//!                        → anything else (AVIF, RAW, documents): what EXIF says, no thumbnail
//! ```
//! Media a browser cannot show gets a playable rendition from the `transcode` job
//! ([`RenditionMaker`]): which does is decided by `transcode::plan`, made by ffmpeg or
//! heif-convert. Content over 16 MiB that came without its device top-hash gets it from the
//! `device_hash` job ([`DeviceHashes`]). The functions here are pure over bytes or a file: no
//! catalog, no store, no HTTP; only the jobs' handlers (`process`, `rendition`,
//! `device_hash`) read blobs and record results.

mod device_hash;
mod exif;
mod exif_thumbnail;
mod picture;
mod process;
mod rendition;
mod sniff;
mod transcode;
mod video;
mod work;

use serde::{Deserialize, Serialize};

pub use device_hash::DeviceHashes;
pub use exif::read_exif;

pub use picture::{Decoded, Limits, Thumbnail, decode_image};
pub use process::MediaProcessor;
pub use rendition::RenditionMaker;
pub use sniff::{Sniffed, sniff};
pub use transcode::{Plan, heif_to_jpeg, plan, transcode_video, video_command};
pub use video::{ToolError, Tools, probe_video, read_probe, video_frame};

/// What a decodable image's bytes say: its EXIF facts and, within [`Limits::default`], its
/// size and a thumbnail whose long side is at most `side`. What the media job runs, and
/// what the fuzzer feeds hostile files to.
pub fn read_image(
    bytes: &[u8],
    format: image::ImageFormat,
    side: u32,
    meta: Metadata,
) -> (Metadata, Result<Decoded, Unreadable>) {
    let mut meta = meta;
    read_exif(bytes, &mut meta);
    let decoded = decode_image(bytes, format, side, Limits::default());
    (meta, decoded)
}

/// Why a file's bytes could not be understood (shown with the item, so written for people).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// What Ferry learnt about a file (stored as JSON in `blob_media.metadata`). Absent facts
/// are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `image`, `video` or `other`.
    pub kind: String,
    /// The container or codec family from the bytes: `jpeg`, `png`, `heif`, `mp4`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Pixel size as displayed (after the orientation is applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Capture time, ISO 8601: with its offset when the file records one, else the
    /// camera's local time without a zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    /// EXIF orientation, 1–8 (1 = upright).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
    /// Seconds (videos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The video stream's codec (videos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// The first audio stream's codec (videos with sound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// The video stream's pixel format, as ffprobe names it (`yuv420p`, `yuv420p10le`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    /// Bits a second of the whole file (videos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<u64>,
    /// The video's transfer function, as ffprobe names it: `arib-std-b67` (HLG) and
    /// `smpte2084` (PQ) are HDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_transfer: Option<String>,
}

/// A position: degrees (north and east positive) and metres above sea level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
}

impl Gps {
    /// A position, when the numbers are one (crafted files carry NaN, infinities, 300°…).
    pub fn checked(lat: f64, lon: f64, alt: Option<f64>) -> Option<Self> {
        let ok = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
        ok.then(|| Gps { lat, lon, alt: alt.filter(|a| a.is_finite() && a.abs() < 1.0e6) })
    }
}

/// What the first bytes say a file is, for processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An image the `image` crate is built to decode.
    Decodable(image::ImageFormat),
    /// An image without a decoder here (HEIC/HEIF, AVIF, camera RAW): EXIF only.
    OtherImage(&'static str),
    Video(&'static str),
    Other,
}

impl Class {
    /// Classifies by magic bytes only: a file's name or extension is never trusted.
    pub fn of(head: &[u8]) -> Self {
        use image::ImageFormat as F;
        let Some(kind) = infer::get(head) else { return Class::Other };
        let format = match kind.mime_type() {
            "image/jpeg" => F::Jpeg,
            "image/png" => F::Png,
            "image/webp" => F::WebP,
            "image/gif" => F::Gif,
            "image/bmp" => F::Bmp,
            "image/tiff" => F::Tiff,
            _ => {
                return match kind.matcher_type() {
                    infer::MatcherType::Image => Class::OtherImage(kind.extension()),
                    infer::MatcherType::Video => Class::Video(kind.extension()),
                    _ => Class::Other,
                };
            }
        };
        Class::Decodable(format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_bytes() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R'];
        assert_eq!(Class::of(&png), Class::Decodable(image::ImageFormat::Png));
        let heic = [0, 0, 0, 0x10, b'f', b't', b'y', b'p', b'h', b'e', b'i', b'c', 0, 0, 0, 0];
        assert!(matches!(Class::of(&heic), Class::OtherImage(_)));
        let mp4 = [0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'm', b'p', b'4', b'2', 0, 0, 0, 0];
        assert!(matches!(Class::of(&mp4), Class::Video(_)));
        assert_eq!(Class::of(b"just words"), Class::Other);
    }

    #[test]
    fn crafted_positions_are_dropped() {
        assert!(Gps::checked(f64::NAN, 1.0, None).is_none());
        assert!(Gps::checked(91.0, 1.0, None).is_none());
        assert_eq!(Gps::checked(1.0, 2.0, Some(f64::INFINITY)).unwrap().alt, None);
    }
}
