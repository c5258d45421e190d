//! Media files made at test time with the real tools: short clips from ffmpeg's test
//! pattern and a HEIC photo from heif-enc.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Whether ffmpeg, ffprobe, heif-enc and heif-convert are installed (`.ci/run` installs them;
/// elsewhere the tests say they were skipped).
pub fn tools_installed() -> bool {
    let works = |tool: &str, arg: &str| Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    let all = works("ffmpeg", "-version")
        && works("ffprobe", "-version")
        && works("heif-enc", "--version")
        && works("heif-convert", "--version");
    if !all {
        crate::helpers::tool_missing("a renditions test", "apt-get install ffmpeg libheif-examples");
    }
    all
}

pub enum Clip {
    /// HEVC + AAC in a QuickTime MOV, as phones write them.
    HevcMov,
    /// Motion JPEG + PCM in an AVI, as older cameras write them.
    MjpegAvi,
    /// H.264 + AAC MP4: plays in every browser as it is.
    H264Mp4,
    /// A MOV's first bytes, then garbage.
    Corrupt,
    /// 10-bit HEVC in HLG (BT.2020), as iPhones record HDR video.
    HlgMov,
}

pub struct Made {
    pub bytes: Vec<u8>,
    pub path: PathBuf,
    pub fps: f64,
    _dir: tempfile::TempDir,
}

/// A two-second 640×360 clip at 25 frames a second, with a tone.
pub fn clip(kind: Clip) -> Made {
    made(kind, 2, 640, 360)
}

/// A clip of `seconds` at `width`×`height`.
pub fn made(kind: Clip, seconds: u32, width: u32, height: u32) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let (codecs, name): (&[&str], &str) = match kind {
        Clip::HevcMov | Clip::Corrupt => (
            &["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"],
            "clip.mov",
        ),
        Clip::MjpegAvi => (&["-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le"], "clip.avi"),
        Clip::HlgMov => (
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p10le",
                "-x265-params",
                "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc",
                "-color_primaries",
                "bt2020",
                "-color_trc",
                "arib-std-b67",
                "-colorspace",
                "bt2020nc",
                "-tag:v",
                "hvc1",
            ],
            "hdr.mov",
        ),
        Clip::H264Mp4 => (&["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], "clip.mp4"),
    };
    let path = dir.path().join(name);
    let pattern = format!("testsrc2=duration={seconds}:size={width}x{height}:rate=25");
    let tone = format!("sine=frequency=440:duration={seconds}");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &pattern, "-f", "lavfi", "-i", &tone])
        .args(codecs)
        .args(if codecs.contains(&"-c:a") { &[][..] } else { &["-c:a", "aac"][..] })
        .args(["-shortest"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg made the fixture");
    let mut bytes = std::fs::read(&path).unwrap();
    if let Clip::Corrupt = kind {
        // the container's start survives (it is still sniffed as a video), nothing else does
        let garbage = crate::helpers::bytes_of(bytes.len().saturating_sub(64), 24);
        bytes.truncate(64);
        bytes.extend(garbage);
        std::fs::write(&path, &bytes).unwrap();
    }
    Made { bytes, path, fps: 25.0, _dir: dir }
}

/// A `width`×`height` HEIC photo of ffmpeg's test pattern, with an EXIF orientation tag when
/// `orientation` is given (heif-enc copies the JPEG's EXIF; it writes no `irot`).
pub fn heic_photo(width: u32, height: u32, orientation: Option<u16>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (jpeg, heic) = (dir.path().join("photo.jpg"), dir.path().join("photo.heic"));
    let pattern = format!("testsrc2=size={width}x{height}");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &pattern, "-frames:v", "1"])
        .arg(&jpeg)
        .status();
    assert!(status.unwrap().success());
    if let Some(orientation) = orientation {
        // APP1 Exif: a big-endian TIFF whose IFD0 holds only Orientation
        let mut tiff = b"MM\0\x2A\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        tiff.extend(orientation.to_be_bytes());
        tiff.extend([0, 0, 0, 0, 0, 0]);
        let bytes = std::fs::read(&jpeg).unwrap();
        let mut tagged = vec![0xFF, 0xD8, 0xFF, 0xE1];
        tagged.extend(((tiff.len() + 8) as u16).to_be_bytes());
        tagged.extend(b"Exif\0\0");
        tagged.extend(tiff);
        tagged.extend(&bytes[2..]);
        std::fs::write(&jpeg, tagged).unwrap();
    }
    let status = Command::new("heif-enc").args(["-q", "60"]).arg(&jpeg).arg("-o").arg(&heic).output().unwrap();
    assert!(status.status.success(), "heif-enc: {}", String::from_utf8_lossy(&status.stderr));
    std::fs::read(heic).unwrap()
}

/// What ffprobe says of a file (format and streams).
pub fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
