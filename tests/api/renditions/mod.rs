//! Playable renditions (issue 24): media a browser cannot show gets an H.264/AAC MP4 or a
//! JPEG, made by the `transcode` job with the real ffmpeg and heif-convert from fixtures the
//! tests make with the same tools (an HEVC MOV, an MJPEG AVI, an H.264 MP4 that needs
//! nothing, a HEIC photo, a corrupt file), and served through every family.

pub(crate) mod fixtures;
mod process;
mod queue;

use std::time::Duration;

use ferry::catalog::{Job, JobStatus};
use ferry::domain::{JobKind, Level, Sha256Hex};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;
use fixtures::{Clip, clip, heic_photo, probe, tools_installed};

/// Drives the jobs until `sha256` has no unfinished job of any kind (the server's own
/// runner may hold one), then returns its transcode jobs.
async fn settled(app: &TestApp, sha256: &str) -> Vec<Job> {
    for _ in 0..1200 {
        app.state.jobs.run_until_idle().await.unwrap();
        let jobs: Vec<Job> = app
            .catalog()
            .list_jobs(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.payload["sha256"] == sha256)
            .collect();
        if jobs.iter().all(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed)) {
            return jobs.into_iter().filter(|j| j.kind == JobKind::Transcode).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs of {sha256} still unfinished after a minute");
}

async fn gallery_event(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.client.get(app.url("/api/gallery/cam/events")).bearer_auth(token).send().await.unwrap();
    let events: Vec<Value> = response.json().await.unwrap();
    events.into_iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("event {id} listed"))
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// Writes `bytes` to a file and asks ffprobe what it is.
fn probed(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendition");
    std::fs::write(&path, bytes).unwrap();
    probe(&path)
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    let streams = probe["streams"].as_array().unwrap();
    streams.iter().find(|s| s["codec_type"] == kind).unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

fn video_seconds(probe: &Value) -> f64 {
    stream(probe, "video")["duration"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_hevc_mov_gets_an_h264_aac_rendition_that_plays_and_is_served_with_range() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app_with(|layer| {
        layer.insert("gc_grace", "0s".into());
        layer.insert("tombstone_retention", "0s".into());
    })
    .await;
    let owner = app.user("alice", Level::Uploader, "upload,read,delete").await;
    app.device(&owner, "cam").await;
    let mov = clip(Clip::HevcMov);
    let id = gallery_upload(&app, &owner.token, "IMG_0001.MOV", &mov.bytes).await;
    let jobs = settled(&app, &sha256_hex(&mov.bytes)).await;
    assert_eq!(jobs.len(), 1, "one transcode job: {jobs:?}");
    assert_eq!(jobs[0].status, JobStatus::Done, "{jobs:?}");

    let event = gallery_event(&app, &owner.token, &id).await;
    assert_eq!(event["has_rendition"], true, "{event}");
    assert_eq!(event["rendition"]["content_type"], "video/mp4", "{event}");
    let response = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/rendition")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let rendition = response.bytes().await.unwrap();
    assert_eq!(event["rendition"]["size"], rendition.len());
    let facts = probed(&rendition);
    assert_eq!(stream(&facts, "video")["codec_name"], "h264", "{facts}");
    assert_eq!(stream(&facts, "audio")["codec_name"], "aac", "{facts}");
    let (made, original) = (video_seconds(&facts), video_seconds(&probe(&mov.path)));
    assert!((made - original).abs() <= 1.0 / mov.fps, "{made} s against the original's {original} s");
    // faststart: the index comes before the frames, so a browser can start playing at once
    let moov = rendition.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = rendition.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");

    let ranged = app
        .client
        .get(app.url(&format!("/api/gallery/cam/events/{id}/rendition")))
        .bearer_auth(&owner.token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), rendition.slice(100..200));

    // counted in the server's usage, and collected with its media item
    let usage = app.catalog().server_usage().await.unwrap();
    assert_eq!(usage.rendition_bytes, rendition.len() as i64);
    let deleted = app.client.delete(app.url(&format!("/api/gallery/cam/events/{id}"))).bearer_auth(&owner.token);
    assert_eq!(deleted.send().await.unwrap().status(), 200);
    for _ in 0..100 {
        app.state.jobs.run_until_idle().await.unwrap();
        if app.blob_files().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.blob_files().is_empty(), "the video, its thumbnail and its rendition were collected");
    assert_eq!(app.catalog().server_usage().await.unwrap().rendition_bytes, 0);
}

#[tokio::test]
async fn an_mjpeg_avi_gets_a_rendition_and_an_h264_mp4_none_through_the_device_family() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let (_owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (avi, mp4) = (clip(Clip::MjpegAvi), clip(Clip::H264Mp4));
    for (path, file) in [("/DCIM/MVI_0001.AVI", &avi), ("/DCIM/VID_0002.MP4", &mp4)] {
        let hash = cam.upload(&file.bytes).await;
        assert_eq!(cam.create(path, &hash, file.bytes.len()).await.status(), 200);
        settled(&app, &sha256_hex(&file.bytes)).await;
    }
    let page = cam.post_ok("media_list", json!({})).await;
    let item = |path: &str| page["media_list"].as_array().unwrap().iter().find(|m| m["media_path"] == path).unwrap();
    let (avi_item, mp4_item) = (item("/DCIM/MVI_0001.AVI"), item("/DCIM/VID_0002.MP4"));
    assert_eq!(
        (&avi_item["has_rendition"], &avi_item["rendition"]["content_type"]),
        (&json!(true), &json!("video/mp4"))
    );
    assert_eq!(mp4_item["has_rendition"], false, "{mp4_item}");
    assert!(mp4_item.get("rendition").is_none(), "{mp4_item}");

    let hashes = [avi_item["file_hash"].clone(), mp4_item["file_hash"].clone()];
    let answer = cam.post_ok("download", json!({"hash_list": hashes})).await;
    let (avi_entry, mp4_entry) = (&answer["download_list"][0], &answer["download_list"][1]);
    assert!(mp4_entry["url"].is_string() && mp4_entry["rendition_url"].is_null(), "{mp4_entry}");
    let signed = app.client.get(avi_entry["rendition_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(signed.status(), 200);
    let rendition = signed.bytes().await.unwrap();
    assert_eq!(avi_item["rendition"]["size"], rendition.len());
    let facts = probed(&rendition);
    assert_eq!(stream(&facts, "video")["codec_name"], "h264");
    assert_eq!(stream(&facts, "audio")["codec_name"], "aac", "PCM sound is encoded too: {facts}");
    // the original is what the device sent
    let original = app.client.get(avi_entry["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(original.bytes().await.unwrap(), avi.bytes);
}

#[tokio::test]
async fn no_transcode_sessions_get_none_until_the_same_content_arrives_without_it() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    let mov = clip(Clip::HevcMov);
    let upload = |no_transcode: bool| {
        let (app, token, bytes) = (&app, owner.token.clone(), mov.bytes.clone());
        async move {
            let body = json!({"folder_id": "clips", "no_transcode": no_transcode, "autofinish": false});
            let session: Value = app
                .client
                .post(app.url("/api/upload/id"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let form = Form::new().part("file", Part::bytes(bytes).file_name("clip.mov"));
            let stored: Value = app
                .client
                .post(session["api"]["upload"].as_str().unwrap())
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (session["api"]["finish"].as_str().unwrap().to_owned(), stored["file_id"].as_str().unwrap().to_owned())
        }
    };
    let (finish, file_id) = upload(true).await;
    assert!(settled(&app, &sha256_hex(&mov.bytes)).await.is_empty(), "no_transcode queued no transcode job");
    let none = get(&app, &owner.token, &format!("/api/files/{file_id}/rendition")).await;
    expect_error(none, 404, "no_rendition").await;
    let finished: Value =
        app.client.delete(&finish).bearer_auth(&owner.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(finished["files"][0]["has_rendition"], false, "{finished}");

    // the same content through a session without the flag: the content gets its rendition,
    // and the first file (same content) serves it too
    let (finish, _) = upload(false).await;
    let jobs = settled(&app, &sha256_hex(&mov.bytes)).await;
    assert_eq!(jobs.iter().map(|j| j.status).collect::<Vec<_>>(), [JobStatus::Done]);
    let served = get(&app, &owner.token, &format!("/api/files/{file_id}/rendition")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(stream(&probed(&served.bytes().await.unwrap()), "video")["codec_name"], "h264");
    let finished: Value =
        app.client.delete(&finish).bearer_auth(&owner.token).send().await.unwrap().json().await.unwrap();
    let file = &finished["files"][0];
    assert_eq!((&file["has_rendition"], &file["rendition"]["content_type"]), (&json!(true), &json!("video/mp4")));
    assert_eq!(file["urls"]["rendition"], format!("{}/rendition", file["urls"]["file"].as_str().unwrap()));
}

#[tokio::test]
async fn a_corrupt_video_fails_its_job_with_a_reason_and_stays_downloadable() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&owner, "cam").await;
    let corrupt = clip(Clip::Corrupt).bytes;
    let id = gallery_upload(&app, &owner.token, "broken.mov", &corrupt).await;
    let jobs = settled(&app, &sha256_hex(&corrupt)).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].status, JobStatus::Failed, "{jobs:?}");
    let reason = jobs[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("ffprobe") || reason.contains("ffmpeg"), "the tool's reason: {reason}");
    let result = app.catalog().rendition_result(&Sha256Hex::of(&corrupt)).await.unwrap().unwrap();
    assert_eq!((result.rendition, result.error.as_deref()), (None, Some(reason.as_str())));

    let event = gallery_event(&app, &owner.token, &id).await;
    assert_eq!(event["has_rendition"], false, "{event}");
    expect_error(
        get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/rendition")).await,
        404,
        "no_rendition",
    )
    .await;
    let file = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/file")).await;
    assert_eq!(file.bytes().await.unwrap(), corrupt, "the original stays downloadable");
}

#[tokio::test]
async fn a_heic_photo_gets_an_upright_thumbnail_and_a_jpeg_preview() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&owner, "cam").await;
    let heic = heic_photo(640, 480, None);
    let id = gallery_upload(&app, &owner.token, "IMG_0002.HEIC", &heic).await;
    let jobs = settled(&app, &sha256_hex(&heic)).await;
    assert_eq!(jobs.iter().map(|j| j.status).collect::<Vec<_>>(), [JobStatus::Done], "{jobs:?}");

    let event = gallery_event(&app, &owner.token, &id).await;
    assert_eq!((&event["has_thumbnail"], &event["width"], &event["height"]), (&json!(true), &json!(640), &json!(480)));
    assert_eq!(event["rendition"]["content_type"], "image/jpeg", "{event}");
    let thumbnail = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/thumbnail")).await;
    let thumbnail = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240));
    let preview = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/rendition")).await;
    assert_eq!(preview.headers()["content-type"], "image/jpeg");
    let preview =
        image::load_from_memory_with_format(&preview.bytes().await.unwrap(), image::ImageFormat::Jpeg).unwrap();
    assert_eq!((preview.width(), preview.height()), (640, 480));

    // HEIF's own transforms say how it stands (libheif applies them); the EXIF orientation tag
    // beside them (6 on every portrait iPhone photo) must not turn the pixels a second time,
    // in the thumbnail or in a browser showing the preview
    let tagged = heic_photo(640, 480, Some(6));
    let id = gallery_upload(&app, &owner.token, "IMG_0003.HEIC", &tagged).await;
    settled(&app, &sha256_hex(&tagged)).await;
    let event = gallery_event(&app, &owner.token, &id).await;
    assert_eq!(
        (&event["width"], &event["height"], &event["exif"]["orientation"]),
        (&json!(640), &json!(480), &json!(6))
    );
    let thumbnail = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/thumbnail")).await;
    let thumbnail = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240));
    let preview = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/rendition")).await;
    let preview = preview.bytes().await.unwrap();
    assert!(!preview.windows(4).any(|w| w == b"Exif"), "no orientation tag for a browser to apply");
}

#[tokio::test]
async fn transcode_off_queues_nothing_and_always_renders_even_playable_videos() {
    if !tools_installed() {
        return;
    }
    let mp4 = clip(Clip::H264Mp4);
    for (policy, expected) in [("off", None), ("always", Some("video/mp4"))] {
        let app = spawn_app_with(|layer| {
            layer.insert("transcode", policy.into());
        })
        .await;
        let owner = app.user("alice", Level::Uploader, "upload,read").await;
        app.device(&owner, "cam").await;
        let id = gallery_upload(&app, &owner.token, "clip.mp4", &mp4.bytes).await;
        let jobs = settled(&app, &sha256_hex(&mp4.bytes)).await;
        assert_eq!(jobs.len(), usize::from(expected.is_some()), "{policy}: {jobs:?}");
        let event = gallery_event(&app, &owner.token, &id).await;
        assert_eq!(event["rendition"]["content_type"].as_str(), expected, "{policy}: {event}");
    }
}

#[tokio::test]
async fn an_hdr_video_gets_an_sdr_rendition() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&owner, "cam").await;
    let hlg = clip(Clip::HlgMov);
    let id = gallery_upload(&app, &owner.token, "IMG_0004.MOV", &hlg.bytes).await;
    settled(&app, &sha256_hex(&hlg.bytes)).await;
    let event = gallery_event(&app, &owner.token, &id).await;
    assert_eq!(event["media"]["color_transfer"], "arib-std-b67", "{event}");
    let rendition = get(&app, &owner.token, &format!("/api/gallery/cam/events/{id}/rendition")).await;
    let facts = probed(&rendition.bytes().await.unwrap());
    let video = stream(&facts, "video");
    let seen = (&video["codec_name"], &video["pix_fmt"], &video["color_transfer"], &video["color_primaries"]);
    assert_eq!(seen, (&json!("h264"), &json!("yuv420p"), &json!("bt709"), &json!("bt709")), "{facts}");
}
