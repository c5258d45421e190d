//! `GET /metrics` (issue 23): every series from the start, moving with uploads of two
//! families and their dedup, and closed without the token when one is set.

use ferry::domain::Level;
use serde_json::json;

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::lifecycle::session_upload;

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let request = app.client.get(app.url("/metrics"));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// The value of one series in a scrape.
fn value(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    let line = line.unwrap_or_else(|| panic!("{series} missing from:\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn requests_uploads_and_dedup_are_counted_by_family() {
    let app = spawn_app().await;
    let first = scrape(&app, None).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = first.text().await.unwrap();
    for series in [
        r#"ferry_uploads_total{family="session",outcome="finished"}"#,
        r#"ferry_upload_bytes_total{family="device"}"#,
        r#"ferry_dedup_bytes_total{family="session"}"#,
        r#"ferry_jobs_total{kind="media_process",outcome="done"}"#,
        r#"ferry_job_queue_depth{kind="remote_fetch"}"#,
        "ferry_blobs",
        "ferry_blob_store_bytes",
    ] {
        assert_eq!(value(&text, series), 0.0, "{series} starts at zero");
    }

    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let photo = bytes_of(3000, 1);
    session_upload(&app.address, &alice.token, &photo).await;
    session_upload(&app.address, &alice.token, &photo).await; // the same content again
    let (_, cam) = DeviceClient::setup(&app, "bob", "/").await;
    let clip = bytes_of(5000, 2);
    cam.upload(&clip).await;
    // asked again, the device need not send it: counted as deduplicated
    let check =
        cam.post_ok("upload", json!({"file_list": [{"file_hash": sha256_hex(&clip), "file_size": 5000}]})).await;
    assert_eq!(check["upload_list"][0]["skip_upload"], true);

    let text = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(value(&text, r#"ferry_uploads_total{family="session",outcome="finished"}"#), 2.0);
    assert_eq!(value(&text, r#"ferry_upload_bytes_total{family="session"}"#), 6000.0);
    assert_eq!(value(&text, r#"ferry_dedup_bytes_total{family="session"}"#), 3000.0);
    assert_eq!(value(&text, r#"ferry_upload_bytes_total{family="device"}"#), 5000.0);
    assert_eq!(value(&text, r#"ferry_dedup_bytes_total{family="device"}"#), 5000.0);
    assert_eq!(value(&text, "ferry_blobs"), 2.0);
    assert_eq!(value(&text, "ferry_blob_store_bytes"), 8000.0);
    assert_eq!(value(&text, r#"ferry_http_requests_total{family="session",route="/api/upload/id",status="200"}"#), 2.0);
    let device_route = r#"ferry_http_requests_total{family="device",route="/device/1/media_grant/{media_grant_id}/upload",status="200"}"#;
    assert_eq!(value(&text, device_route), 2.0);
    assert!(value(&text, r#"ferry_http_request_duration_seconds_count{family="session"}"#) >= 4.0);
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let app = spawn_app_with(|layer| {
        layer.insert("metrics_token", "scrape-me".into());
    })
    .await;
    expect_error(scrape(&app, None).await, 401, "unauthorized").await;
    expect_error(scrape(&app, Some("wrong")).await, 401, "unauthorized").await;
    assert_eq!(scrape(&app, Some("scrape-me")).await.status(), 200);
}

#[tokio::test]
async fn expired_uploads_are_counted_by_family() {
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "1s".into());
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let url = app.url("/api/users/multipart_upload_start/clip?part_count=2");
    let started = app.client.get(url).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(started.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // the server's own runner may get there first: either way it is counted once
    while app.state.uploads.expire_one().await.unwrap().is_some() {}
    let text = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(value(&text, r#"ferry_uploads_total{family="multipart",outcome="expired"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="tus",outcome="expired"}"#), 0.0);
}

#[tokio::test]
async fn an_upload_arriving_counts_as_active_until_it_ends_and_catalog_waits_are_reported() {
    use crate::in_flight::{form_end, form_file, form_upload, in_flight, register_session};
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let session = register_session(&app.client, &app.address, &alice.token, "cam").await;
    let url = app.url(&format!("/api/file/{}", session["ulid"].as_str().unwrap()));
    let (feed, answer) = in_flight(form_upload(&app.client, &url, &alice.token), form_file("a.jpg", b"first")).await;
    let text = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(value(&text, r#"ferry_uploads_active{family="session"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="session",outcome="started"}"#), 1.0);

    // the client's connection breaks mid-body: no longer active, counted as failed
    feed.send(Err(std::io::Error::other("the client went away"))).await.unwrap();
    drop(feed);
    let _ = answer.await;
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&app, None).await.text().await.unwrap();
        if value(&text, r#"ferry_uploads_active{family="session"}"#) == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(value(&text, r#"ferry_uploads_active{family="session"}"#), 0.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="session",outcome="failed"}"#), 1.0);

    // a whole upload (to a session of its own: the broken one may still be letting go of its
    // slot there): started and finished
    let session = register_session(&app.client, &app.address, &alice.token, "cam2").await;
    let url = app.url(&format!("/api/file/{}", session["ulid"].as_str().unwrap()));
    // on a connection of its own: none the broken upload's client may have left half-closed
    let fresh = reqwest::Client::new();
    let (feed, answer) = in_flight(form_upload(&fresh, &url, &alice.token), form_file("b.jpg", b"second")).await;
    let _ = feed.send(Ok(form_end())).await;
    drop(feed);
    let answer = answer.await.unwrap().unwrap();
    let status = answer.status();
    assert_eq!(status, 200, "{}", answer.text().await.unwrap());
    let text = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(value(&text, r#"ferry_uploads_total{family="session",outcome="started"}"#), 2.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="session",outcome="finished"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_active{family="session"}"#), 0.0);

    // a tus PATCH is a body too; the file it completes is a finished upload
    let tus = crate::tus::Tus::new(&app, "bob").await;
    let url = tus.create(3000, "").await;
    let patch = tus.request(reqwest::Method::PATCH, &url).header("upload-offset", "0");
    let patched = patch.header("content-type", crate::tus::OCTETS).body(bytes_of(3000, 4)).send().await.unwrap();
    assert_eq!(patched.status(), 204);
    let text = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(value(&text, r#"ferry_uploads_total{family="tus",outcome="started"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="tus",outcome="finished"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_active{family="tus"}"#), 0.0);

    let backend = if std::env::var("FERRY_TEST_API_ON_POSTGRES").as_deref() == Ok("1") { "postgres" } else { "sqlite" };
    for kind in ["read", "write"] {
        let acquires = value(&text, &format!(r#"ferry_catalog_acquires_total{{backend="{backend}",kind="{kind}"}}"#));
        assert!(acquires >= 1.0, "{kind} connections were counted");
        let waited = value(&text, &format!(r#"ferry_catalog_wait_seconds_total{{backend="{backend}",kind="{kind}"}}"#));
        assert!(waited >= 0.0);
    }
}

#[tokio::test]
async fn device_parts_put_to_the_shared_part_route_count_as_the_device_family() {
    use crate::device_multipart::{FILE_HASH, SIZE, file_and_plan, send_missing};
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let started = cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
    let parts = send_missing(&app, &data, &started).await;
    let complete = json!({"file_size": SIZE, "file_hash": FILE_HASH, "s3_bucket_id": 1,
        "upload_id": started["upload_id"], "part_list": parts});
    assert_eq!(cam.post("multipart_complete", complete).await.status(), 201);

    let text = scrape(&app, None).await.text().await.unwrap();
    // six part bodies arrived and one file was committed, all of the device family
    assert_eq!(value(&text, r#"ferry_uploads_total{family="device",outcome="started"}"#), 6.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="device",outcome="finished"}"#), 1.0);
    assert_eq!(value(&text, r#"ferry_uploads_total{family="multipart",outcome="started"}"#), 0.0);
    let parts_route = r#"ferry_http_requests_total{family="device",route="/signed/part",status="200"}"#;
    assert_eq!(value(&text, parts_route), 6.0);
    assert!(!text.contains(r#"family="multipart",route="/signed/part""#), "{text}");
}
