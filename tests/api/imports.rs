//! Session family imports: remote URLs (with SSRF refusals) and bucket objects.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use ferry::catalog::JobStatus;
use ferry::domain::Level;
use serde_json::{Value, json};

use crate::helpers::*;

/// A small origin server on 127.0.0.1 standing in for "the internet".
async fn origin() -> String {
    let photo = bytes_of(70_000, 1);
    let app = Router::new()
        .route("/photo.jpg", get(move || async move { ([(header::CONTENT_TYPE, "image/jpeg")], photo.clone()) }))
        .route(
            "/streamed",
            get(|| async {
                let pieces = (0..5).map(|i| Ok::<_, std::io::Error>(bytes_of(10_000, 10 + i)));
                Body::from_stream(futures_util::stream::iter(pieces))
            }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/photo.jpg") }))
        .route("/to-private", get(|| async { Redirect::temporary("http://10.0.0.1/secret") }))
        .route("/to-metadata", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND.into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn start_import(app: &TestApp, token: &str, url: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/upload/remote"))
        .bearer_auth(token)
        .json(&json!({"url": url, "folder_id": "web"}))
        .send()
        .await
        .unwrap()
}

/// Polls the job until it settles (bounded: 10 s).
async fn settled(app: &TestApp, token: &str, job_id: &str) -> Value {
    for _ in 0..100 {
        let status: Value = app
            .client
            .get(app.url(&format!("/api/upload/remote/{job_id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "done" || status["status"] == "failed" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} did not settle");
}

#[tokio::test]
async fn remote_import_from_an_allow_listed_server() {
    let origin = origin().await;
    let app = spawn_app_with(|layer| {
        layer.insert("remote_allow", "127.0.0.1/32".into());
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    for (path, expected) in [("/photo.jpg", bytes_of(70_000, 1)), ("/hop", bytes_of(70_000, 1))] {
        let accepted = start_import(&app, &alice.token, &format!("{origin}{path}")).await;
        assert_eq!(accepted.status(), 202);
        let accepted: Value = accepted.json().await.unwrap();
        assert_eq!(accepted["status"], "queued");
        let job_id = accepted["job_id"].as_str().expect("job_id is a string").to_owned();
        let done = settled(&app, &alice.token, &job_id).await;
        assert_eq!(done["status"], "done", "{done}");
        let file = app
            .client
            .get(app.url(&format!("/api/files/{}", done["file_id"].as_str().unwrap())))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        assert_eq!(file.headers()["content-type"], "image/jpeg");
        assert_eq!(file.bytes().await.unwrap().as_ref(), &expected[..], "{path}");
    }
    let streamed: Value = start_import(&app, &alice.token, &format!("{origin}/streamed")).await.json().await.unwrap();
    assert_eq!(
        settled(&app, &alice.token, streamed["job_id"].as_str().unwrap()).await["status"],
        "done",
        "no Content-Length needed"
    );

    for path in ["/to-private", "/to-metadata", "/gone"] {
        let started: Value = start_import(&app, &alice.token, &format!("{origin}{path}")).await.json().await.unwrap();
        let failed = settled(&app, &alice.token, started["job_id"].as_str().unwrap()).await;
        assert_eq!(failed["status"], "failed", "{path}: {failed}");
        assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(failed.get("file_id").is_none());
    }
    let bob = app.user("bob", Level::Uploader, "upload").await;
    let peek = app
        .client
        .get(app.url(&format!("/api/upload/remote/{}", streamed["job_id"].as_str().unwrap())))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    expect_error(peek, 404, "no_such_job").await;
}

/// A server that answers at once and then sends its body a byte at a time (bounded: ~30 s).
async fn trickling_origin() -> String {
    let app = Router::new().route(
        "/trickle",
        get(|| async {
            let pieces = futures_util::stream::unfold(0u32, |sent| async move {
                if sent >= 60 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"x")), sent + 1))
            });
            Body::from_stream(pieces)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn import_status(app: &TestApp, token: &str, job_id: &str) -> Value {
    let url = app.url(&format!("/api/upload/remote/{job_id}"));
    app.client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn one_accounts_slow_imports_do_not_stall_another_accounts_import_or_media_processing() {
    let (fast, slow) = (origin().await, trickling_origin().await);
    let app = spawn_app_with(|layer| {
        layer.insert("remote_allow", "127.0.0.1/32".into());
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let bob = app.user("bob", Level::Uploader, "upload").await;
    let mut slow_jobs = Vec::new();
    for _ in 0..5 {
        let started: Value = start_import(&app, &alice.token, &format!("{slow}/trickle")).await.json().await.unwrap();
        slow_jobs.push(started["job_id"].as_str().unwrap().to_owned());
    }
    // alice's imports are running (or waiting for a worker of hers) before bob asks
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started: Value = start_import(&app, &bob.token, &format!("{fast}/photo.jpg")).await.json().await.unwrap();
    let bobs = started["job_id"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for _ in 0..80 {
        done = import_status(&app, &bob.token, &bobs).await;
        if done["status"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "done", "bob's import waited behind alice's slow ones: {done}");
    // the new content's media job ran too, while alice's imports still trickle
    let photo = sha256_hex(&bytes_of(70_000, 1));
    let mut processed = false;
    for _ in 0..80 {
        let jobs = app.catalog().list_jobs(None).await.unwrap();
        processed = jobs.iter().any(|j| {
            j.kind == ferry::domain::JobKind::MediaProcess
                && j.payload["sha256"] == photo.as_str()
                && j.status == JobStatus::Done
        });
        if processed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(processed, "media processing waited behind alice's imports");
    for job in &slow_jobs {
        let status = import_status(&app, &alice.token, job).await;
        assert_ne!(status["status"], "done", "a trickling import cannot be done yet: {status}");
    }
}

#[tokio::test]
async fn loopback_private_and_odd_schemes_are_refused_up_front() {
    let origin = origin().await;
    let port = origin.rsplit(':').next().unwrap().to_owned();
    let app = spawn_app().await; // no allow list
    let alice = app.user("alice", Level::Uploader, "upload").await;
    for target in [
        format!("{origin}/photo.jpg"),
        format!("http://localhost:{port}/photo.jpg"),
        format!("http://[::1]:{port}/photo.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/photo.jpg"),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://10.1.2.3/x".into(),
        "ftp://example.com/x".into(),
        "file:///etc/passwd".into(),
    ] {
        let refused = start_import(&app, &alice.token, &target).await;
        let body = expect_error(refused, 400, "forbidden_target").await;
        assert_eq!(body["status"], "error", "session family shape");
    }
    expect_error(start_import(&app, &alice.token, "not a url").await, 400, "invalid_url").await;
    assert!(app.catalog().list_jobs(None).await.unwrap().is_empty(), "nothing was queued");
}

#[tokio::test]
async fn blob_import_reads_and_hashes_objects_of_the_local_bucket() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let import = app.data_dir.path().join("import");
    std::fs::create_dir_all(import.join("cam")).unwrap();
    let data = bytes_of(123_456, 5);
    std::fs::write(import.join("cam/a.bin"), &data).unwrap();
    std::os::unix::fs::symlink(app.data_dir.path().join("ferry.lock"), import.join("escape")).unwrap();
    let post = |body: Value| app.client.post(app.url("/api/upload/blob")).bearer_auth(&alice.token).json(&body).send();

    let created = post(json!({"bucket": "local", "key": "cam/a.bin", "folder_id": "imported"})).await.unwrap();
    assert_eq!(created.status(), 201);
    let file_id = created.json::<Value>().await.unwrap()["file_id"].as_str().unwrap().to_owned();
    let stored = app.catalog().file(alice.user_id, &file_id).await.unwrap().unwrap();
    assert_eq!(stored.sha256.as_str(), sha256_hex(&data));
    assert_eq!(stored.folder_key, "imported");
    assert!(import.join("cam/a.bin").exists(), "the object stays where it was");

    expect_error(
        post(json!({"bucket": "local", "key": "../ferry.db", "folder_id": "x"})).await.unwrap(),
        400,
        "invalid_key",
    )
    .await;
    expect_error(
        post(json!({"bucket": "local", "key": "/etc/passwd", "folder_id": "x"})).await.unwrap(),
        400,
        "invalid_key",
    )
    .await;
    expect_error(
        post(json!({"bucket": "local", "key": "escape", "folder_id": "x"})).await.unwrap(),
        400,
        "invalid_key",
    )
    .await;
    expect_error(
        post(json!({"bucket": "local", "key": "cam/none.bin", "folder_id": "x"})).await.unwrap(),
        404,
        "no_such_object",
    )
    .await;
    expect_error(
        post(json!({"bucket": "elsewhere", "key": "a", "folder_id": "x"})).await.unwrap(),
        400,
        "unknown_bucket",
    )
    .await;
}

#[tokio::test]
async fn blob_import_streams_objects_of_a_configured_s3_bucket() {
    let Some(s3) = crate::blob_store_conformance::test_s3_config() else { return };
    let bucket =
        std::env::var("FERRY_TEST_S3_IMPORT_BUCKET").expect("FERRY_TEST_S3_IMPORT_BUCKET beside FERRY_TEST_S3_*");
    // someone else's bucket: Ferry reads it with the s3_* connection, blobs may stay on disk
    let source =
        ferry::blob_store::s3_client(&ferry::config::S3Config { bucket: bucket.clone(), ..s3.clone() }).unwrap();
    let dir = s3.prefix.trim_end_matches('/');
    let big = bytes_of(9 * 1024 * 1024 + 17, 7); // more than one S3 read chunk, less than a test's patience
    let small = bytes_of(1000, 8);
    use object_store::ObjectStoreExt;
    for (name, data) in [("cam/big.mp4", &big), ("cam/small.jpg", &small)] {
        let path = object_store::path::Path::from(format!("{dir}/{name}"));
        source.put(&path, data.clone().into()).await.unwrap();
    }
    let app = spawn_app_with(|layer| {
        layer.insert("s3_endpoint", s3.endpoint.clone().unwrap());
        layer.insert("s3_region", s3.region.clone());
        layer.extend(s3.access_key_id.clone().map(|k| ("s3_access_key_id", k)));
        layer.extend(s3.secret_access_key.clone().map(|k| ("s3_secret_access_key", k.0)));
        layer.insert("import_buckets", bucket.clone());
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let post = |body: Value| app.client.post(app.url("/api/upload/blob")).bearer_auth(&alice.token).json(&body).send();

    for (name, data) in [("cam/big.mp4", &big), ("cam/small.jpg", &small)] {
        let created = post(json!({"bucket": bucket, "key": format!("{dir}/{name}"), "folder_id": "from-s3"})).await;
        let created = created.unwrap();
        assert_eq!(created.status(), 201, "{name}");
        let file_id = created.json::<Value>().await.unwrap()["file_id"].as_str().unwrap().to_owned();
        let stored = app.catalog().file(alice.user_id, &file_id).await.unwrap().unwrap();
        assert_eq!(stored.sha256.as_str(), sha256_hex(data), "{name}: Ferry hashed what the bucket holds");
        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(stored.title, name.rsplit('/').next().unwrap());
        assert_eq!(stored.folder_key, "from-s3");
        let download = app.client.get(app.url(&format!("/api/files/{file_id}"))).bearer_auth(&alice.token).send();
        let download = download.await.unwrap();
        assert_eq!(download.status(), 200);
        assert_eq!(download.bytes().await.unwrap(), data.as_slice(), "{name}: the library serves the same bytes");
    }
    let object = object_store::path::Path::from(format!("{dir}/cam/small.jpg"));
    assert!(source.head(&object).await.is_ok(), "the object stays in its bucket");

    let missing = post(json!({"bucket": bucket, "key": format!("{dir}/cam/none.jpg"), "folder_id": "x"}));
    expect_error(missing.await.unwrap(), 404, "no_such_object").await;
    for key in ["", "/abs/path", "a/../b", "a//b"] {
        let refused = post(json!({"bucket": bucket, "key": key, "folder_id": "x"})).await.unwrap();
        let code = if key.is_empty() { "missing_key" } else { "invalid_key" };
        expect_error(refused, 400, code).await;
    }
    let unconfigured = post(json!({"bucket": "not-configured", "key": "cam/small.jpg", "folder_id": "x"}));
    expect_error(unconfigured.await.unwrap(), 400, "unknown_bucket").await;
}
