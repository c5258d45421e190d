//! Thumbnail throughput: `cargo bench --bench thumbnails`.
//!
//! Makes `FERRY_BENCH_THUMBS` (default 20) distinct 12-megapixel JPEGs (4000×3000, photo-like
//! gradients and grain, with EXIF), uploads them to the real `ferry serve` (release build,
//! SQLite + local disk on a temp dir under the current directory, 127.0.0.1) and times the
//! server's own job runner until every `media_process` job has finished. The reference is
//! the same decode → thumbnail → JPEG work done in this process with the `image` crate
//! alone, on the same images, in the same run, and — when Debian's `libvips-tools` is
//! installed — `vipsthumbnail --size 320` over the same files, one process per core in
//! parallel (issue 28's P8 target: Ferry ≥ 1.0 × that). Then P1 while thumbnails run: a
//! `FERRY_BENCH_MIB` (default 1024) MiB signed PUT into the same server while it processes a
//! second set of photos, and the same again once it is idle.
//!
//! `FERRY_BENCH_THUMB_SIZE` (default 320) is the thumbnail size for all three (the server's
//! `FERRY_THUMBNAIL_SIZE`); `FERRY_BENCH_EMBEDDED=<px>` gives each photo a camera-like EXIF
//! thumbnail of that long side (4:3), to measure the server's EXIF-thumbnail fast path.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use exif::experimental::Writer;
use exif::{Field, In, Tag};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::Value;

#[path = "harness/mod.rs"]
mod harness;
use harness::{Server, admin};

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;

/// (current RSS, peak RSS) of the server in MiB.
fn rss_mib(server: &Server) -> (f64, f64) {
    let (current, peak) = server.rss_kib();
    (current as f64 / 1024.0, peak as f64 / 1024.0)
}

/// A 12 MP photo-like JPEG (quality 90), distinct per `seed`, with an EXIF block holding
/// Orientation = 1 and, when `embedded` is a long side in pixels, a thumbnail of that size.
fn photo(seed: u32, embedded: Option<u32>) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    let image = RgbImage::from_fn(WIDTH, HEIGHT, |px, py| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let grain = (x & 0x1F) as u8;
        let r = (px * 200 / WIDTH) as u8 + grain;
        let g = (py * 200 / HEIGHT) as u8 + grain;
        let b = (((px + py + seed * 97) / 16) % 200) as u8 + grain;
        Rgb([r, g, b])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&image).unwrap();
    let mut thumbnail = Vec::new();
    if let Some(side) = embedded {
        let small = image::imageops::thumbnail(&image, side, side * HEIGHT / WIDTH);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumbnail, 85).encode_image(&small).unwrap();
    }
    let upright = Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: exif::Value::Short(vec![1]) };
    let mut writer = Writer::new();
    writer.push_field(&upright);
    if embedded.is_some() {
        writer.set_jpeg(&thumbnail, In::THUMBNAIL);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let tiff = tiff.into_inner();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(u16::try_from(tiff.len() + 8).unwrap().to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(tiff);
    out.extend(&jpeg[2..]);
    out
}

/// The reference: decode, shrink to `side` px, encode as JPEG — the `image` crate alone.
fn in_process(photos: &[Vec<u8>], side: u32) -> f64 {
    let started = Instant::now();
    for bytes in photos {
        let decoded = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg).unwrap();
        let small = decoded.thumbnail(side, side);
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(small.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg).unwrap();
        std::hint::black_box(out);
    }
    photos.len() as f64 / started.elapsed().as_secs_f64()
}

/// `vipsthumbnail --size <side>` over `photos` written to files, one process per core at a
/// time; images/s, or `None` without vipsthumbnail.
fn vipsthumbnail(photos: &[Vec<u8>], cpus: usize, side: u32) -> Option<f64> {
    let dir = tempfile::tempdir_in(".").ok()?;
    let files: Vec<_> = photos
        .iter()
        .enumerate()
        .map(|(n, bytes)| {
            let path = dir.path().join(format!("photo-{n}.jpg"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let started = Instant::now();
    let workers: Vec<_> = (0..cpus.max(1))
        .map(|worker| {
            let mine: Vec<_> = files.iter().skip(worker).step_by(cpus.max(1)).cloned().collect();
            std::thread::spawn(move || {
                mine.iter().all(|file| {
                    std::process::Command::new("vipsthumbnail")
                        .args(["--size", &side.to_string(), "-o", "thumb-%s.jpg"])
                        .arg(file)
                        .status()
                        .is_ok_and(|s| s.success())
                })
            })
        })
        .collect();
    let ran = workers.into_iter().all(|w| w.join().unwrap_or(false));
    ran.then(|| photos.len() as f64 / started.elapsed().as_secs_f64())
}

/// Counts of finished and failed `media_process` jobs.
fn finished(data_dir: &Path, address: &str) -> (usize, usize) {
    let jobs = admin(data_dir, address, &["jobs", "list"]);
    let media: Vec<&Value> =
        jobs["items"].as_array().unwrap().iter().filter(|j| j["kind"] == "media_process").collect();
    let failed = media.iter().filter(|j| j["status"] == "failed").count();
    (media.iter().filter(|j| j["status"] == "done").count() + failed, failed)
}

/// One `mib` MiB signed PUT of bytes no other upload has (`seed`): MB/s.
async fn large_put(client: &reqwest::Client, data: &Path, server: &Server, mib: usize, seed: u8) -> f64 {
    let url = admin(data, &server.address, &["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned();
    let chunks = (0..mib).map(move |i| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![seed ^ i as u8; 1 << 20])));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let started = Instant::now();
    let response = client.put(&url).header("content-length", mib << 20).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    (mib << 20) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// Waits until `count` media jobs have finished.
async fn all_processed(data: &Path, server: &Server, count: usize) {
    let started = Instant::now();
    while finished(data, &server.address).0 < count {
        assert!(started.elapsed() < Duration::from_secs(1800), "not processed after 30 min");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("FERRY_BENCH_THUMBS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let side: u32 = std::env::var("FERRY_BENCH_THUMB_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(320);
    let embedded: Option<u32> = std::env::var("FERRY_BENCH_EMBEDDED").ok().and_then(|v| v.parse().ok());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let carrying = embedded.map_or("no embedded thumbnail".to_owned(), |px| format!("an embedded {px} px thumbnail"));
    println!(
        "# Ferry thumbnail benchmark — {cpus} CPUs, {count} JPEGs of {WIDTH}×{HEIGHT} with {carrying}, thumbnails of {side} px"
    );
    let photos: Vec<Vec<u8>> = (0..count as u32).map(|seed| photo(seed, embedded)).collect();
    let mib = photos.iter().map(Vec::len).sum::<usize>() as f64 / count as f64 / (1 << 20) as f64;
    let reference = in_process(&photos, side);
    let vips = vipsthumbnail(&photos, cpus, side);

    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &[("FERRY_THUMBNAIL_SIZE", &side.to_string())]);
    admin(&data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    let urls: Vec<String> = (0..count)
        .map(|_| admin(&data, &server.address, &["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned())
        .collect();
    let (idle_rss, _) = rss_mib(&server);
    let client = reqwest::Client::new();
    let started = Instant::now();
    for (url, bytes) in urls.iter().zip(&photos) {
        let response = client.put(url).body(bytes.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let uploaded = started.elapsed();
    let mut peak = 0.0f64;
    let (done, failed) = loop {
        let (done, failed) = finished(&data, &server.address);
        peak = peak.max(rss_mib(&server).1);
        if done == count {
            break (done, failed);
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "{done}/{count} processed after 30 min");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = started.elapsed();
    let (_, peak_end) = rss_mib(&server);
    let rate = count as f64 / took.as_secs_f64();
    println!(
        "\n## Thumbnails — {count} × 12 MP JPEG ({mib:.1} MiB each), uploaded by signed PUT, processed by the server"
    );
    println!(
        "| images/s (upload → all thumbnails) | in-process image crate images/s | ratio | uploads took s | server RSS idle MiB | server peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {rate:.2} | {reference:.2} | {:.2} | {:.1} | {idle_rss:.1} | {:.1} |",
        rate / reference,
        uploaded.as_secs_f64(),
        peak.max(peak_end)
    );
    match vips {
        Some(vips) => println!(
            "\nvipsthumbnail --size {side}, {cpus} processes in parallel: {vips:.2} images/s; Ferry / vipsthumbnail = {:.2}",
            rate / vips
        ),
        None => println!("\nvipsthumbnail not installed (Debian libvips-tools): no libvips reference"),
    }
    assert_eq!((done, failed), (count, 0), "every photo processed");

    // P1 while thumbnails run: the media workers (one per core) decode a second set of photos
    let mib: usize = std::env::var("FERRY_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024).max(1);
    // (twice as many as before, made before the first is sent, so that they outlast the PUT)
    let more: Vec<Vec<u8>> = (count as u32..3 * count as u32).map(|seed| photo(seed, embedded)).collect();
    let urls: Vec<String> = (0..more.len())
        .map(|_| admin(&data, &server.address, &["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned())
        .collect();
    for (url, bytes) in urls.iter().zip(more) {
        assert_eq!(client.put(url).body(bytes).send().await.unwrap().status(), 200);
    }
    let busy = large_put(&client, &data, &server, mib, 1).await;
    let left = 3 * count + 1 - finished(&data, &server.address).0;
    all_processed(&data, &server, 3 * count + 1).await;
    let idle = large_put(&client, &data, &server, mib, 2).await;
    println!("\n## P1 while thumbnails run — one {mib} MiB signed PUT into the same server");
    println!("| while processing MB/s | media jobs still queued when it ended | idle MB/s | ratio |");
    println!("|---|---|---|---|");
    println!("| {busy:.0} | {left} | {idle:.0} | {:.2} |", busy / idle);
}
