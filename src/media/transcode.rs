//! Playable renditions: which media needs one (a pure decision over the facts media
//! processing recorded), and making it with `ffmpeg` (videos: H.264/AAC MP4, `faststart`)
//! or `heif-convert` (HEIF photos: JPEG).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::video::run_tool;
use super::{Metadata, ToolError, Tools};
use crate::config::TranscodePolicy;

/// Most bits a second a rendition may use (ffmpeg's `-maxrate`, with a buffer of twice that).
const MAX_BITRATE: &str = "8M";
const MAX_BUFFER: &str = "16M";
const MAX_BITS_PER_SECOND: u64 = 8_000_000;

/// What to make of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// An H.264/AAC MP4: each stream re-encoded, or copied when it already plays (and fits);
    /// an HDR video's colours mapped to SDR (BT.709), which every screen shows.
    Video { encode_video: bool, encode_audio: bool, tone_map: bool },
    /// A JPEG of a HEIF photo.
    Photo,
}

impl Plan {
    pub fn content_type(self) -> &'static str {
        match self {
            Plan::Video { .. } => "video/mp4",
            Plan::Photo => "image/jpeg",
        }
    }
}

/// What rendition `meta`'s file needs under `policy`, if any. Browsers play H.264 with AAC
/// or MP3 in MP4, and VP8/VP9/AV1 with Opus or Vorbis in WebM; they show no HEIF photo.
pub fn plan(meta: &Metadata, policy: TranscodePolicy, max_dimension: u32) -> Option<Plan> {
    if policy == TranscodePolicy::Off {
        return None;
    }
    let format = meta.format.as_deref().unwrap_or_default();
    if meta.kind == "image" && matches!(format, "heif" | "heic") {
        return Some(Plan::Photo);
    }
    if meta.kind != "video" {
        return None;
    }
    let (video, audio) = (meta.codec.as_deref(), meta.audio_codec.as_deref());
    // browsers decode 8-bit 4:2:0 H.264 only (not 10-bit or 4:2:2 "High" profiles)
    let eight_bit = matches!(meta.pixel_format.as_deref(), None | Some("yuv420p" | "yuvj420p"));
    let mp4_video = video == Some("h264") && eight_bit;
    let mp4_audio = matches!(audio, None | Some("aac" | "mp3"));
    let playable = match format {
        "mp4" | "x-m4v" => mp4_video && mp4_audio,
        "webm" => matches!(video, Some("vp8" | "vp9" | "av1")) && matches!(audio, None | Some("opus" | "vorbis")),
        _ => false,
    };
    if playable && policy == TranscodePolicy::Auto {
        return None;
    }
    // a copied stream keeps its size and bitrate: both must be within the rendition's caps
    let fits = meta.width.max(meta.height).is_some_and(|side| side <= max_dimension);
    let within_bitrate = meta.bit_rate.is_none_or(|b| b <= MAX_BITS_PER_SECOND);
    // HLG and PQ (an iPhone's default since 2020) look flat and grey unless mapped to SDR
    let hdr = matches!(meta.color_transfer.as_deref(), Some("arib-std-b67" | "smpte2084"));
    let encode_video = !(mp4_video && fits && within_bitrate && !hdr);
    Some(Plan::Video { encode_video, encode_audio: !mp4_audio, tone_map: encode_video && hdr })
}

/// Makes the MP4 of `input` at `output` with [`video_command`] within `limit`, and checks
/// that the result is an H.264 video before it is kept.
pub async fn transcode_video(
    tools: Tools,
    input: &Path,
    output: &Path,
    plan: Plan,
    max_dimension: u32,
    limit: Duration,
) -> Result<(), ToolError> {
    let Some(command) = video_command(tools, input, output, plan, max_dimension) else {
        return Err(ToolError::Failed("not a video plan".into()));
    };
    let progress = run_tool(command, "ffmpeg", limit, None).await?;
    // ffmpeg answers success for input it decoded nothing of: what it made must have frames
    match frames_written(&progress) {
        Some(frames) if frames > 0 => Ok(()),
        _ => Err(ToolError::Failed("ffmpeg made no playable video of it (no frames decoded)".into())),
    }
}

/// The frames ffmpeg says it wrote, from the end of its `-progress` report (blocks of
/// `key=value` lines, the last one closed by `progress=end`); `None` when it did not end.
fn frames_written(progress: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(progress);
    let mut lines = text.lines().rev().skip_while(|line| line.trim().is_empty());
    if lines.next()? != "progress=end" {
        return None;
    }
    lines.find_map(|line| line.strip_prefix("frame=")).and_then(|n| n.trim().parse().ok())
}

/// The ffmpeg run that makes a video plan's MP4, at low CPU priority (`None` for a photo
/// plan). Its progress goes to a pipe that is drained and dropped.
pub fn video_command(tools: Tools, input: &Path, output: &Path, plan: Plan, max_dimension: u32) -> Option<Command> {
    let Plan::Video { encode_video, encode_audio, tone_map } = plan else { return None };
    let mut command = low_priority(tools, "ffmpeg");
    command.args(["-nostdin", "-v", "error", "-y", "-progress", "pipe:1", "-i"]).arg(input);
    command.args(["-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn"]);
    if encode_video {
        let side = format!("trunc(min({max_dimension},{{}})/2)*2");
        let (w, h) = (side.replace("{}", "iw"), side.replace("{}", "ih"));
        let mut filters = format!("scale='if(gte(iw,ih),{w},-2)':'if(gte(iw,ih),-2,{h})'");
        if tone_map && tools.tone_map {
            // to linear light, Hable's curve in BT.709 primaries, back to BT.709 video levels
            let to_sdr = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,\
                          zscale=t=bt709:m=bt709:r=tv,format=yuv420p";
            filters = format!("{to_sdr},{filters}");
            command.args(["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]);
        }
        command.args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]);
        command.args(["-maxrate", MAX_BITRATE, "-bufsize", MAX_BUFFER, "-vf", &filters]);
    } else {
        command.args(["-c:v", "copy"]);
    }
    match encode_audio {
        true => command.args(["-c:a", "aac", "-b:a", "160k", "-ac", "2"]),
        false => command.args(["-c:a", "copy"]),
    };
    command.args(["-movflags", "+faststart", "-f", "mp4"]).arg(output);
    Some(command)
}

/// Makes a JPEG of `input`'s image at `output` within `limit`, and returns where it is (a
/// file of several images gets numbered outputs; the first is taken). libheif applies the
/// file's rotation and mirroring (`irot`, `imir`), which HEIF says are what counts; the EXIF
/// heif-convert copies along still carries the camera's orientation tag (an iPhone's says 6
/// beside its `irot`), so it is dropped: the pixels are upright, and nothing turns them again.
pub async fn heif_to_jpeg(tools: Tools, input: &Path, output: &Path, limit: Duration) -> Result<PathBuf, ToolError> {
    let mut command = low_priority(tools, "heif-convert");
    command.args(["--quiet", "-q", "90"]).arg(input).arg(output);
    run_tool(command, "heif-convert", limit, None).await?;
    let stem = output.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    let numbered = output.with_file_name(format!("{stem}-1.jpg"));
    let made = [output.to_owned(), numbered]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| ToolError::Failed("heif-convert wrote no image".into()))?;
    let failed = |e: std::io::Error| ToolError::Failed(format!("heif-convert's image {}: {e}", made.display()));
    let jpeg = tokio::fs::read(&made).await.map_err(failed)?;
    let upright = without_exif(&jpeg).ok_or_else(|| ToolError::Failed("heif-convert wrote no JPEG".into()))?;
    tokio::fs::write(&made, upright).await.map_err(failed)?;
    Ok(made)
}

/// A JPEG's bytes without its EXIF segments; `None` when the markers before the image data
/// do not add up.
pub fn without_exif(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut out = jpeg.get(..2).filter(|soi| *soi == [0xFF, 0xD8])?.to_vec();
    let mut at = 2;
    loop {
        let &[0xFF, marker] = jpeg.get(at..at + 2)? else { return None };
        match marker {
            0xFF => at += 1, // a fill byte
            // start of scan: the entropy-coded image runs to the end
            0xDA => {
                out.extend_from_slice(&jpeg[at..]);
                return Some(out);
            }
            _ => {
                let len = usize::from(u16::from_be_bytes(jpeg.get(at + 2..at + 4)?.try_into().ok()?));
                let segment = jpeg.get(at..at + 2 + len).filter(|_| len >= 2)?;
                if !(marker == 0xE1 && segment[4..].starts_with(b"Exif\0\0")) {
                    out.extend_from_slice(segment);
                }
                at += 2 + len;
            }
        }
    }
}

/// `tool` at low CPU priority (`nice 19`) and, where util-linux's `setpriv` is there, killed
/// when the server dies (else a crashed server's ffmpeg would run on for hours).
fn low_priority(tools: Tools, tool: &str) -> Command {
    let mut chain: Vec<&str> = Vec::new();
    if tools.setpriv {
        chain.extend(["setpriv", "--pdeathsig", "KILL", "--"]);
    }
    if tools.nice {
        chain.extend(["nice", "-n", "19"]);
    }
    chain.push(tool);
    let mut command = Command::new(chain[0]);
    command.args(&chain[1..]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(format: &str, codec: &str, audio: Option<&str>, side: u32) -> Metadata {
        Metadata {
            kind: "video".into(),
            format: Some(format.into()),
            codec: Some(codec.into()),
            audio_codec: audio.map(str::to_owned),
            width: Some(side),
            height: Some(side * 9 / 16),
            ..Metadata::default()
        }
    }

    #[test]
    fn what_browsers_play_gets_nothing_unless_always() {
        use TranscodePolicy::*;
        let mp4 = video("mp4", "h264", Some("aac"), 1920);
        assert_eq!(plan(&mp4, Auto, 1080), None);
        assert_eq!(plan(&video("webm", "vp9", Some("opus"), 640), Auto, 1080), None);
        assert_eq!(
            plan(&mp4, Always, 1080),
            Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: false })
        );
        assert_eq!(
            plan(&video("mp4", "h264", None, 640), Always, 1080),
            Some(Plan::Video { encode_video: false, encode_audio: false, tone_map: false })
        );
        assert_eq!(plan(&video("quicktime", "hevc", Some("aac"), 3840), Off, 1080), None);
    }

    #[test]
    fn what_browsers_cannot_play_is_transcoded_or_remuxed() {
        use TranscodePolicy::Auto;
        let hevc = video("quicktime", "hevc", Some("aac"), 3840);
        assert_eq!(
            plan(&hevc, Auto, 1080),
            Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: false })
        );
        // H.264 in a MOV only needs another container
        let mov = video("quicktime", "h264", Some("aac"), 1280);
        assert_eq!(
            plan(&mov, Auto, 1080).unwrap(),
            Plan::Video { encode_video: true, encode_audio: false, tone_map: false }
        );
        let small_mov = video("quicktime", "h264", Some("aac"), 1080);
        assert_eq!(
            plan(&small_mov, Auto, 1080).unwrap(),
            Plan::Video { encode_video: false, encode_audio: false, tone_map: false }
        );
        let avi = video("x-msvideo", "mjpeg", Some("pcm_s16le"), 640);
        assert_eq!(
            plan(&avi, Auto, 1080).unwrap(),
            Plan::Video { encode_video: true, encode_audio: true, tone_map: false }
        );
        // facts a failed probe left out: try it all, ffmpeg says whether it can
        let unknown = Metadata { kind: "video".into(), ..Metadata::default() };
        assert_eq!(
            plan(&unknown, Auto, 1080).unwrap(),
            Plan::Video { encode_video: true, encode_audio: false, tone_map: false }
        );
    }

    #[test]
    fn what_browsers_cannot_decode_or_what_is_too_heavy_is_encoded_not_copied() {
        let ten_bit = Metadata { pixel_format: Some("yuv420p10le".into()), ..video("mp4", "h264", Some("aac"), 1920) };
        let decided = plan(&ten_bit, TranscodePolicy::Auto, 1080);
        assert_eq!(decided, Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: false }));
        let heavy = Metadata { bit_rate: Some(50_000_000), ..video("quicktime", "h264", Some("aac"), 1080) };
        let decided = plan(&heavy, TranscodePolicy::Auto, 1080);
        assert_eq!(decided, Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: false }));
    }

    #[test]
    fn hdr_video_is_encoded_with_its_colours_mapped() {
        let hlg = Metadata { color_transfer: Some("arib-std-b67".into()), ..video("quicktime", "hevc", None, 1920) };
        let decided = plan(&hlg, TranscodePolicy::Auto, 1080);
        assert_eq!(decided, Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: true }));
        // H.264 that would have been copied is encoded too, to map it
        let pq = Metadata { color_transfer: Some("smpte2084".into()), ..video("quicktime", "h264", None, 1080) };
        let decided = plan(&pq, TranscodePolicy::Auto, 1080);
        assert_eq!(decided, Some(Plan::Video { encode_video: true, encode_audio: false, tone_map: true }));
    }

    #[test]
    fn frames_come_from_the_last_progress_block() {
        let report = b"frame=10\nfps=0.0\nprogress=continue\nframe=50\nfps=25.0\nprogress=end\n";
        assert_eq!(frames_written(report), Some(50));
        assert_eq!(frames_written(b"frame=0\nprogress=end\n"), Some(0));
        assert_eq!(frames_written(b"frame=50\nprogress=continue\n"), None, "cut short");
        assert_eq!(frames_written(b""), None);
    }

    #[test]
    fn exif_goes_and_the_image_stays() {
        let image = image::RgbImage::from_pixel(64, 48, image::Rgb([200, 10, 10]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&image).unwrap();
        let exif = [&[0xFF, 0xE1, 0, 16][..], b"Exif\0\0", b"MM\0\x2A\0\0\0\x08"].concat();
        let tagged = [&jpeg[..2], &exif, &[0xFF], &jpeg[2..]].concat(); // with a fill byte too
        let plain = without_exif(&tagged).unwrap();
        assert!(!plain.windows(4).any(|w| w == b"Exif"));
        let decoded = image::load_from_memory(&plain).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        assert_eq!(without_exif(b"not a jpeg"), None);
        assert_eq!(without_exif(&tagged[..10]), None);
    }

    #[test]
    fn heif_photos_get_a_jpeg_and_other_images_nothing() {
        let heif = Metadata { kind: "image".into(), format: Some("heif".into()), ..Metadata::default() };
        assert_eq!(plan(&heif, TranscodePolicy::Auto, 1080), Some(Plan::Photo));
        assert_eq!(plan(&heif, TranscodePolicy::Off, 1080), None);
        let jpeg = Metadata { kind: "image".into(), format: Some("jpeg".into()), ..Metadata::default() };
        assert_eq!(plan(&jpeg, TranscodePolicy::Always, 1080), None);
        assert_eq!(
            plan(&Metadata { kind: "other".into(), ..Metadata::default() }, TranscodePolicy::Always, 1080),
            None
        );
    }
}
