//! Hostile video files through the tools media processing runs on them (ffprobe for the facts,
//! ffmpeg for a frame): whatever the file, each run ends within its time limit, and a frame
//! that comes back is an image within the thumbnail side. What ffmpeg makes of the bytes is
//! ffmpeg's; that a file cannot hold a media job past its limit is Ferry's promise.

use std::time::{Duration, Instant};

use crate::media::{Metadata, probe_video, video_frame};

const LIMIT: Duration = Duration::from_secs(5);
/// What reaping a killed tool and reading its pipes may add to the limit.
const GRACE: Duration = Duration::from_secs(2);
const SIDE: u32 = 320;

pub fn video_file(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("ferry-fuzz-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let file = dir.join("input");
    std::fs::write(&file, data).expect("the input written");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let _ = probe_video(&file, LIMIT, &mut Metadata::default()).await;
        assert!(started.elapsed() < LIMIT + GRACE, "ffprobe ran {:?}", started.elapsed());
        let started = Instant::now();
        let frame = video_frame(&file, 0.0, SIDE, LIMIT).await;
        assert!(started.elapsed() < LIMIT + GRACE, "ffmpeg ran {:?}", started.elapsed());
        if let Ok(Some(png)) = frame {
            let (width, height) = image::ImageReader::with_format(std::io::Cursor::new(png), image::ImageFormat::Png)
                .into_dimensions()
                .expect("a frame is a PNG");
            assert!(width.max(height) <= SIDE, "a {width}×{height} frame");
        }
    });
    let _ = std::fs::remove_file(&file);
}
