//! The web gallery in a real browser: Debian's Chromium driven by Playwright for Python
//! (`tests/clients/gallery_browser.py`) against the real `ferry serve`. Sign-in with a link,
//! thumbnails of a JPEG and a PNG grouped under today, a video that plays and seeks with
//! Range, an HEVC clip and a HEIC photo shown through their renditions, facts, keyboard,
//! download, uploads by picking and by dropping, a tus upload that retries by itself after a
//! dropped connection and resumes after a reload, delete, the devices page, phone width, no
//! console errors, and a second account that sees nothing. Screenshots land in
//! `target/browser-artifacts/`.
//!
//! Playwright lives outside the repository (`tests/clients/install`, which `.ci/run` runs, with
//! Chromium from apt); without it or Chromium this test says so and does not run (and fails
//! under `FERRY_TEST_REQUIRE_TOOLS=1`, as in `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::renditions::fixtures::{self, Clip};

fn playwright() -> Option<PathBuf> {
    let dir = match std::env::var("FERRY_TEST_CLIENTS") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ferry-ci"),
    };
    let python = dir.join("browser-venv/bin/python");
    let ready = Command::new(&python).args(["-c", "import playwright"]).output().is_ok_and(|o| o.status.success())
        && Path::new("/usr/bin/chromium").exists()
        && fixtures::tools_installed();
    if !ready {
        tool_missing(
            "the browser test",
            "apt-get install chromium ffmpeg libheif-examples, then tests/clients/install",
        );
    }
    ready.then_some(python)
}

/// A picture or a clip made with ffmpeg: `lavfi` source, output file.
fn made(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).arg(&path).status().unwrap();
    assert!(status.success(), "ffmpeg made {name}");
    path
}

fn admin_on(server: &FerryProcess, data: &Path, args: &[&str]) -> Value {
    let out = ferry_bin()
        .env("FERRY_PUBLIC_URL", &server.address)
        .arg("--data-dir")
        .arg(data)
        .arg("admin")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_gallery_page_works_in_a_real_browser() {
    let Some(python) = playwright() else { return };
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path();
    let files = tempfile::tempdir().unwrap();
    let server = FerryProcess::start(data, &[]);
    for user in ["ann", "bob"] {
        admin_on(&server, data, &["user", "add", user, "--level", "uploader"]);
    }
    for device in ["cam", "phone"] {
        admin_on(&server, data, &["device", "add", "--user", "ann", "--name", device]);
    }
    let token = admin_on(&server, data, &["token", "add", "--user", "ann", "--scopes", "upload,read,delete"]);
    let token = token["token"].as_str().unwrap().to_owned();

    let jpeg = made(files.path(), "beach.jpg", &["-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1"]);
    let png = made(files.path(), "door.png", &["-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1"]);
    // 20 s at 4 Mbit/s (noise does not compress): the browser, on a throttled link, has only
    // its start when the test seeks to its end, so the seek must ask for a range
    let clip = made(
        files.path(),
        "walk.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=20",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=20",
            "-vf",
            "noise=alls=30:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "4M",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "-movflags",
            "+faststart",
        ],
    );
    // what browsers cannot show: shown through their renditions
    let hevc = fixtures::made(Clip::HevcMov, 2, 320, 240);
    let heic = fixtures::heic_photo(320, 240, None);
    let client = reqwest::Client::new();
    let upload = |device: &'static str, name: String, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("name", name.clone())
            .part("event", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let url = format!("{}/api/gallery/{device}/upload", server.address);
        let request = client.post(url).bearer_auth(&token).multipart(form);
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    for path in [&jpeg, &png, &clip] {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        upload("cam", name, std::fs::read(path).unwrap()).await;
    }
    upload("phone", "photo.heic".into(), heic).await;
    upload("phone", "clip.mov".into(), hevc.bytes.clone()).await;
    // the page shows thumbnails once media processing has made them, and renditions once
    // their job has
    let timeline = || async {
        let url = format!("{}/api/timeline", server.address);
        client.get(url).bearer_auth(&token).send().await.unwrap().json::<Value>().await.unwrap()
    };
    let started = Instant::now();
    let unready = |i: &Value| {
        i["urls"]["thumbnail"].is_null()
            || (["photo.heic", "clip.mov"].contains(&i["name"].as_str().unwrap()) && i["urls"]["rendition"].is_null())
    };
    while timeline().await["items"].as_array().unwrap().iter().any(unready) {
        assert!(started.elapsed() < Duration::from_secs(120), "thumbnails and renditions within two minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let small = made(files.path(), "sketch.png", &["-f", "lavfi", "-i", "mandelbrot=size=200x150", "-frames:v", "1"]);
    let big = files.path().join("archive.bin");
    std::fs::write(&big, bytes_of(20 << 20, 42)).unwrap();
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let link = |user: &str| admin_on(&server, data, &["web-link", "--user", user])["url"].as_str().unwrap().to_owned();
    let plan = json!({
        "base": server.address,
        "ann_link": link("ann"),
        "bob_link": link("bob"),
        "pictures": ["beach.jpg", "door.png"],
        "beach_size": std::fs::metadata(&jpeg).unwrap().len(),
        "video": "walk.mp4",
        "video_badge": "▶ 0:20",
        "hevc": "clip.mov",
        "heic": "photo.heic",
        "dropped": "dropped.txt",
        "small_upload": small,
        "big_upload": big,
        "delete": "door.png",
        "artifacts": artifacts,
    });
    let plan_file = files.path().join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/gallery_browser.py");
    let out = tokio::process::Command::new(python).arg(script).arg(&plan_file).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(findings["resumed_at"].as_u64().unwrap() >= 8 << 20, "{findings}");
    assert!(findings["seek_range_from"].as_u64().unwrap() > 0, "{findings}");

    // what the browser did, as the server sees it
    let items = timeline().await["items"].as_array().unwrap().clone();
    let named = |name: &str| items.iter().find(|i| i["name"] == name).cloned();
    assert!(named("door.png").is_none(), "deleted through the page");
    let uploaded = named("archive.bin").expect("the resumed upload is stored");
    assert_eq!(uploaded["sha256"], sha256_hex(&std::fs::read(&big).unwrap()), "byte for byte");
    assert_eq!(uploaded["source"], json!({"kind": "folder", "name": "web"}));
    assert!(named("sketch.png").is_some());
    assert_eq!(named("dropped.txt").expect("dropped on the page")["size"], 13);
    for shot in ["gallery-desktop.png", "gallery-phone.png"] {
        assert!(artifacts.join(shot).metadata().unwrap().len() > 10_000, "{shot} saved");
    }
}
