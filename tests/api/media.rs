//! Media understanding (issue 8): metadata and thumbnails for every family, from files the
//! tests make themselves — each decodable format, a JPEG with hand-written EXIF, a video
//! from `ffmpeg` when installed — and from broken or hostile files, which fail cleanly with
//! a reason and leave the item intact. Jobs are driven with `run_until_idle`; the server's
//! own runner may get there first, so tests wait for results, not for who made them.

pub mod files;

use std::time::{Duration, Instant};

use ferry::catalog::{Job, JobStatus, MediaInfo, MediaStatus};
use ferry::domain::{Level, Sha256Hex};
use futures_util::StreamExt;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;
use files::{ascii, bomb_png, encode, photo_with_exif, picture, rational, tiff, with_exif};

// --- driving the server ---

async fn put(app: &TestApp, user: &TestUser, bytes: &[u8]) -> Sha256Hex {
    let response = app.client.put(app.signed_put(user.user_id, None, None)).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    Sha256Hex::of(bytes)
}

/// Drives the jobs, then waits for `sha256`'s result and its job's end (the server's own
/// runner may hold the job).
async fn processed(app: &TestApp, sha256: &Sha256Hex) -> MediaInfo {
    app.state.jobs.run_until_idle().await.unwrap();
    for _ in 0..300 {
        let finished =
            media_jobs(app, sha256).await.iter().all(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed));
        if let Some(info) = app.catalog().media_info(std::slice::from_ref(sha256)).await.unwrap().pop()
            && finished
        {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.state.jobs.run_until_idle().await.unwrap();
    }
    panic!("no media result for {sha256}");
}

async fn media_jobs(app: &TestApp, sha256: &Sha256Hex) -> Vec<Job> {
    let jobs = app.catalog().list_jobs(None).await.unwrap();
    jobs.into_iter()
        .filter(|j| j.kind == ferry::domain::JobKind::MediaProcess && j.payload["sha256"] == sha256.as_str())
        .collect()
}

async fn blob_bytes(app: &TestApp, sha256: &Sha256Hex) -> Vec<u8> {
    let mut stream = app.state.store.read(sha256, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

fn meta<'a>(info: &'a MediaInfo, key: &str) -> &'a Value {
    &info.metadata.as_ref().expect("metadata recorded")[key]
}

struct Gallery<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Gallery<'a> {
    async fn new(app: &'a TestApp) -> Gallery<'a> {
        let owner = app.user("alice", Level::Uploader, "upload,read,delete").await;
        app.device(&owner, "cam").await;
        Gallery { app, token: owner.token }
    }

    fn url(&self, op: &str) -> String {
        self.app.url(&format!("/api/gallery/cam/{op}"))
    }

    async fn upload(&self, name: &str, bytes: &[u8], thumbnail: Option<&[u8]>) -> String {
        let mut form = Form::new().text("name", name.to_owned()).part("event", Part::bytes(bytes.to_vec()));
        if let Some(thumbnail) = thumbnail {
            form = form.part("thumbnail", Part::bytes(thumbnail.to_vec()));
        }
        let response = self.app.client.post(self.url("upload")).bearer_auth(&self.token).multipart(form);
        let body: Value = response.send().await.unwrap().json().await.unwrap();
        assert_eq!(body["success"], true, "{body}");
        body["eventId"].as_str().unwrap().to_owned()
    }

    async fn event(&self, id: &str) -> Value {
        let response = self.app.client.get(self.url("events")).bearer_auth(&self.token).send().await.unwrap();
        let events: Vec<Value> = response.json().await.unwrap();
        events.into_iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("event {id} listed"))
    }

    async fn get(&self, op: &str) -> reqwest::Response {
        self.app.client.get(self.url(op)).bearer_auth(&self.token).send().await.unwrap()
    }
}

// --- the tests ---

#[tokio::test]
async fn every_decodable_format_gets_its_size_and_a_bounded_jpeg_thumbnail() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let image = picture(640, 480);
    let formats = [
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::Png, "png"),
        (ImageFormat::WebP, "webp"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::Bmp, "bmp"),
        (ImageFormat::Tiff, "tiff"),
    ];
    for (format, name) in formats {
        let sha256 = put(&app, &alice, &encode(&image, format)).await;
        let info = processed(&app, &sha256).await;
        assert_eq!(info.status, MediaStatus::Done, "{name}: {info:?}");
        assert_eq!((meta(&info, "kind"), meta(&info, "format")), (&json!("image"), &json!(name)), "{info:?}");
        assert_eq!((meta(&info, "width"), meta(&info, "height")), (&json!(640), &json!(480)), "{name}");
        let thumbnail = image::load_from_memory(&blob_bytes(&app, &info.thumbnail_sha256.unwrap()).await).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240), "{name}: 320 px on the long side");
        assert_eq!(media_jobs(&app, &sha256).await[0].status, JobStatus::Done);
    }
}

#[tokio::test]
async fn a_photo_shows_capture_time_camera_place_and_an_upright_thumbnail_in_the_gallery() {
    let app = spawn_app_with(|layer| {
        layer.insert("thumbnail_size", "160".into());
    })
    .await;
    let g = Gallery::new(&app).await;
    let photo = photo_with_exif();
    let id = g.upload("IMG_0001.JPG", &photo, None).await;
    processed(&app, &Sha256Hex::of(&photo)).await;

    let event = g.event(&id).await;
    assert_eq!(event["has_thumbnail"], true, "{event}");
    assert_eq!(event["captured"], "2023-07-14T15:16:17+02:00");
    assert_eq!((&event["width"], &event["height"]), (&json!(320), &json!(640)), "as displayed: turned upright");
    let exif = &event["exif"];
    assert_eq!(
        (&exif["make"], &exif["model"], &exif["lens"]),
        (&json!("FerryCam"), &json!("FC-1"), &json!("Ferry 35mm f/2"))
    );
    assert_eq!(exif["orientation"], 6);
    let (lat, lon, alt) = (exif["gps"]["lat"].as_f64(), exif["gps"]["lon"].as_f64(), exif["gps"]["alt"].as_f64());
    assert!((lat.unwrap() - 48.8584).abs() < 1e-6 && (lon.unwrap() + 2.2945).abs() < 1e-6, "{exif}");
    assert_eq!(alt, Some(35.5));
    assert_eq!(event["media_status"], "done");

    let response = g.get(&format!("events/{id}/thumbnail")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (80, 160), "FERRY_THUMBNAIL_SIZE, upright");
}

#[tokio::test]
async fn a_thumbnail_from_the_client_wins_over_the_generated_one() {
    let app = spawn_app().await;
    let g = Gallery::new(&app).await;
    let photo = encode(&picture(800, 600), ImageFormat::Jpeg);
    let theirs = encode(&picture(40, 30), ImageFormat::Png);
    let id = g.upload("door.jpg", &photo, Some(&theirs)).await;
    let info = processed(&app, &Sha256Hex::of(&photo)).await;
    assert!(info.thumbnail_sha256.is_some(), "one was generated all the same");
    let response = g.get(&format!("events/{id}/thumbnail")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), theirs.as_slice(), "the client's thumbnail is served");
    assert_eq!(g.event(&id).await["width"], 800, "metadata shows all the same");
}

#[tokio::test]
async fn the_same_bytes_twice_are_processed_once() {
    let app = spawn_app().await;
    let g = Gallery::new(&app).await;
    let photo = encode(&picture(500, 500), ImageFormat::Png);
    let sha256 = Sha256Hex::of(&photo);
    let first = g.upload("a.png", &photo, None).await;
    processed(&app, &sha256).await;
    let second = g.upload("copy of a.png", &photo, None).await;
    app.state.jobs.run_until_idle().await.unwrap();

    assert_eq!(media_jobs(&app, &sha256).await.len(), 1, "one media job for one content");
    assert_eq!(app.blob_files().len(), 2, "the content and one thumbnail");
    for id in [first, second] {
        assert_eq!(g.event(&id).await["has_thumbnail"], true);
    }
    let thumbnail = processed(&app, &sha256).await.thumbnail_sha256.unwrap();
    assert!(media_jobs(&app, &thumbnail).await.is_empty(), "a generated thumbnail is not processed itself");
}

#[tokio::test]
async fn broken_and_hostile_files_fail_cleanly_with_a_reason_and_stay_intact() {
    let app = spawn_app().await;
    let g = Gallery::new(&app).await;
    let noisy = DynamicImage::ImageRgb8(RgbImage::from_fn(400, 300, |x, y| {
        let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
        Rgb([v, v.rotate_left(3), v.rotate_left(5)])
    }));
    let jpeg = encode(&noisy, ImageFormat::Jpeg);
    let truncated = jpeg[..jpeg.len() / 2].to_vec();
    let failing = [
        ("truncated.jpg", truncated, "jpeg"),
        ("bomb.png", bomb_png(50_000, 50_000), "limit"),
        ("wide-bomb.png", bomb_png(100_000, 100_000), "limit"),
    ];
    for (name, bytes, reason) in failing {
        let id = g.upload(name, &bytes, None).await;
        let sha256 = Sha256Hex::of(&bytes);
        let info = processed(&app, &sha256).await;
        assert_eq!(info.status, MediaStatus::Failed, "{name}: {info:?}");
        let error = info.error.clone().unwrap();
        eprintln!("{name} failed as it should: {error}");
        assert!(error.to_lowercase().contains(reason), "{name}: {error}");
        assert!(info.thumbnail_sha256.is_none());
        let jobs = media_jobs(&app, &sha256).await;
        assert_eq!((jobs[0].status, jobs[0].attempts), (JobStatus::Failed, 1), "{name}: failed at once, not retried");
        assert_eq!(jobs[0].last_error.as_deref(), Some(error.as_str()), "the job list shows the reason");

        let event = g.event(&id).await;
        assert_eq!((&event["media_status"], &event["has_thumbnail"]), (&json!("failed"), &json!(false)), "{event}");
        let file = g.get(&format!("events/{id}/file")).await;
        assert_eq!(file.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{name}: the item is intact");
        expect_error(g.get(&format!("events/{id}/thumbnail")).await, 404, "no_thumbnail").await;
    }

    // an extension that lies: the bytes decide
    let png = encode(&picture(300, 200), ImageFormat::Png);
    let id = g.upload("holiday.jpg", &png, None).await;
    let info = processed(&app, &Sha256Hex::of(&png)).await;
    assert_eq!((info.status, meta(&info, "format")), (MediaStatus::Done, &json!("png")));
    assert_eq!(g.event(&id).await["has_thumbnail"], true);
    let words = b"these are words, not a picture".to_vec();
    let id = g.upload("IMG_0002.JPG", &words, None).await;
    let info = processed(&app, &Sha256Hex::of(&words)).await;
    assert_eq!((info.status, meta(&info, "kind")), (MediaStatus::Done, &json!("other")));
    assert_eq!(g.event(&id).await["has_thumbnail"], false);

    // crafted EXIF: an impossible date, zero denominators, a field pointing far outside the
    // file; the picture still gets its thumbnail, the nonsense is dropped
    let bogus = tiff(
        vec![ascii(0x010F, "X")],
        vec![ascii(0x9003, "2023:13:45 99:99:99")],
        vec![ascii(0x0001, "N"), rational(0x0002, &[(1, 0), (0, 0), (5, 0)]), rational(0x0004, &[(1, 0)])],
    );
    let mut broken = tiff(vec![ascii(0x0110, "Y")], Vec::new(), Vec::new());
    broken[8..10].copy_from_slice(&0xFFFFu16.to_be_bytes()); // IFD0 claims 65,535 entries
    for (n, block) in [bogus, broken].into_iter().enumerate() {
        let crafted = with_exif(&encode(&picture(200 + n as u32, 100), ImageFormat::Jpeg), &block);
        g.upload(&format!("crafted-{n}.jpg"), &crafted, None).await;
        let info = processed(&app, &Sha256Hex::of(&crafted)).await;
        assert_eq!(info.status, MediaStatus::Done, "{info:?}");
        assert!(info.thumbnail_sha256.is_some());
        assert!(meta(&info, "captured").is_null() && meta(&info, "gps").is_null(), "{info:?}");
    }

    // a HEIC header over garbage: heif-convert refuses it (failed, with its reason), or
    // without heif-convert there is cleanly no thumbnail
    let mut heic = vec![0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'h', b'e', b'i', b'c', 0, 0, 0, 0];
    heic.extend(b"mif1heic");
    heic.extend(bytes_of(3000, 9));
    let id = g.upload("IMG_0003.HEIC", &heic, None).await;
    let info = processed(&app, &Sha256Hex::of(&heic)).await;
    let decoder =
        std::process::Command::new("heif-convert").arg("--version").output().is_ok_and(|o| o.status.success());
    let status = if decoder { MediaStatus::Failed } else { MediaStatus::Done };
    assert_eq!((info.status, meta(&info, "kind")), (status, &json!("image")), "{info:?}");
    assert!(info.error.as_deref().unwrap().contains("heif-convert"), "{info:?}");
    assert_eq!(g.event(&id).await["has_thumbnail"], false);
}

#[tokio::test]
async fn a_video_gets_duration_codec_size_and_a_frame_when_ffmpeg_is_installed() {
    let installed = std::process::Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "SKIPPED a_video_gets_duration_codec_size_and_a_frame: ffmpeg is not installed (apt-get install ffmpeg)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10", "-c:v", "mpeg4"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let video = std::fs::read(&path).unwrap();

    let app = spawn_app().await;
    let g = Gallery::new(&app).await;
    let id = g.upload("clip.mp4", &video, None).await;
    let info = processed(&app, &Sha256Hex::of(&video)).await;
    assert_eq!(info.status, MediaStatus::Done, "{info:?}");
    let event = g.event(&id).await;
    assert_eq!((&event["media_type"], &event["codec"]), (&json!("video"), &json!("mpeg4")), "{event}");
    assert_eq!((&event["width"], &event["height"]), (&json!(320), &json!(240)));
    assert!((event["duration"].as_f64().unwrap() - 2.0).abs() < 0.2, "{event}");
    assert_eq!(event["has_thumbnail"], true);
    let response = g.get(&format!("events/{id}/thumbnail")).await;
    let frame = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((frame.width(), frame.height()), (320, 240));
    // once its jobs are over (its rendition's too: MPEG-4 Part 2 plays in no browser)
    for _ in 0..600 {
        let jobs = app.catalog().list_jobs(None).await.unwrap();
        if jobs.iter().all(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.data_dir.path().join("media-work").read_dir().unwrap().next().is_none(), "no spooled copy left");
}

#[tokio::test]
async fn the_device_familys_media_objects_carry_the_metadata() {
    let app = spawn_app().await;
    let (_owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let photo = photo_with_exif();
    let hash = cam.upload(&photo).await;
    let created = cam
        .post_ok(
            "media",
            json!({"media_path": "/DCIM/IMG_0001.JPG", "file_hash": hash,
                                              "file_size": photo.len(), "ctime": null, "mtime": null}),
        )
        .await;
    assert!(created["media_id"].is_i64());
    processed(&app, &Sha256Hex::of(&photo)).await;
    let page = cam.post_ok("media_list", json!({})).await;
    let item = &page["media_list"][0];
    assert_eq!(item["captured"], "2023-07-14T15:16:17+02:00", "{item}");
    assert_eq!((&item["width"], &item["height"]), (&json!(320), &json!(640)));
    assert_eq!(item["exif"]["model"], "FC-1");
    assert_eq!(item["media"]["format"], "jpeg");
}

#[tokio::test]
async fn a_generated_thumbnail_lives_as_long_as_its_content() {
    let app = spawn_app_with(|layer| {
        layer.insert("gc_grace", "0s".into());
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let sha256 = put(&app, &alice, &encode(&picture(600, 400), ImageFormat::Png)).await;
    let thumbnail = processed(&app, &sha256).await.thumbnail_sha256.unwrap();
    app.state.jobs.run_until_idle().await.unwrap();
    assert!(app.catalog().blob(&thumbnail).await.unwrap().is_some(), "kept while its content lives");
    assert_eq!(app.blob_files().len(), 2);

    app.catalog().release_hold(alice.user_id, &sha256).await.unwrap();
    app.state.jobs.run_until_idle().await.unwrap();
    assert!(app.blob_files().is_empty(), "the content, then its thumbnail, were collected");
    assert!(app.catalog().media_info(&[sha256, thumbnail]).await.unwrap().is_empty(), "the result went too");
}

#[tokio::test]
async fn on_an_idle_server_processing_starts_within_a_second() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let photo = encode(&picture(320, 240), ImageFormat::Jpeg);
    let started = Instant::now();
    let sha256 = put(&app, &alice, &photo).await;
    // only the server's own runner works here
    let info = loop {
        if let Some(info) = app.catalog().media_info(std::slice::from_ref(&sha256)).await.unwrap().pop() {
            break info;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not processed within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    eprintln!("uploaded and processed by the server's runner in {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(info.status, MediaStatus::Done);
}
