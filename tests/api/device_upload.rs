//! Device family: identity, the upload batch, s3_object, errors and the privacy rule.

use ferry::catalog::DeviceFlag;
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

#[tokio::test]
async fn a_batch_answers_skip_or_a_signed_put_and_a_second_run_uploads_nothing() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| bytes_of(10_000 + i, i as u64)).collect();
    let list: Vec<Value> = files.iter().map(|f| json!({"file_hash": sha256_hex(f), "file_size": f.len()})).collect();

    let first = cam.post_ok("upload", json!({"file_list": list})).await;
    for (entry, file) in first["upload_list"].as_array().unwrap().iter().zip(&files) {
        assert_eq!(entry["file_hash"], sha256_hex(file));
        assert_eq!(entry["file_size"], file.len());
        assert_ne!(entry["skip_upload"], true);
        assert_eq!(entry["s3_bucket_id"], 1);
        let opts = &entry["signed_opts"];
        let url = opts["url"].as_str().unwrap();
        assert!(url.starts_with(&app.address) && url.ends_with(opts["path"].as_str().unwrap()));
        assert_eq!(format!("http://{}", opts["host"].as_str().unwrap()), app.address);
        assert!(opts["headers"].is_object());
    }
    for file in &files {
        cam.upload(file).await;
    }
    let second = cam.post_ok("upload", json!({"file_list": list})).await;
    for entry in second["upload_list"].as_array().unwrap() {
        assert_eq!(entry["skip_upload"], true);
        assert!(entry.get("signed_opts").is_none());
    }
}

#[tokio::test]
async fn a_signed_put_is_bound_to_its_hash_and_size() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(5000, 1);
    let answer =
        cam.post_ok("upload", json!({"file_list": [{"file_hash": sha256_hex(&data), "file_size": 5000}]})).await;
    let url = answer["upload_list"][0]["signed_opts"]["url"].as_str().unwrap().to_owned();
    let wrong = app.client.put(&url).body(bytes_of(5000, 2)).send().await.unwrap();
    expect_error(wrong, 400, "hash_mismatch").await;
    let registered =
        cam.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": sha256_hex(&data), "file_size": 5000})).await;
    expect_error(registered, 400, "object_missing").await;
    assert_eq!(app.client.put(&url).body(data.clone()).send().await.unwrap().status(), 200);
    for _ in 0..2 {
        let again = cam
            .post_ok("s3_object", json!({"s3_bucket_id": 1, "file_hash": sha256_hex(&data), "file_size": 5000}))
            .await;
        assert_eq!(again, json!({}), "registration is idempotent");
    }
    let wrong_size =
        cam.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": sha256_hex(&data), "file_size": 4999})).await;
    expect_error(wrong_size, 400, "object_missing").await;
    let wrong_bucket =
        cam.post("s3_object", json!({"s3_bucket_id": 7, "file_hash": sha256_hex(&data), "file_size": 5000})).await;
    expect_error(wrong_bucket, 400, "unknown_bucket").await;
    let missing_field = cam.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": sha256_hex(&data)})).await;
    expect_error(missing_field, 400, "invalid_request").await;
}

#[tokio::test]
async fn uploads_disabled_answers_an_empty_list() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let device = app.catalog().device_by_key_hash(&ferry::auth::secrets::hash(&cam.key)).await.unwrap().unwrap().0;
    app.catalog().set_device_flag(device.device_id, DeviceFlag::UploadDisabled, true).await.unwrap();
    let answer = cam.post_ok("upload", json!({"file_list": [{"file_hash": "a".repeat(64), "file_size": 1}]})).await;
    assert_eq!(answer, json!({"upload_list": [], "upload_disabled": true}));
}

#[tokio::test]
async fn errors_of_the_family() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let good = json!({"file_list": [{"file_hash": "b".repeat(64), "file_size": 3}]});

    for bad_hash in ["B".repeat(64), "b".repeat(63), "zz".into()] {
        let response = cam.post("upload", json!({"file_list": [{"file_hash": bad_hash, "file_size": 3}]})).await;
        expect_error(response, 400, "invalid_hash").await;
    }
    let negative = cam.post("upload", json!({"file_list": [{"file_hash": "b".repeat(64), "file_size": -1}]})).await;
    expect_error(negative, 400, "invalid_request").await;

    let unknown_grant = app
        .client
        .post(app.url(&format!("/device/1/media_grant/999/upload?device_session_key={}", cam.key)))
        .json(&good)
        .send()
        .await
        .unwrap();
    expect_error(unknown_grant, 404, "no_such_grant").await;
    let bad_key = app.client.post(cam.url("upload")).json(&good).send().await.unwrap();
    expect_error(bad_key, 403, "unauthorized").await;

    // another device's grant, even of the same owner, is not found
    let phone = app.device(&owner, "phone").await;
    let as_phone = app
        .client
        .post(format!("{}?device_session_key={}", cam.url("upload"), phone.key))
        .json(&good)
        .send()
        .await
        .unwrap();
    expect_error(as_phone, 404, "no_such_grant").await;

    let grant_id: ferry::domain::GrantId = cam.grant.parse().unwrap();
    app.catalog().set_grant_disabled(grant_id, true).await.unwrap();
    expect_error(cam.post("upload", good.clone()).await, 403, "grant_disabled").await;
    app.catalog().set_grant_disabled(grant_id, false).await.unwrap();

    let device = app.catalog().device_by_key_hash(&ferry::auth::secrets::hash(&cam.key)).await.unwrap().unwrap().0;
    app.catalog().set_device_flag(device.device_id, DeviceFlag::Disabled, true).await.unwrap();
    refused_within_a_second(|| cam.post("upload", good.clone()), 412, "device_disabled").await;
    for op in ["upload", "s3_object", "multipart", "media", "media_list", "download"] {
        expect_error(cam.post(op, json!({})).await, 412, "device_disabled").await;
    }
}

#[tokio::test]
async fn a_ten_thousand_entry_batch_in_a_body_over_four_mib_is_answered() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let held: Vec<Vec<u8>> = (0..5).map(|i| bytes_of(100, 50 + i)).collect();
    for file in &held {
        cam.upload(file).await;
    }
    let mut list: Vec<Value> =
        (0..9_995u32).map(|i| json!({"file_hash": sha256_hex(&i.to_le_bytes()), "file_size": 4})).collect();
    list.extend(held.iter().map(|f| json!({"file_hash": sha256_hex(f), "file_size": 100})));
    let mut body = json!({"file_list": list, "device_session_key": cam.key}).to_string();
    body.push_str(&" ".repeat(5 << 20)); // JSON whitespace: the route takes bodies past 4 MiB
    let answer: Value = app.client.post(cam.url("upload")).body(body).send().await.unwrap().json().await.unwrap();
    let entries = answer["upload_list"].as_array().unwrap();
    assert_eq!(entries.len(), 10_000);
    assert_eq!(entries.iter().filter(|e| e["skip_upload"] == true).count(), 5);
    assert!(entries[..9_995].iter().all(|e| e["signed_opts"]["url"].is_string()));
}

#[tokio::test]
async fn knowing_a_hash_grants_nothing() {
    let app = spawn_app().await;
    let (_, alice) = DeviceClient::setup(&app, "alice", "/").await;
    let (_, mallory) = DeviceClient::setup(&app, "mallory", "/").await;
    let secret = bytes_of(20_000, 99);
    let hash = alice.upload(&secret).await;
    alice.create("/secret.jpg", &hash, secret.len()).await;

    let check = mallory.post_ok("upload", json!({"file_list": [{"file_hash": hash, "file_size": secret.len()}]})).await;
    assert_ne!(check["upload_list"][0]["skip_upload"], true, "no dedup answer about another account's content");
    assert!(check["upload_list"][0]["signed_opts"]["url"].is_string());
    let create = mallory.create("/stolen.jpg", &hash, secret.len()).await;
    expect_error(create, 400, "unknown_content").await;
    let register =
        mallory.post("s3_object", json!({"s3_bucket_id": 1, "file_hash": hash, "file_size": secret.len()})).await;
    expect_error(register, 400, "object_missing").await;
    let download = mallory.post_ok("download", json!({"hash_list": [hash]})).await;
    assert_eq!(download["download_list"][0]["url"], Value::Null);

    // sending the bytes themselves is how an account comes to hold them (and they dedup)
    mallory.upload(&secret).await;
    assert_eq!(mallory.create("/mine.jpg", &hash, secret.len()).await.status(), 200);
    assert_eq!(app.blob_files().len(), 1);
}

#[tokio::test]
async fn signed_opts_split_an_upload_host_with_a_path_prefix() {
    let app = spawn_app_with(|layer| {
        layer.insert("upload_url", "https://uploads.example.com/ferry".into());
    })
    .await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let answer = cam.post_ok("upload", json!({"file_list": [{"file_hash": "d".repeat(64), "file_size": 9}]})).await;
    let opts = &answer["upload_list"][0]["signed_opts"];
    assert_eq!(opts["host"], "uploads.example.com");
    let path = opts["path"].as_str().unwrap();
    assert!(path.starts_with("/ferry/signed/blob?"), "{path}");
    assert_eq!(opts["url"].as_str().unwrap(), format!("https://uploads.example.com{path}"));
}
