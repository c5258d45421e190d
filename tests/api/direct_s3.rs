//! Direct-to-S3 mode against a real S3-compatible server (s3s-fs in CI): presigned URLs point
//! at the store, the store itself refuses tampered, expired or checksum-violating requests,
//! and Ferry verifies every object before recording it. Needs `FERRY_TEST_S3_*`.

use ferry::config::{Layer, S3Config};
use ferry::domain::Level;
use serde_json::{Value, json};

use crate::blob_store_conformance::test_s3_config;
use crate::device_client::DeviceClient;
use crate::helpers::*;

const MIB: usize = 1024 * 1024;

/// Puts the S3 settings of `s3` into a settings layer.
pub fn put_s3(layer: &mut Layer, s3: &S3Config, direct: bool) {
    layer.insert("s3_endpoint", s3.endpoint.clone().expect("test servers have an endpoint"));
    layer.insert("s3_region", s3.region.clone());
    layer.insert("s3_bucket", s3.bucket.clone());
    layer.insert("s3_prefix", s3.prefix.clone());
    layer.extend(s3.access_key_id.clone().map(|k| ("s3_access_key_id", k)));
    layer.extend(s3.secret_access_key.clone().map(|k| ("s3_secret_access_key", k.0)));
    layer.insert("s3_direct", direct.to_string());
}

async fn direct_app(adjust: impl FnOnce(&mut Layer)) -> Option<TestApp> {
    let s3 = test_s3_config()?;
    Some(
        spawn_app_with(|layer| {
            put_s3(layer, &s3, true);
            adjust(layer);
        })
        .await,
    )
}

/// PUTs `body` to a device-family `signed_opts`, sending the headers it names.
async fn put_signed(app: &TestApp, opts: &Value, body: Vec<u8>) -> reqwest::Response {
    let mut put = app.client.put(opts["url"].as_str().unwrap()).body(body);
    for (name, value) in opts["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    put.send().await.unwrap()
}

/// One character of the signature changed.
fn tampered(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").expect("a SigV4 presigned URL") + "X-Amz-Signature=".len();
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_device_puts_straight_to_s3_bound_to_its_checksum_and_ferry_verifies() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(5000, 1);
    let file = json!({"file_hash": sha256_hex(&data), "file_size": 5000});
    let answer = cam.post_ok("upload", json!({"file_list": [file]})).await;
    let entry = &answer["upload_list"][0];
    let opts = &entry["signed_opts"];
    let endpoint = std::env::var("FERRY_TEST_S3_ENDPOINT").unwrap();
    assert!(opts["url"].as_str().unwrap().starts_with(&endpoint), "straight to S3: {opts}");
    assert_eq!(format!("http://{}{}", opts["host"].as_str().unwrap(), opts["path"].as_str().unwrap()), opts["url"]);
    assert!(opts["headers"]["x-amz-checksum-sha256"].is_string(), "the SHA-256 is bound: {opts}");
    assert_eq!(entry["s3_bucket_id"], 1);

    let registered =
        cam.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": file["file_hash"], "file_size": 5000}));
    expect_error(registered.await, 400, "object_missing").await;
    // the store refuses other bytes, a missing checksum header and a changed signature
    assert!(!put_signed(&app, opts, bytes_of(5000, 2)).await.status().is_success(), "other bytes");
    let bare = app.client.put(opts["url"].as_str().unwrap()).body(data.clone()).send().await.unwrap();
    assert_eq!(bare.status(), 403, "the checksum header is part of the signature");
    let forged = json!({"url": tampered(opts["url"].as_str().unwrap()), "headers": opts["headers"]});
    assert_eq!(put_signed(&app, &forged, data.clone()).await.status(), 403, "a tampered URL");

    assert_eq!(put_signed(&app, opts, data.clone()).await.status(), 200);
    for _ in 0..2 {
        let registered = json!({"s3_bucket_id": 1, "file_hash": file["file_hash"], "file_size": 5000});
        assert_eq!(cam.post_ok("s3_object", registered).await, json!({}), "idempotent");
    }
    let hash = ferry::domain::Sha256Hex::of(&data);
    assert_eq!(app.state.store.size_of(&hash).await.unwrap(), Some(5000), "committed to its content address");
    assert_eq!(cam.create("/a.bin", hash.as_str(), 5000).await.status(), 200, "the account holds it");
    let again = cam.post_ok("upload", json!({"file_list": [file]})).await;
    assert_eq!(again["upload_list"][0]["skip_upload"], true);
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused_by_the_store() {
    let Some(app) = direct_app(|layer| {
        layer.insert("signed_url_ttl", "1s".into());
    })
    .await
    else {
        return;
    };
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(100, 1);
    let answer =
        cam.post_ok("upload", json!({"file_list": [{"file_hash": sha256_hex(&data), "file_size": 100}]})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let late = put_signed(&app, &answer["upload_list"][0]["signed_opts"], data).await;
    assert_eq!(late.status(), 403);
}

#[tokio::test]
async fn a_large_direct_put_is_read_back_and_wrong_bytes_are_dropped() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    // over 16 MiB the file hash is the chunked top-hash: S3 cannot check it, Ferry does
    let data = bytes_of(16 * MIB + 10, 4);
    let hash = ferry::domain::ChunkHasher::new(Some(data.len() as u64));
    let file_hash = {
        let mut hash = hash;
        hash.update(&data);
        hash.finish(data.len() as u64).unwrap().to_string()
    };
    let file = json!({"s3_bucket_id": 1, "file_hash": file_hash, "file_size": data.len()});
    let answer = cam.post_ok("upload", json!({"file_list": [file]})).await;
    let opts = &answer["upload_list"][0]["signed_opts"];
    assert!(opts["headers"].as_object().unwrap().is_empty(), "no plain SHA-256 to bind");
    let mut wrong = data.clone();
    wrong[9 * MIB] ^= 1;
    assert_eq!(put_signed(&app, opts, wrong).await.status(), 200, "S3 takes it…");
    expect_error(cam.post("s3_object", file.clone()).await, 400, "hash_mismatch").await;
    expect_error(cam.post("s3_object", file.clone()).await, 400, "object_missing").await;
    assert_eq!(put_signed(&app, opts, data.clone()).await.status(), 200);
    assert_eq!(cam.post_ok("s3_object", file).await, json!({}));
}

#[tokio::test]
async fn device_multipart_parts_go_to_s3_and_ferry_checks_etags_and_hash() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data: Vec<u8> = (0..17 * MIB + 3).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = data.chunks(8 * MIB).collect();
    let plan: Vec<Value> = (chunks.iter().enumerate())
        .map(|(i, c)| json!({"part_num": i + 1, "part_size": c.len(), "part_hash": sha256_hex(c)}))
        .collect();
    let mut top = ferry::domain::ChunkHasher::new(Some(data.len() as u64));
    top.update(&data);
    let file_hash = top.finish(data.len() as u64).unwrap().to_string();
    let started =
        cam.post_ok("multipart", json!({"file_size": data.len(), "file_hash": file_hash, "part_list": plan})).await;
    let urls: Vec<String> = (started["signed_url_list"].as_array().unwrap().iter())
        .map(|u| u["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(urls[0].contains("uploadId=") && urls[0].contains("partNumber=1"), "{}", urls[0]);
    assert_eq!(app.client.put(tampered(&urls[0])).body(b"x".to_vec()).send().await.unwrap().status(), 403);
    let mut etags = Vec::new();
    for (url, chunk) in urls.iter().zip(&chunks).rev() {
        let put = app.client.put(url).body(chunk.to_vec()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        etags.insert(0, put.headers()["etag"].to_str().unwrap().to_owned());
    }
    let complete = |etags: &[String]| {
        let parts: Vec<Value> = etags.iter().zip(1..).map(|(e, n)| json!({"part_num": n, "etag": e})).collect();
        json!({"file_size": data.len(), "file_hash": file_hash, "s3_bucket_id": 1,
               "upload_id": started["upload_id"], "part_list": parts})
    };
    let done = cam.post("multipart_complete", complete(&etags)).await;
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    let sha256 = ferry::domain::Sha256Hex::of(&data);
    assert_eq!(app.state.store.size_of(&sha256).await.unwrap(), Some(data.len() as u64));
    assert_eq!(cam.post("multipart_complete", complete(&etags)).await.status(), 201, "repeatable");
}

#[tokio::test]
async fn multipart_family_presigned_urls_point_at_s3() {
    let Some(app) = direct_app(|_| {}).await else { return };
    let user = app.user("bob", Level::Uploader, "upload").await;
    let start = |file_id: &str| {
        let url = app.url(&format!("/api/users/multipart_upload_start/{file_id}?part_count=2"));
        app.client.get(url).bearer_auth(&user.token).send()
    };
    let started: Value = start("clip").await.unwrap().json().await.unwrap();
    let urls: Vec<&str> = started["presigned_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    let endpoint = std::env::var("FERRY_TEST_S3_ENDPOINT").unwrap();
    assert!(urls.iter().all(|u| u.starts_with(&endpoint)), "{urls:?}");
    let again: Value = start("clip").await.unwrap().json().await.unwrap();
    assert_eq!(again["upload_id"], started["upload_id"], "a repeated start continues the upload");

    let pieces = [bytes_of(5 * MIB, 1), bytes_of(1000, 2)];
    let mut etags = Vec::new();
    for (url, piece) in urls.iter().zip(&pieces) {
        let put = app.client.put(*url).body(piece.clone()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        etags.push(put.headers()["etag"].to_str().unwrap().to_owned());
    }
    let parts: Vec<Value> = etags.iter().zip(1..).map(|(e, n)| json!({"part_number": n, "etag": e})).collect();
    let body = json!({"upload_id": started["upload_id"], "parts": parts});
    let complete_url = app.url("/api/users/multipart_upload_complete/clip");
    let done: Value =
        app.client.post(&complete_url).bearer_auth(&user.token).json(&body).send().await.unwrap().json().await.unwrap();
    let whole = pieces.concat();
    assert!(done["checksum"].is_string(), "{done}");
    assert_eq!(
        (done["filesize"].as_u64(), done["checksum"].as_str()),
        (Some(whole.len() as u64), Some(&*sha256_hex(&whole)))
    );
    let fetched = app.client.get(done["location"].as_str().unwrap()).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &whole[..], "read back from S3");

    // ETags that are not the parts' are refused (s3s-fs neither lists nor checks them: Ferry does)
    let forged: Value = start("forged").await.unwrap().json().await.unwrap();
    for (url, body) in forged["presigned_urls"].as_array().unwrap().iter().zip([pieces[0].clone(), vec![7u8; 10]]) {
        assert_eq!(app.client.put(url.as_str().unwrap()).body(body).send().await.unwrap().status(), 200);
    }
    let parts = json!([{"part_number": 1, "etag": etags[0]}, {"part_number": 2, "etag": etags[1]}]);
    let body = json!({"upload_id": forged["upload_id"], "parts": parts});
    let forged_url = app.url("/api/users/multipart_upload_complete/forged");
    let refused = app.client.post(forged_url).bearer_auth(&user.token).json(&body).send().await.unwrap();
    expect_error(refused, 400, "etag_mismatch").await;

    // an aborted upload's parts are gone from the store
    let other: Value = start("other").await.unwrap().json().await.unwrap();
    let abort =
        app.url(&format!("/api/users/multipart_upload/other?upload_id={}", other["upload_id"].as_str().unwrap()));
    assert_eq!(app.client.delete(abort).bearer_auth(&user.token).send().await.unwrap().status(), 204);
    let url = other["presigned_urls"][0].as_str().unwrap();
    assert!(!app.client.put(url).body(vec![1u8; 10]).send().await.unwrap().status().is_success());
}
