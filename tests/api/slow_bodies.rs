//! Slow-body clients (issue 27): an upload body that sends nothing for `body_idle_timeout` is
//! refused 408 `body_timeout` and its connection ends, so stalled clients cannot hold
//! connections, tasks and staging files for ever (slow headers: serving.rs). Any other body
//! (JSON, a form) gets the same answer a second later.

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

#[tokio::test]
async fn a_json_or_form_body_that_stalls_is_refused_and_its_connection_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app_with_idle_of_one_second().await;
    let (alice, cam) = crate::device_client::DeviceClient::setup(&app, "alice", "/").await;
    let head = |path: &str, content_type: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: 500\r\n\r\n",
            alice.token
        )
    };
    let multipart_field = "--XX\r\nContent-Disposition: form-data; name=\"folder_id\"\r\n\r\nph";
    let partial_bodies = [
        (head(&format!("/device/1/current?device_session_key={}", cam.key), "application/json"), "{"),
        (head("/api/upload/id", "multipart/form-data; boundary=XX"), multipart_field),
        (head("/api/upload/id", "application/x-www-form-urlencoded"), "folder_id=ph"),
        (head("/web/signin", "application/x-www-form-urlencoded"), "token="),
    ];
    for (head, partial) in partial_bodies {
        let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
        stream.write_all(format!("{head}{partial}").as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "{head}: the connection is still open after {:?}", started.elapsed());
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{head}: {answer}");
        assert!(answer.contains(r#""error":"body_timeout""#), "{head}: {answer}");
    }
    let sessions = app.client.post(app.url("/api/upload/id")).bearer_auth(&alice.token).json(&serde_json::json!({}));
    assert_eq!(sessions.send().await.unwrap().status(), 400, "the server goes on answering");
}
