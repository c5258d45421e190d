//! Renditions made by a real `ferry serve`: killed in the middle of a transcode, and on a
//! machine without ffmpeg.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fixtures::{Clip, clip, made, probe, tools_installed};
use crate::helpers::*;

/// A user with a token and a device `cam` in `data`.
fn account(data: &Path) -> String {
    assert_eq!(admin_json(data, &["user", "add", "alice", "--level", "uploader"]).0, 0);
    let (code, token) = admin_json(data, &["token", "add", "--user", "alice", "--scopes", "upload,read"]);
    assert_eq!(code, 0, "{token}");
    assert_eq!(admin_json(data, &["device", "add", "--user", "alice", "--name", "cam"]).0, 0);
    token["token"].as_str().unwrap().to_owned()
}

async fn upload(client: &reqwest::Client, server: &FerryProcess, token: &str, name: &str, bytes: &[u8]) -> String {
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .part("event", reqwest::multipart::Part::bytes(bytes.to_vec()));
    let url = format!("{}/api/gallery/cam/upload", server.address);
    let body: Value = client.post(url).bearer_auth(token).multipart(form).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["success"], true, "{body}");
    body["eventId"].as_str().unwrap().to_owned()
}

/// The transcode jobs of content `sha256`, as `admin jobs list` shows them.
fn transcode_jobs(data: &Path, sha256: &str) -> Vec<Value> {
    let (code, jobs) = admin_json(data, &["jobs", "list"]);
    assert_eq!(code, 0, "{jobs}");
    let jobs = jobs["items"].as_array().cloned().unwrap_or_default();
    jobs.into_iter().filter(|j| j["kind"] == "transcode" && j["payload"]["sha256"] == sha256).collect()
}

/// Processes (pid) running an ffmpeg on a file under `data`.
fn ffmpegs_under(data: &Path) -> Vec<u32> {
    let needle = data.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("ffmpeg") && cmdline.contains("rendition.mp4") && cmdline.contains(&needle))
                .then_some(pid)
        })
        .collect()
}

#[tokio::test]
async fn killed_mid_transcode_the_server_makes_one_rendition_after_a_restart_and_leaves_nothing_behind() {
    if !tools_installed() {
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path();
    let token = account(data);
    // long enough that the transcode runs for seconds on two cores (~5 s alone), and over
    // FERRY_TRANSCODE_MAX_DIMENSION so the rendition is scaled
    let mov = made(Clip::HevcMov, 20, 1280, 720);
    let sha256 = sha256_hex(&mov.bytes);
    let client = reqwest::Client::new();
    let mut server = FerryProcess::start(data, &[]);
    let id = upload(&client, &server, &token, "long.mov", &mov.bytes).await;

    let started = Instant::now();
    while ffmpegs_under(data).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the transcode never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("KILL");
    server.wait_exit(10).expect("killed");
    let killed = Instant::now();
    // seconds of work were left: only being killed with its server ends it this soon
    while !ffmpegs_under(data).is_empty() {
        assert!(killed.elapsed() < Duration::from_millis(1500), "ffmpeg outlived its server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(transcode_jobs(data, &sha256).iter().all(|j| j["status"] == "running"), "cut short while running");

    // the job runs again once its lease has passed (a minute), in the restarted server
    let server = FerryProcess::start(data, &[]);
    let events = format!("{}/api/gallery/cam/events", server.address);
    loop {
        let listed: Vec<Value> = client.get(&events).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let event = listed.into_iter().find(|e| e["id"] == id).unwrap();
        if event["has_rendition"] == true {
            assert_eq!(event["rendition"]["content_type"], "video/mp4", "{event}");
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(150), "no rendition 150 s after the kill: {event}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let jobs = transcode_jobs(data, &sha256);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((&jobs[0]["status"], &jobs[0]["attempts"]), (&json!("done"), &json!(2)), "{jobs:?}");

    let rendition = client.get(format!("{events}/{id}/rendition")).bearer_auth(&token).send().await.unwrap();
    let rendition = rendition.bytes().await.unwrap();
    let path = data.join("fetched.mp4");
    std::fs::write(&path, &rendition).unwrap();
    let facts = probe(&path);
    let video = facts["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "video").unwrap().clone();
    assert_eq!(video["codec_name"], "h264", "{facts}");
    assert_eq!((&video["width"], &video["height"]), (&json!(1080), &json!(608)), "long side scaled to 1080");
    std::fs::remove_file(&path).unwrap();

    // one rendition, and nothing half-made: no stray blob, row, staging or work folder
    let (_, usage) = admin_json(data, &["usage"]);
    assert_eq!(usage["server"]["rendition_bytes"], rendition.len(), "{usage}");
    assert_eq!(usage["server"]["blobs"], 3, "the video, its thumbnail, one rendition: {usage}");
    let (_, check) = admin_json(data, &["check"]);
    for field in ["blobs_without_rows", "rows_without_blobs", "pending_intents", "staging_leftovers"] {
        assert_eq!(check[field], json!([]), "admin check {field}: {check}");
    }
    let work = files_under(&data.join("media-work"));
    assert!(work.is_empty(), "work files left: {work:?}");
    drop(server);
}

#[tokio::test]
async fn without_ffmpeg_videos_keep_working_and_the_transcode_job_says_why() {
    if !tools_installed() {
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path();
    let token = account(data);
    let mov = clip(Clip::HevcMov);
    let sha256 = sha256_hex(&mov.bytes);
    // a PATH where no tool is found
    let empty = tempfile::tempdir().unwrap();
    let log = data.join("server.log");
    let server = FerryProcess::start_logging(data, &[("PATH", empty.path().to_str().unwrap())], &log);
    let client = reqwest::Client::new();
    let id = upload(&client, &server, &token, "IMG_0001.MOV", &mov.bytes).await;

    let started = Instant::now();
    let job = loop {
        if let Some(job) = transcode_jobs(data, &sha256).into_iter().find(|j| j["status"] == "failed") {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the transcode job did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(job["last_error"].as_str().unwrap().contains("ffmpeg is not installed"), "{job}");
    let events = format!("{}/api/gallery/cam/events", server.address);
    let listed: Vec<Value> = client.get(&events).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let event = listed.iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert_eq!(event["has_rendition"], false, "{event}");
    let file = client.get(format!("{events}/{id}/file")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(file.bytes().await.unwrap(), mov.bytes, "the video downloads as it was sent");
    // the operator learns it from the log as the server starts, not from a failed job
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("ffmpeg is not installed: videos get no facts, thumbnails or renditions"), "{log}");
}
