//! Direct-to-S3 mode keeps Ferry's promises: what was verified is what is stored, completions
//! racing each other or a crash lose nothing, limits hold, and leftovers are found. Needs
//! `FERRY_TEST_S3_*` (s3s-fs in CI).

use ferry::blob_store::DirectMultipart;
use ferry::domain::{Level, Sha256Hex};
use ferry::jobs::consistency::{self, CheckScope};
use serde_json::{Value, json};

use crate::blob_store_conformance::test_s3_config;
use crate::device_client::DeviceClient;
use crate::direct_s3::put_s3;
use crate::helpers::*;

const MIB: usize = 1024 * 1024;

async fn direct_app(adjust: impl FnOnce(&mut ferry::config::Layer)) -> Option<TestApp> {
    let s3 = test_s3_config()?;
    Some(
        spawn_app_with(|layer| {
            put_s3(layer, &s3, true);
            adjust(layer);
        })
        .await,
    )
}

fn device_hash(data: &[u8]) -> String {
    let mut top = ferry::domain::ChunkHasher::new(Some(data.len() as u64));
    top.update(data);
    top.finish(data.len() as u64).map(|h| h.to_string()).unwrap_or_else(|| sha256_hex(data))
}

/// The device flow for any size: batch check, signed PUT with the headers it names, registration.
async fn upload_by_file_hash(app: &TestApp, cam: &DeviceClient<'_>, data: &[u8]) {
    let file = json!({"s3_bucket_id": 1, "file_hash": device_hash(data), "file_size": data.len()});
    let answer = cam.post_ok("upload", json!({"file_list": [file]})).await;
    let opts = &answer["upload_list"][0]["signed_opts"];
    let mut put = app.client.put(opts["url"].as_str().unwrap()).body(data.to_vec());
    for (name, value) in opts["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    assert_eq!(cam.post_ok("s3_object", file).await, json!({}));
}

/// Reads a stored blob back and hashes it.
async fn stored_hash(app: &TestApp, sha256: &Sha256Hex) -> String {
    use futures_util::StreamExt;
    let mut stream = app.state.store.read(sha256, None).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(piece) = stream.next().await {
        bytes.extend_from_slice(&piece.unwrap());
    }
    sha256_hex(&bytes)
}

#[tokio::test]
async fn bytes_written_to_a_direct_url_after_verification_never_reach_the_store() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let (_, mallory) = DeviceClient::setup(&app, "mallory", "/").await;
    let mut contents = Vec::new();
    for round in 0..4 {
        let good = bytes_of(17 * MIB, 10 + round);
        let evil = bytes_of(17 * MIB, 20 + round); // the same length: the URL is bound to it
        let file = json!({"s3_bucket_id": 1, "file_hash": device_hash(&good), "file_size": good.len()});
        let sha256 = Sha256Hex::of(&good);
        let answer = mallory.post_ok("upload", json!({"file_list": [file]})).await;
        let url = answer["upload_list"][0]["signed_opts"]["url"].as_str().unwrap().to_owned();
        assert_eq!(app.client.put(&url).body(good.clone()).send().await.unwrap().status(), 200);
        // the registration and a rewrite of the same key race
        let rewrites = async {
            for _ in 0..3 {
                let _ = app.client.put(&url).body(evil.clone()).send().await;
            }
        };
        let (registered, ()) = tokio::join!(mallory.post("s3_object", file.clone()), rewrites);
        let status = registered.status().as_u16();
        assert!([200, 400].contains(&status), "round {round}: {status}");
        if app.state.store.size_of(&sha256).await.unwrap().is_some() {
            assert_eq!(stored_hash(&app, &sha256).await, sha256.to_string(), "round {round}: stored = verified");
        }
        contents.push((good, sha256));
    }
    // another account uploading the same content gets it back exactly
    let (_, alice) = DeviceClient::setup(&app, "alice", "/").await;
    for (good, sha256) in &contents {
        upload_by_file_hash(&app, &alice, good).await;
        assert_eq!(stored_hash(&app, sha256).await, sha256.to_string());
    }
    let scope = CheckScope { deep: true, staging_age: std::time::Duration::from_secs(3600) };
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.corrupt_blobs.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_deep_check_finds_a_blob_whose_bytes_changed() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(3000, 5);
    cam.upload(&data).await;
    let scope = CheckScope { deep: true, staging_age: std::time::Duration::from_secs(3600) };
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.corrupt_blobs.is_empty(), "{report:?}");
    let file = app.blob_files().into_iter().find(|f| f.ends_with(sha256_hex(&data))).expect("the blob's file");
    let mut changed = std::fs::read(&file).unwrap();
    changed[100] ^= 0xff;
    std::fs::write(&file, changed).unwrap();
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert_eq!(report.corrupt_blobs, vec![sha256_hex(&data)]);
}

struct Started {
    upload_id: String,
    body: Value,
    whole: Vec<u8>,
}

/// Starts `file_id` in the multipart family and PUTs its two parts straight to S3.
async fn two_parts_to_s3(app: &TestApp, token: &str, file_id: &str, seed: u64) -> Started {
    let url = app.url(&format!("/api/users/multipart_upload_start/{file_id}?part_count=2"));
    let started: Value = app.client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    let pieces = [bytes_of(5 * MIB, seed), bytes_of(2000, seed + 1)];
    let mut parts = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        let put = app.client.put(started["presigned_urls"][n].as_str().unwrap()).body(piece.clone()).send();
        let put = put.await.unwrap();
        assert_eq!(put.status(), 200);
        parts.push(json!({"part_number": n + 1, "etag": put.headers()["etag"].to_str().unwrap()}));
    }
    let upload_id = started["upload_id"].as_str().unwrap().to_owned();
    Started { body: json!({"upload_id": upload_id, "parts": parts}), upload_id, whole: pieces.concat() }
}

#[tokio::test]
async fn direct_completions_at_once_agree_and_a_crashed_one_is_finished_by_the_retry() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let user = app.user("bob", Level::Uploader, "upload").await;
    let complete = |file_id: &str, body: &Value| {
        let url = app.url(&format!("/api/users/multipart_upload_complete/{file_id}"));
        app.client.post(url).bearer_auth(&user.token).json(body).send()
    };
    let started = two_parts_to_s3(&app, &user.token, "together", 10).await;
    let answers = futures_util::future::join_all((0..6).map(|_| complete("together", &started.body))).await;
    let mut bodies = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        bodies.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(bodies[0]["checksum"], sha256_hex(&started.whole));
    let fetched = app.client.get(bodies[0]["location"].as_str().unwrap()).bearer_auth(&user.token).send().await;
    assert_eq!(fetched.unwrap().bytes().await.unwrap().as_ref(), &started.whole[..]);

    // a completer that died after S3 assembled the parts: the retry finishes from the object
    let crashed = two_parts_to_s3(&app, &user.token, "crashed", 20).await;
    let held = DirectMultipart::parse(&crashed.upload_id).unwrap();
    let direct = app.state.store.direct().unwrap();
    let etags: Vec<String> =
        crashed.body["parts"].as_array().unwrap().iter().map(|p| p["etag"].as_str().unwrap().to_owned()).collect();
    direct.complete_multipart(&held, &etags, crashed.whole.len() as u64).await.unwrap();
    let retried = complete("crashed", &crashed.body).await.unwrap();
    let status = retried.status();
    let text = retried.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["checksum"], sha256_hex(&crashed.whole));
    assert!(direct.staged_object(&held.staged_key()).await.unwrap().is_none(), "the assembled object is committed");
}

#[tokio::test]
async fn a_wrong_etag_at_a_direct_completion_can_be_corrected() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let user = app.user("bob", Level::Uploader, "upload").await;
    let started = two_parts_to_s3(&app, &user.token, "typo", 30).await;
    let mut wrong = started.body.clone();
    wrong["parts"][1]["etag"] = json!("\"0123456789abcdef0123456789abcdef\"");
    let url = app.url("/api/users/multipart_upload_complete/typo");
    let refused = app.client.post(&url).bearer_auth(&user.token).json(&wrong).send().await.unwrap();
    expect_error(refused, 400, "etag_mismatch").await;
    let done = app.client.post(&url).bearer_auth(&user.token).json(&started.body).send().await.unwrap();
    let status = done.status();
    let text = done.text().await.unwrap();
    assert_eq!(status, 200, "the upload was not used up: {text}");
    let done: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(done["checksum"], sha256_hex(&started.whole));
}

#[tokio::test]
async fn the_size_limit_and_each_urls_length_hold_in_direct_mode() {
    let Some(app) = direct_app(|layer| {
        layer.insert("max_upload_size", "6MiB".into());
    })
    .await
    else {
        return;
    };
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let big = json!({"file_hash": sha256_hex(b"x"), "file_size": 7 * MIB});
    let small = bytes_of(1000, 3);
    let fits = json!({"file_hash": sha256_hex(&small), "file_size": 1000});
    let answer = cam.post_ok("upload", json!({"file_list": [big, fits]})).await;
    assert_eq!(answer["upload_list"][0]["error"], "too_large", "{answer}");
    assert!(answer["upload_list"][0].get("signed_opts").is_none());
    let opts = &answer["upload_list"][1]["signed_opts"];
    // the URL stores exactly 1000 bytes
    let longer = app.client.put(opts["url"].as_str().unwrap()).body(bytes_of(5000, 3)).send().await.unwrap();
    assert!(!longer.status().is_success(), "a longer body is refused by the store: {}", longer.status());
    let file = json!({"s3_bucket_id": 1, "file_hash": fits["file_hash"], "file_size": 1000});
    expect_error(cam.post("s3_object", file).await, 400, "object_missing").await;

    // the multipart family: 5 MiB + 2 MiB is over 6 MiB
    let url = app.url("/api/users/multipart_upload_start/too-big?part_count=2");
    let started: Value = app.client.get(url).bearer_auth(&owner.token).send().await.unwrap().json().await.unwrap();
    let mut parts = Vec::new();
    for (n, piece) in [bytes_of(5 * MIB, 4), bytes_of(2 * MIB, 5)].into_iter().enumerate() {
        let put = app.client.put(started["presigned_urls"][n].as_str().unwrap()).body(piece).send().await.unwrap();
        parts.push(json!({"part_number": n + 1, "etag": put.headers()["etag"].to_str().unwrap()}));
    }
    let body = json!({"upload_id": started["upload_id"], "parts": parts});
    let url = app.url("/api/users/multipart_upload_complete/too-big");
    let refused = app.client.post(url).bearer_auth(&owner.token).json(&body).send().await.unwrap();
    expect_error(refused, 413, "too_large").await;
}

#[tokio::test]
async fn an_s3_upload_nothing_will_complete_is_listed_and_repaired() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let direct = app.state.store.direct().unwrap();
    // an upload a crashed replica opened (no catalog row refers to it)
    let orphan = direct.start_multipart().await.unwrap();
    let scope = CheckScope { deep: false, staging_age: std::time::Duration::ZERO };
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    if report.notes.iter().any(|n| n.contains("cannot list multipart uploads")) {
        // s3s-fs: ListMultipartUploads is not implemented; the check says so instead
        eprintln!("open S3 uploads not checked here: the server cannot list them");
        direct.abort_multipart(&orphan).await.unwrap();
        return;
    }
    let listed = format!("{} {}", orphan.staged_key(), orphan.store_id);
    assert!(report.open_multipart_uploads.contains(&listed), "{report:?}");
    let repaired = consistency::repair(app.catalog().as_ref(), app.state.store.as_ref(), report, scope.staging_age);
    let repaired = repaired.await.unwrap();
    assert!(repaired.removed.iter().any(|r| r.contains(&orphan.store_id)), "{repaired:?}");
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.open_multipart_uploads.is_empty(), "{report:?}");
}
