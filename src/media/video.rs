//! The external media tools — `ffprobe` (facts), `ffmpeg` (one frame, renditions),
//! `heif-convert` (HEIF photos) — run as subprocesses with a time limit and bounded output,
//! when they are installed. A tool that overruns its time is killed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{Gps, Metadata};

/// Which external tools this machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tools {
    pub ffprobe: bool,
    pub ffmpeg: bool,
    /// Debian's `libheif-examples`.
    pub heif_convert: bool,
    /// Runs renditions at low CPU priority.
    pub nice: bool,
    /// util-linux: a rendition's ffmpeg gets killed when the server dies.
    pub setpriv: bool,
    /// ffmpeg has the `zscale` and `tonemap` filters (HDR video to SDR renditions).
    pub tone_map: bool,
}

impl Tools {
    /// Looks once per process (`-version` answering means installed). The server looks as it
    /// starts (`report`), so no upload's media job pays for the look.
    pub async fn detect() -> Tools {
        static TOOLS: OnceCell<Tools> = OnceCell::const_new();
        *TOOLS
            .get_or_init(|| async {
                let works = |tool: &'static str, version: &'static str| async move {
                    let status = Command::new(tool)
                        .arg(version)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .kill_on_drop(true)
                        .status();
                    matches!(tokio::time::timeout(Duration::from_secs(10), status).await, Ok(Ok(s)) if s.success())
                };
                // side by side: the first media job waits for the slowest, not the sum
                let (ffprobe, ffmpeg, heif_convert, nice, setpriv, tone_map) = tokio::join!(
                    works("ffprobe", "-version"),
                    works("ffmpeg", "-version"),
                    works("heif-convert", "--version"),
                    works("nice", "--version"),
                    works("setpriv", "--version"),
                    has_filters("zscale", "tonemap"),
                );
                Tools { ffprobe, ffmpeg, heif_convert, nice, setpriv, tone_map }
            })
            .await
    }

    /// Looks, and says in the log what a missing tool costs.
    pub async fn report() {
        let tools = Tools::detect().await;
        let missing = |installed: bool, tool: &str, cost: &str| {
            if !installed {
                tracing::warn!(tool, "{tool} is not installed: {cost}");
            }
        };
        missing(tools.ffprobe && tools.ffmpeg, "ffmpeg", "videos get no facts, thumbnails or renditions");
        missing(
            tools.heif_convert,
            "heif-convert",
            "HEIF photos get no thumbnails or JPEG previews (Debian: libheif-examples)",
        );
        tracing::info!(?tools, "media tools");
    }
}

/// Whether this ffmpeg has both filters.
async fn has_filters(a: &str, b: &str) -> bool {
    let listed =
        Command::new("ffmpeg").args(["-hide_banner", "-filters"]).stdin(Stdio::null()).kill_on_drop(true).output();
    let Ok(Ok(out)) = tokio::time::timeout(Duration::from_secs(10), listed).await else { return false };
    let names = String::from_utf8_lossy(&out.stdout);
    let has = |name: &str| names.lines().any(|line| line.split_whitespace().nth(1) == Some(name));
    out.status.success() && has(a) && has(b)
}

/// Why a tool gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// It ran past its time limit (the machine may just be busy: worth a retry).
    TimedOut(String),
    /// It refused the input, or could not run.
    Failed(String),
}

const MAX_PROBE_OUTPUT: usize = 1 << 20;
const MAX_FRAME_OUTPUT: usize = 16 << 20;

/// Fills `meta` with duration, codec, displayed size, capture time and position from `ffprobe`.
pub async fn probe_video(file: &Path, limit: Duration, meta: &mut Metadata) -> Result<(), ToolError> {
    let args = ["-v", "error", "-print_format", "json", "-show_format", "-show_streams"];
    let out = run("ffprobe", &args, file, &[], limit, MAX_PROBE_OUTPUT).await?;
    let probe: Value =
        serde_json::from_slice(&out).map_err(|e| ToolError::Failed(format!("ffprobe answered no JSON: {e}")))?;
    read_probe(&probe, meta);
    Ok(())
}

/// Reads the facts Ferry keeps from ffprobe's JSON. Its tags come from the file, so from
/// whoever made it: every value is checked, none is trusted.
pub fn read_probe(probe: &Value, meta: &mut Metadata) {
    let format = &probe["format"];
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).filter(|d| d.is_finite() && *d >= 0.0);
    meta.duration = number(&format["duration"]);
    meta.bit_rate = format["bit_rate"].as_str().and_then(|b| b.parse::<u64>().ok()).filter(|b| *b > 0);
    let tags = &format["tags"];
    meta.captured = tags["creation_time"]
        .as_str()
        .filter(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok())
        .map(str::to_owned);
    let location = tags["location"].as_str().or_else(|| tags["com.apple.quicktime.location.ISO6709"].as_str());
    meta.gps = location.and_then(iso6709);
    meta.make = tags["com.apple.quicktime.make"].as_str().map(str::to_owned);
    meta.model = tags["com.apple.quicktime.model"].as_str().map(str::to_owned);
    let streams = probe["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    meta.audio_codec = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .and_then(|audio| audio["codec_name"].as_str())
        .map(str::to_owned);
    if let Some(video) = streams.iter().find(|s| s["codec_type"] == "video") {
        meta.codec = video["codec_name"].as_str().map(str::to_owned);
        meta.pixel_format = video["pix_fmt"].as_str().map(str::to_owned);
        meta.color_transfer = video["color_transfer"].as_str().map(str::to_owned);
        let side = |key: &str| video[key].as_u64().filter(|v| (1..=1_000_000).contains(v)).map(|v| v as u32);
        let rotation = video["tags"]["rotate"]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            .or_else(|| video["side_data_list"].as_array()?.iter().find_map(|d| d["rotation"].as_i64()))
            .unwrap_or(0);
        let turned = rotation.rem_euclid(180) == 90;
        (meta.width, meta.height) =
            if turned { (side("height"), side("width")) } else { (side("width"), side("height")) };
        if meta.duration.is_none() {
            meta.duration = number(&video["duration"]);
        }
    }
}

/// `+48.8584+002.2945+035.000/` → a position.
fn iso6709(raw: &str) -> Option<Gps> {
    let body = raw.trim().trim_end_matches('/');
    let starts: Vec<usize> = body.char_indices().filter(|(_, c)| *c == '+' || *c == '-').map(|(i, _)| i).collect();
    let parts: Vec<f64> = starts
        .iter()
        .enumerate()
        .map(|(n, &i)| body[i..starts.get(n + 1).copied().unwrap_or(body.len())].parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    match parts.as_slice() {
        [lat, lon] => Gps::checked(*lat, *lon, None),
        [lat, lon, alt, ..] => Gps::checked(*lat, *lon, Some(*alt)),
        _ => None,
    }
}

/// One frame near `at` seconds, as PNG bytes, scaled to fit `side` (upright: ffmpeg applies
/// the stream's rotation). `None` when the file has no frame there.
pub async fn video_frame(file: &Path, at: f64, side: u32, limit: Duration) -> Result<Option<Vec<u8>>, ToolError> {
    let seek = format!("{at:.3}");
    let scale = format!("scale='min({side},iw)':'min({side},ih)':force_original_aspect_ratio=decrease");
    // one decoding thread: media jobs already run one per core
    let before = ["-nostdin", "-v", "error", "-threads", "1", "-ss", &seek];
    let after = ["-map", "0:v:0", "-frames:v", "1", "-vf", &scale, "-f", "image2pipe", "-c:v", "png", "pipe:1"];
    let out = run("ffmpeg", &before, file, &after, limit, MAX_FRAME_OUTPUT).await?;
    Ok((!out.is_empty()).then_some(out))
}

/// Runs `tool BEFORE -i FILE AFTER` (ffprobe: `tool BEFORE FILE`), returning its stdout.
async fn run(
    tool: &str,
    before: &[&str],
    file: &Path,
    after: &[&str],
    limit: Duration,
    max_output: usize,
) -> Result<Vec<u8>, ToolError> {
    let mut command = Command::new(tool);
    command.args(before);
    if tool == "ffmpeg" {
        command.arg("-i");
    }
    command.arg(file).args(after);
    run_tool(command, tool, limit, Some(max_output)).await
}

/// Runs a prepared command within `limit`, returning at most `max_output` bytes of its stdout
/// (more is a failure), or with `None` only its last 4 KiB (the end of the progress a tool
/// reports while it writes its result to a file). `tool` names it in reasons.
pub(super) async fn run_tool(
    mut command: Command,
    tool: &str,
    limit: Duration,
    max_output: Option<usize>,
) -> Result<Vec<u8>, ToolError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ToolError::Failed(format!("{tool} could not start: {e}")))?;
    let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let work = async {
        let (out, err, status) = tokio::join!(
            capped(stdout, max_output.unwrap_or(TAIL), max_output.is_none()),
            capped(stderr, 4096, false),
            child.wait()
        );
        (out, err, status)
    };
    // on timeout the future (and with it the child, killed on drop) is dropped
    let Ok(((out, out_overflow), (err, _), status)) = tokio::time::timeout(limit, work).await else {
        return Err(ToolError::TimedOut(format!("{tool} ran longer than {}s", limit.as_secs())));
    };
    let status = status.map_err(|e| ToolError::Failed(format!("{tool}: {e}")))?;
    if let Some(max_output) = max_output.filter(|_| out_overflow) {
        return Err(ToolError::Failed(format!("{tool} wrote more than {max_output} bytes")));
    }
    if !status.success() {
        let said = String::from_utf8_lossy(&err);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        return Err(ToolError::Failed(format!("{tool} refused the file ({status}): {said}")));
    }
    Ok(out)
}

/// How much of a tool's progress report is kept: its last block.
const TAIL: usize = 4096;

/// Reads to the end, keeping the first `cap` bytes — or with `tail` the last — (the rest is
/// drained, so the child never blocks on a full pipe); `true` when there was more.
async fn capped(mut reader: impl AsyncRead + Unpin, cap: usize, tail: bool) -> (Vec<u8>, bool) {
    let (mut kept, mut buf, mut overflow) = (Vec::new(), vec![0u8; 64 * 1024], false);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, overflow),
            Ok(n) if tail => {
                kept.extend_from_slice(&buf[..n]);
                let over = kept.len().saturating_sub(cap);
                kept.drain(..over);
                overflow |= over > 0;
            }
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                overflow |= n > room;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_read_with_rotation_and_place() {
        let probe = serde_json::json!({
            "format": {"duration": "2.500000", "bit_rate": "5000000", "tags": {"creation_time": "2024-05-01T12:00:00.000000Z",
                       "location": "+48.8584+002.2945+035.000/"}},
            "streams": [{"codec_type": "audio", "codec_name": "aac"},
                        {"codec_type": "video", "codec_name": "h264", "pix_fmt": "yuv420p", "width": 1920, "height": 1080,
                         "side_data_list": [{"rotation": -90}]}]
        });
        let mut meta = Metadata::default();
        read_probe(&probe, &mut meta);
        assert_eq!(meta.duration, Some(2.5));
        assert_eq!(meta.codec.as_deref(), Some("h264"));
        assert_eq!(meta.audio_codec.as_deref(), Some("aac"));
        assert_eq!((meta.pixel_format.as_deref(), meta.bit_rate), (Some("yuv420p"), Some(5_000_000)));
        assert_eq!((meta.width, meta.height), (Some(1080), Some(1920)));
        assert_eq!(meta.captured.as_deref(), Some("2024-05-01T12:00:00.000000Z"));
        let gps = meta.gps.unwrap();
        assert_eq!((gps.lat, gps.lon, gps.alt), (48.8584, 2.2945, Some(35.0)));
    }

    #[test]
    fn bad_places_are_none() {
        assert!(iso6709("garbage").is_none());
        assert!(iso6709("+95.0+002.0/").is_none());
        assert_eq!(iso6709("-33.8688+151.2093/").unwrap().lat, -33.8688);
    }
}
