//! Sizes clients declare (API.md Conventions: unsigned integers stored as i64): above the
//! configured maximum they are refused — per entry in the device `upload` answer (§5) —
//! and nothing is ever stored as a negative number.

use axum::Router;
use axum::routing::get;
use ferry::domain::Level;
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

const MIB: u64 = 1024 * 1024;
/// 2^63: one more than the largest size a catalog column holds.
const TOO_BIG: u64 = 1 << 63;

async fn small_max_app() -> TestApp {
    spawn_app_with(|layer| {
        layer.insert("max_upload_size", "16MiB".into());
    })
    .await
}

/// Rows of the SQLite catalog holding a negative size or limit (0 on PostgreSQL, whose
/// conformance runs check the same paths).
async fn negative_sizes(app: &TestApp) -> i64 {
    let url = &app.state.config.database_url;
    if !url.starts_with("sqlite:") {
        return 0;
    }
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let (count,): (i64,) = sqlx::query_as(
        "select (select count(*) from events where size < 0)
              + (select count(*) from sessions where max_filesize < 0 or max_files < 0 or max_size < 0)
              + (select count(*) from uploads where file_size < 0 or size < 0)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    count
}

#[tokio::test]
async fn upload_entries_over_the_maximum_are_refused_one_by_one() {
    let app = small_max_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let hash = |i: u64| sha256_hex(&i.to_be_bytes());
    let sizes = [TOO_BIG, 10, 16 * MIB + 1, 16 * MIB, u64::MAX];
    let list: Vec<Value> = sizes.iter().zip(0..).map(|(s, i)| json!({"file_hash": hash(i), "file_size": s})).collect();
    let answer = cam.post_ok("upload", json!({"file_list": list})).await;
    let entries = answer["upload_list"].as_array().unwrap();
    assert_eq!(entries.len(), sizes.len());
    for ((entry, size), i) in entries.iter().zip(sizes).zip(0..) {
        assert_eq!(entry["file_hash"], hash(i));
        assert_eq!(entry["file_size"], size);
        assert_ne!(entry["skip_upload"], true);
        if size > 16 * MIB {
            assert_eq!(entry["error"], "too_large", "{entry}");
            assert!(entry.get("signed_opts").is_none(), "no signed PUT for a refused entry: {entry}");
        } else {
            assert!(entry.get("error").is_none(), "{entry}");
            assert!(entry["signed_opts"]["url"].is_string(), "{entry}");
        }
    }
}

#[tokio::test]
async fn a_device_multipart_over_the_maximum_is_413() {
    let app = small_max_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    // a consistent plan for 16 MiB + 1 byte: chunks of 8 MiB, 8 MiB and 1 byte
    let digests: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 32]).collect();
    let file_hash = sha256_hex(&digests.concat());
    let parts: Vec<Value> = [8 * MIB, 8 * MIB, 1]
        .iter()
        .zip(&digests)
        .zip(1..)
        .map(|((size, digest), num)| json!({"part_num": num, "part_size": size, "part_hash": hex::encode(digest)}))
        .collect();
    let started =
        cam.post("multipart", json!({"file_size": 16 * MIB + 1, "file_hash": file_hash, "part_list": parts})).await;
    expect_error(started, 413, "too_large").await;
    assert_eq!(negative_sizes(&app).await, 0);
}

#[tokio::test]
async fn registrations_and_media_with_sizes_no_file_can_have_are_400() {
    let app = small_max_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let hash = sha256_hex(b"x");
    for (size, code) in [(TOO_BIG, "invalid_size"), (u64::MAX, "invalid_size"), (16 * MIB + 1, "too_large")] {
        let registered = cam.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": hash, "file_size": size})).await;
        expect_error(registered, 400, code).await;
        let body = json!({"media_path": "/a.jpg", "file_hash": hash, "file_size": size});
        expect_error(cam.post("media", body).await, 400, code).await;
    }
    // an item to update: real content of the account
    let data = bytes_of(100, 1);
    let held = cam.upload(&data).await;
    let created = cam.create("/b.jpg", &held, data.len()).await;
    let media_id = created.json::<Value>().await.unwrap()["media_id"].as_i64().unwrap();
    for (size, code) in [(TOO_BIG, "invalid_size"), (16 * MIB + 1, "too_large")] {
        let update = cam.post(&format!("media/{media_id}"), json!({"file_hash": held, "file_size": size})).await;
        expect_error(update, 400, code).await;
    }
}

#[tokio::test]
async fn session_limits_beyond_a_catalog_integer_are_invalid_options() {
    let app = spawn_app().await;
    let token = app.user("alice", Level::Uploader, "upload").await.token;
    let register = |body: Value| app.client.post(app.url("/api/upload/id")).bearer_auth(&token).json(&body).send();
    for option in ["max_filesize", "max_size", "max_files"] {
        for value in [json!(TOO_BIG), json!(u64::MAX), json!(TOO_BIG.to_string())] {
            let response = register(json!({"folder_id": "f", option: value})).await.unwrap();
            let body = expect_error(response, 400, "invalid_option").await;
            assert_eq!(body["status"], "error", "{option}={value}: {body}");
        }
        let largest = register(json!({"folder_id": "f", option: i64::MAX})).await.unwrap();
        assert_eq!(largest.status(), 200, "{option} = i64::MAX");
    }
    let form = app
        .client
        .post(app.url("/api/upload/id"))
        .bearer_auth(&token)
        .form(&[("folder_id", "f"), ("max_size", "9223372036854775808")])
        .send()
        .await
        .unwrap();
    expect_error(form, 400, "invalid_option").await;
    assert_eq!(negative_sizes(&app).await, 0);
}

#[tokio::test]
async fn a_harvested_size_beyond_a_catalog_integer_never_wraps_negative() {
    let index = json!([
        {"name": "big.jpg", "size": TOO_BIG},
        {"name": "huge.jpg", "size": u64::MAX},
        {"name": "ok.jpg", "size": 1234}
    ]);
    let source = Router::new().route("/cam/index.json", get(move || async move { axum::Json(index.clone()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/cam", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, source).await.unwrap() });

    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    let device = app.device(&owner, "cam").await;
    app.catalog().set_pull_url(ferry::domain::DeviceId(device.device_id), Some(&base)).await.unwrap();
    let harvest = app.client.post(app.url("/api/gallery/cam/harvest")).bearer_auth(&owner.token).send().await.unwrap();
    assert_eq!(harvest.status(), 200);
    assert_eq!(harvest.json::<Value>().await.unwrap()["created"], 3);
    let events = app.client.get(app.url("/api/gallery/cam/events")).bearer_auth(&owner.token).send().await.unwrap();
    let events: Vec<Value> = events.json().await.unwrap();
    for event in &events {
        let size = event["size"].as_u64().unwrap();
        assert!(size <= i64::MAX as u64, "{event}");
    }
    assert_eq!(events.iter().find(|e| e["name"] == "ok.jpg").unwrap()["size"], 1234);
    let stats = app.client.get(app.url("/api/gallery/cam/stats")).bearer_auth(&owner.token).send().await.unwrap();
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["total_size"], 1234, "{stats}");
    assert_eq!(negative_sizes(&app).await, 0);
}
