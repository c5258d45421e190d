//! Slow-body clients (issue 27): an upload body that sends nothing for `body_idle_timeout` is
//! refused 408 `body_timeout` and its connection ends, so stalled clients cannot hold
//! connections, tasks and staging files for ever (slow headers: serving.rs).

use std::time::{Duration, Instant};

use ferry::domain::Level;

use crate::helpers::*;
use crate::in_flight::in_flight;
use crate::tus::{OCTETS, Tus};

async fn app_with_idle_of_one_second() -> TestApp {
    spawn_app_with(|layer| {
        layer.insert("body_idle_timeout", "1s".into());
    })
    .await
}

#[tokio::test]
async fn a_signed_put_whose_body_stalls_is_refused_and_keeps_nothing() {
    let app = app_with_idle_of_one_second().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let url = app.signed_put(alice.user_id, Some(10_000), None);
    let started = Instant::now();
    let put = app.client.put(&url).header("content-length", "10000");
    let (feed, answer) = in_flight(put, bytes_of(3000, 1)).await;
    let refused = answer.await.unwrap().unwrap();
    let waited = started.elapsed();
    expect_error(refused, 408, "body_timeout").await;
    assert!(waited < Duration::from_secs(5), "refused after {waited:?}");
    drop(feed); // still open on the client's side: the server did not wait for it
    assert!(app.staging_left_behind().await.is_empty(), "staging left: {:?}", app.staging_files());
    assert!(app.blob_files().is_empty());
}

#[tokio::test]
async fn a_tus_patch_whose_body_stalls_is_refused_and_keeps_what_arrived() {
    let app = app_with_idle_of_one_second().await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(10_000, "").await;
    let patch = tus
        .request(reqwest::Method::PATCH, &url)
        .header("upload-offset", "0")
        .header("content-type", OCTETS)
        .header("content-length", "10000");
    let (feed, answer) = in_flight(patch, bytes_of(4000, 2)).await;
    expect_error(answer.await.unwrap().unwrap(), 408, "body_timeout").await;
    drop(feed);
    // the bytes that arrived stay: the client resumes from there
    let head = tus.request(reqwest::Method::HEAD, &url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["upload-offset"], "4000");
}
