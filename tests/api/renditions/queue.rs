//! A long transcode holds its own worker only: other jobs keep running beside it.

use std::time::{Duration, Instant};

use ferry::catalog::JobStatus;
use ferry::domain::{JobKind, Level, Sha256Hex};

use super::fixtures::{Clip, made, tools_installed};
use crate::helpers::*;

async fn job_status(app: &TestApp, kind: JobKind, sha256: &str) -> Option<JobStatus> {
    let jobs = app.catalog().list_jobs(None).await.unwrap();
    jobs.into_iter().find(|j| j.kind == kind && j.payload["sha256"] == sha256).map(|j| j.status)
}

#[tokio::test]
async fn a_photo_gets_its_thumbnail_while_a_long_transcode_runs() {
    if !tools_installed() {
        return;
    }
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let put = |bytes: Vec<u8>| {
        let url = app.signed_put(alice.user_id, None, None);
        let client = app.client.clone();
        async move { assert_eq!(client.put(url).body(bytes).send().await.unwrap().status(), 200) }
    };
    // seconds of transcoding (~5 s on two idle cores), left to the server's own runner
    let mov = made(Clip::HevcMov, 20, 1280, 720);
    put(mov.bytes.clone()).await;
    let video = sha256_hex(&mov.bytes);
    let started = Instant::now();
    while job_status(&app, JobKind::Transcode, &video).await != Some(JobStatus::Running) {
        assert!(started.elapsed() < Duration::from_secs(30), "the transcode never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let photo = crate::media::files::encode(&crate::media::files::picture(800, 600), image::ImageFormat::Png);
    put(photo.clone()).await;
    let sha256 = Sha256Hex::of(&photo);
    let started = Instant::now();
    loop {
        if let Some(info) = app.catalog().media_info(std::slice::from_ref(&sha256)).await.unwrap().pop() {
            assert!(info.thumbnail_sha256.is_some(), "{info:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no thumbnail within 5 s of the upload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let transcode = job_status(&app, JobKind::Transcode, &video).await;
    assert_eq!(transcode, Some(JobStatus::Running), "the photo was processed beside the transcode, not after it");
}
