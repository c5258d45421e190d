//! Renditions (issue 24): `cargo bench --bench transcode`.
//!
//! Makes, once (cached under `~/.cache/ferry-bench/`), a `FERRY_BENCH_CLIP_SECS` (60) second
//! 1920×1080 HEVC + AAC MOV at 30 frames a second, then in one run:
//! 1. **ffmpeg alone**: the command Ferry runs for it (`ferry::media::video_command`), at the
//!    same low priority, on the same file;
//! 2. **through Ferry**: uploaded to a fresh release `ferry serve` (SQLite + local disk, on a
//!    temp dir under the current directory, 127.0.0.1) as a gallery event, timed from the
//!    upload's first byte until the event lists its rendition. Ratio = alone / through Ferry
//!    (target ≥ 0.95: no cost beyond ffmpeg's own);
//! 3. **uploads while a transcode runs**: 256 MiB signed PUTs (P1's flow) on another fresh
//!    server, idle and then while it transcodes the clip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "harness/mod.rs"]
mod harness;
use harness::{Server, admin};

const PUT_MIB: usize = 256;

/// The clip, made once per length and kept for later runs.
fn clip(seconds: u32) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = home.join(".cache/ferry-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("hevc-1080p-{seconds}s.mov"));
    if path.exists() {
        return path;
    }
    println!("(making the {seconds} s HEVC clip once; it is kept in {})", dir.display());
    let partial = path.with_extension("partial.mov");
    let pattern = format!("testsrc2=duration={seconds}:size=1920x1080:rate=30");
    let tone = format!("sine=frequency=440:duration={seconds}");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", &pattern, "-f", "lavfi", "-i", &tone])
        .args(["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&partial)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success());
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Seconds ffmpeg alone takes for the rendition Ferry would make of `input`.
async fn alone(input: &Path, out_dir: &Path) -> f64 {
    let tools = ferry::media::Tools::detect().await;
    let plan = ferry::media::Plan::Video { encode_video: true, encode_audio: false, tone_map: false };
    let output = out_dir.join("alone.mp4");
    let mut command = ferry::media::video_command(tools, input, &output, plan, 1080).unwrap();
    let started = Instant::now();
    let status = command.stdout(std::process::Stdio::null()).status().await.unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(status.success());
    std::fs::remove_file(output).unwrap();
    took
}

/// A server with a user `bench`, a token and a device `cam`: (token).
fn account(data: &Path, server: &Server) -> String {
    admin(data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    admin(data, &server.address, &["device", "add", "--user", "bench", "--name", "cam"]);
    let token = admin(data, &server.address, &["token", "add", "--user", "bench", "--scopes", "upload,read"]);
    token["token"].as_str().unwrap().to_owned()
}

async fn upload_event(client: &reqwest::Client, server: &Server, token: &str, bytes: Vec<u8>) -> String {
    let form = reqwest::multipart::Form::new()
        .text("name", "clip.mov")
        .part("event", reqwest::multipart::Part::bytes(bytes).file_name("clip.mov"));
    let url = format!("{}/api/gallery/cam/upload", server.address);
    let answer: Value = client.post(url).bearer_auth(token).multipart(form).send().await.unwrap().json().await.unwrap();
    answer["eventId"].as_str().expect("uploaded").to_owned()
}

async fn has_rendition(client: &reqwest::Client, server: &Server, token: &str, id: &str) -> bool {
    let url = format!("{}/api/gallery/cam/events", server.address);
    let events: Vec<Value> = client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    events.iter().any(|e| e["id"] == id && e["has_rendition"] == true)
}

/// Seconds from the upload's start until the event lists its rendition, and the server's
/// peak RSS in MiB (ffmpeg is a process of its own; the server streams the clip and the
/// rendition through its pipeline).
async fn through_ferry(clip: &[u8], dir: &Path) -> (f64, f64) {
    let data = dir.join("ferry");
    let server = Server::start(&data);
    let token = account(&data, &server);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let id = upload_event(&client, &server, &token, clip.to_vec()).await;
    while !has_rendition(&client, &server, &token, &id).await {
        assert!(started.elapsed() < Duration::from_secs(3600), "no rendition within an hour");
        // each look costs the server a request at normal priority, taken from ffmpeg at nice
        // 19: a few looks a second (at most 250 ms late, counted against Ferry)
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (started.elapsed().as_secs_f64(), server.rss_kib().1 as f64 / 1024.0)
}

/// MB/s of one `PUT_MIB` MiB signed PUT of content distinct per `seed`.
async fn put(client: &reqwest::Client, url: &str, seed: u64) -> f64 {
    let mut block = vec![0u8; 1 << 20];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for byte in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    let block = bytes::Bytes::from(block);
    let body = futures_util::stream::iter(
        (0..PUT_MIB).map(move |_| Ok::<_, std::io::Error>(block.clone())).collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let response = client
        .put(url)
        .header("content-length", PUT_MIB << 20)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    (PUT_MIB << 20) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

/// Median MB/s of three PUTs on an idle server, then three while it transcodes the clip.
async fn uploads_beside_a_transcode(clip: &[u8], dir: &Path) -> (f64, f64) {
    let data = dir.join("beside");
    let server = Server::start(&data);
    let token = account(&data, &server);
    let client = reqwest::Client::new();
    let url = || admin(&data, &server.address, &["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned();
    let mut idle = Vec::new();
    for seed in 0..3 {
        idle.push(put(&client, &url(), seed).await);
    }
    let id = upload_event(&client, &server, &token, clip.to_vec()).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // ffmpeg is at work
    let mut busy = Vec::new();
    for seed in 3..6 {
        busy.push(put(&client, &url(), seed).await);
    }
    assert!(!has_rendition(&client, &server, &token, &id).await, "the transcode ran past the PUTs");
    (median(idle), median(busy))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let seconds: u32 = std::env::var("FERRY_BENCH_CLIP_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let path = clip(seconds);
    let bytes = std::fs::read(&path).unwrap();
    println!(
        "# Ferry transcode benchmark — {cpus} CPUs, a {seconds} s 1080p HEVC MOV of {:.1} MB",
        bytes.len() as f64 / 1e6
    );
    let repeats: usize = std::env::var("FERRY_BENCH_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir_in(".").unwrap();
    println!("\n## P11 — a {seconds} s 1080p HEVC clip to its H.264/AAC rendition (runs alternate)");
    println!("| run | ffmpeg alone s | through Ferry s (upload → listed) | ratio alone/Ferry | server peak RSS MiB |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=repeats {
        let alone = alone(&path, dir.path()).await;
        let (ferry, peak) = through_ferry(&bytes, &dir.path().join(run.to_string())).await;
        println!("| {run} | {alone:.1} | {ferry:.1} | {:.3} | {peak:.0} |", alone / ferry);
        ratios.push(alone / ferry);
    }
    println!("median ratio {:.3}", median(ratios));
    let (idle, busy) = uploads_beside_a_transcode(&bytes, dir.path()).await;
    println!("\n## P1 beside a transcode — {PUT_MIB} MiB signed PUTs, median of 3");
    println!("| idle server MB/s | while transcoding MB/s | ratio |");
    println!("|---|---|---|");
    println!("| {idle:.0} | {busy:.0} | {:.2} |", busy / idle);
}
