//! The `transcode*` settings: which media gets a playable rendition, how large, and how long
//! one may take.

use std::time::Duration;

use super::{ConfigError, parse_duration};

/// Which media gets a rendition (`FERRY_TRANSCODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscodePolicy {
    /// What a browser cannot show: videos other than H.264/AAC MP4 and VP8/VP9/AV1 WebM,
    /// and HEIF photos.
    Auto,
    /// None.
    Off,
    /// Every video and HEIF photo, playable or not.
    Always,
}

/// How renditions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transcode {
    pub policy: TranscodePolicy,
    /// Long side, in pixels, of a transcoded video.
    pub max_dimension: u32,
    /// Time limit of one transcode (ffmpeg) run.
    pub timeout: Duration,
}

pub(super) fn transcode_config<'a>(get: &impl Fn(&'static str) -> Option<&'a str>) -> Result<Transcode, ConfigError> {
    let bad = |key: &'static str, message: String| ConfigError::Value { key, message };
    let policy = match get("transcode").unwrap_or("auto") {
        "auto" => TranscodePolicy::Auto,
        "off" => TranscodePolicy::Off,
        "always" => TranscodePolicy::Always,
        other => return Err(bad("transcode", format!("'{other}' (expected auto, off or always)"))),
    };
    let max_dimension = match get("transcode_max_dimension").unwrap_or("1080").parse::<u32>() {
        Ok(px) if (16..=8192).contains(&px) => px,
        _ => return Err(bad("transcode_max_dimension", "must be a number of pixels from 16 to 8192".into())),
    };
    let timeout = parse_duration(get("transcode_timeout").unwrap_or("2h"))
        .map_err(|m| bad("transcode_timeout", m.to_string()))
        .and_then(|t| match t {
            Duration::ZERO => Err(bad("transcode_timeout", "must be more than 0".into())),
            t => Ok(t),
        })?;
    Ok(Transcode { policy, max_dimension, timeout })
}
