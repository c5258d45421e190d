//! Device family: large files in parts (the chunks of the file-hashing rule).

use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

pub(crate) const SIZE: usize = 41_955_385;
pub(crate) const FILE_HASH: &str = "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862";
pub(crate) const CHUNK: usize = 8 << 20;

/// API.md test content (byte i = i mod 251) and its part plan.
pub(crate) fn file_and_plan() -> (Vec<u8>, Vec<Value>) {
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let plan = data
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| json!({"part_num": i + 1, "part_size": c.len(), "part_hash": sha256_hex(c)}))
        .collect();
    (data, plan)
}

/// The store holds one blob: `data`, at its content address (the SHA-256 of the whole file,
/// which a completion of parts written in place carries across the parts).
pub(crate) fn assert_stored(app: &TestApp, data: &[u8]) {
    let files = app.blob_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].file_name().unwrap().to_str().unwrap(), sha256_hex(data), "stored at its content address");
    assert!(std::fs::read(&files[0]).unwrap() == data, "the stored bytes are the file");
}

fn upload_staging(app: &TestApp) -> usize {
    app.upload_staging_files().len()
}

pub(crate) fn received(answer: &Value) -> Vec<bool> {
    answer["signed_url_list"].as_array().unwrap().iter().map(|e| e["received"].as_bool().unwrap()).collect()
}

/// Sends every part of `started` not marked received; returns the completion's part list.
pub(crate) async fn send_missing(app: &TestApp, data: &[u8], started: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    for (i, entry) in started["signed_url_list"].as_array().unwrap().iter().enumerate() {
        let etag = match entry["etag"].as_str() {
            Some(etag) => etag.to_owned(),
            None => {
                let chunk = data.chunks(CHUNK).nth(i).unwrap().to_vec();
                let put = app.client.put(entry["url"].as_str().unwrap()).body(chunk).send().await.unwrap();
                assert_eq!(put.status(), 200, "part {}", i + 1);
                put.headers()["etag"].to_str().unwrap().to_owned()
            }
        };
        parts.push(json!({"part_num": i + 1, "etag": etag}));
    }
    parts
}

/// The staging files one upload holding `parts` parts uses: a file per part, or one for the
/// whole upload where parts are written in place (the local disk).
fn staging_for(app: &TestApp, parts: usize) -> usize {
    if app.state.store.writes_parts_in_place() { parts.min(1) } else { parts }
}

#[tokio::test]
async fn parts_in_any_order_with_a_retry_complete_into_the_file() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let started = cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
    let upload_id = started["upload_id"].as_str().expect("upload_id is a string").to_owned();
    assert_eq!(started["s3_bucket_id"], 1);
    let urls = started["signed_url_list"].as_array().unwrap();
    assert_eq!(urls.len(), 6);

    // wrong bytes for a part are refused as they arrive
    let wrong = app.client.put(urls[0]["url"].as_str().unwrap()).body(vec![0u8; CHUNK]).send().await.unwrap();
    expect_error(wrong, 400, "hash_mismatch").await;

    let mut etags = vec![String::new(); 6];
    for entry in urls.iter().rev() {
        let num = entry["part_num"].as_u64().unwrap() as usize;
        let chunk = data.chunks(CHUNK).nth(num - 1).unwrap().to_vec();
        let put = app.client.put(entry["url"].as_str().unwrap()).body(chunk.clone()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        etags[num - 1] = put.headers()["etag"].to_str().unwrap().to_owned();
        if num == 3 {
            let retry = app.client.put(entry["url"].as_str().unwrap()).body(chunk).send().await.unwrap();
            assert_eq!(retry.headers()["etag"].to_str().unwrap(), etags[2], "a retried part has the same ETag");
        }
    }
    assert_eq!(upload_staging(&app), staging_for(&app, 6), "a retried part replaces the earlier copy");

    let parts: Vec<Value> = etags.iter().enumerate().map(|(i, e)| json!({"part_num": i + 1, "etag": e})).collect();
    let mut bad_etag = parts.clone();
    bad_etag[4]["etag"] = json!("\"0000\"");
    let complete = |part_list: Vec<Value>| json!({"file_size": SIZE, "file_hash": FILE_HASH, "s3_bucket_id": 1, "upload_id": upload_id, "part_list": part_list});
    expect_error(cam.post("multipart_complete", complete(bad_etag)).await, 400, "etag_mismatch").await;
    expect_error(cam.post("multipart_complete", complete(parts[..5].to_vec())).await, 400, "invalid_part_list").await;

    for _ in 0..2 {
        let done = cam.post("multipart_complete", complete(parts.clone())).await;
        assert_eq!(done.status(), 201, "complete (and its repeat) answer 201");
        assert_eq!(done.json::<Value>().await.unwrap(), json!({}));
    }
    assert_eq!(upload_staging(&app), 0, "parts are freed after completion");
    assert_stored(&app, &data);

    let created = cam.create("/big.bin", FILE_HASH, SIZE).await;
    assert_eq!(created.status(), 200);
    let again =
        cam.post("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": file_and_plan().1})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await.unwrap()["skip_upload"], true);
}

#[tokio::test]
async fn a_plan_that_does_not_follow_the_hashing_rule_is_refused() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (_, plan) = file_and_plan();
    let start =
        |size: usize, hash: &str, plan: Vec<Value>| json!({"file_size": size, "file_hash": hash, "part_list": plan});

    expect_error(cam.post("multipart", start(SIZE, FILE_HASH, plan[..5].to_vec())).await, 400, "invalid_part_list")
        .await;
    let mut resized = plan.clone();
    resized[1]["part_size"] = json!(CHUNK - 1);
    expect_error(cam.post("multipart", start(SIZE, FILE_HASH, resized)).await, 400, "invalid_part_list").await;
    let mut renumbered = plan.clone();
    renumbered[5]["part_num"] = json!(7);
    expect_error(cam.post("multipart", start(SIZE, FILE_HASH, renumbered)).await, 400, "invalid_part_list").await;
    expect_error(cam.post("multipart", start(SIZE, &"c".repeat(64), plan.clone())).await, 400, "hash_mismatch").await;
    expect_error(cam.post("multipart", start(1000, FILE_HASH, plan)).await, 400, "invalid_part_list").await;
}

#[tokio::test]
async fn abort_frees_the_parts_and_expiry_does_too() {
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "1s".into());
    })
    .await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    for round in 0..2 {
        let started =
            cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
        let upload_id = started["upload_id"].as_str().unwrap().to_owned();
        let first = &started["signed_url_list"][0];
        let put = app.client.put(first["url"].as_str().unwrap()).body(data[..CHUNK].to_vec()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(upload_staging(&app), 1);
        if round == 0 {
            for _ in 0..2 {
                assert_eq!(
                    cam.post_ok("multipart_abort", json!({"upload_id": upload_id})).await,
                    json!({}),
                    "abort is repeatable"
                );
            }
            let late = app
                .client
                .put(started["signed_url_list"][1]["url"].as_str().unwrap())
                .body(data[CHUNK..2 * CHUNK].to_vec())
                .send()
                .await
                .unwrap();
            expect_error(late, 404, "no_such_upload").await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            // the server's own job runner may get there first; either way the upload is gone
            app.state.jobs.run_until_idle().await.unwrap();
            assert!(app.catalog().upload(&upload_id).await.unwrap().is_none(), "the expired upload is removed");
        }
        assert_eq!(upload_staging(&app), 0, "round {round}: no staged bytes left");
    }
    assert!(app.blob_files().is_empty());
}

/// A real `ferry serve` that tests kill and start again on the same data, with alice's
/// device `cam` granted a volume.
pub(crate) struct ServedDevice {
    _dir: tempfile::TempDir,
    pub data_dir: std::path::PathBuf,
    server: Option<FerryProcess>,
    key: String,
    grant: String,
    pub client: reqwest::Client,
}

impl ServedDevice {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let server = FerryProcess::start(&data_dir, &[]);
        admin_json(&data_dir, &["user", "add", "alice", "--level", "uploader"]);
        let key = admin_json(&data_dir, &["device", "add", "--user", "alice", "--name", "cam"]).1;
        admin_json(&data_dir, &["volume", "add", "photos", "--user", "alice"]);
        let grant = admin_json(&data_dir, &["grant", "add", "--device", "cam", "--volume", "photos"]).1;
        Self {
            _dir: dir,
            data_dir,
            server: Some(server),
            key: key["device_session_key"].as_str().unwrap().to_owned(),
            grant: grant["media_grant_id"].as_str().unwrap().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    fn address(&self) -> &str {
        &self.server.as_ref().expect("running").address
    }

    /// SIGKILL, then `between` (the server is down), then a new server on the same data.
    pub(crate) fn restart(&mut self, between: impl FnOnce()) {
        drop(self.server.take());
        between();
        self.server = Some(FerryProcess::start(&self.data_dir, &[]));
    }

    pub(crate) async fn post(&self, op: &str, body: Value) -> reqwest::Response {
        let (address, grant, key) = (self.address(), &self.grant, &self.key);
        let url = format!("{address}/device/1/media_grant/{grant}/{op}?device_session_key={key}");
        self.client.post(url).json(&body).send().await.unwrap()
    }

    /// Puts part `num` of `started` (the test file's chunk) on the server running now
    /// (signatures cover path and query, so a URL works on a restarted server's address);
    /// its completion entry.
    pub(crate) async fn put_part(&self, data: &[u8], started: &Value, num: usize) -> Value {
        let url = started["signed_url_list"][num - 1]["url"].as_str().unwrap();
        let url = url.replacen(&url[..url.find("/signed").unwrap()], self.address(), 1);
        let put = self.client.put(url).body(data.chunks(CHUNK).nth(num - 1).unwrap().to_vec()).send().await.unwrap();
        assert_eq!(put.status(), 200, "part {num}");
        json!({"part_num": num, "etag": put.headers()["etag"].to_str().unwrap()})
    }
}

#[tokio::test]
async fn parts_survive_a_restart() {
    let mut served = ServedDevice::start();
    let (data, plan) = file_and_plan();
    let started = served.post("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
    let started: Value = started.json().await.unwrap();
    let mut parts = Vec::new();
    for num in 1..=5 {
        parts.push(served.put_part(&data, &started, num).await);
    }
    served.restart(|| {});
    parts.push(served.put_part(&data, &started, 6).await);
    let done = served
        .post(
            "multipart_complete",
            json!({"file_size": SIZE, "file_hash": FILE_HASH, "s3_bucket_id": 1, "upload_id": started["upload_id"], "part_list": parts}),
        )
        .await;
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    let stored = files_under(&served.data_dir.join("blobs"));
    assert_eq!(std::fs::read(&stored[0]).unwrap(), data);
}

#[tokio::test]
async fn starting_the_same_content_again_resumes_the_callers_upload() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let start = || json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan});
    let first = cam.post_ok("multipart", start()).await;
    assert_eq!(received(&first), [false; 6], "a fresh upload holds nothing (extra field only)");
    let mut etags = Vec::new();
    for num in [1, 4] {
        let url = first["signed_url_list"][num - 1]["url"].as_str().unwrap();
        let chunk = data.chunks(CHUNK).nth(num - 1).unwrap().to_vec();
        let put = app.client.put(url).body(chunk).send().await.unwrap();
        assert_eq!(put.status(), 200);
        etags.push(put.headers()["etag"].to_str().unwrap().to_owned());
    }

    let again = cam.post_ok("multipart", start()).await;
    assert_eq!(again["upload_id"], first["upload_id"], "the same upload");
    assert_eq!(received(&again), [true, false, false, true, false, false]);
    assert_eq!(again["signed_url_list"][0]["etag"], etags[0].as_str(), "a held part's ETag completes it");
    assert_eq!(again["signed_url_list"][3]["etag"], etags[1].as_str());
    assert!(again["signed_url_list"][1].get("etag").is_none());

    // another account starting the same content gets its own upload and learns nothing
    let (_, bob) = DeviceClient::setup(&app, "bob", "/").await;
    let theirs = bob.post_ok("multipart", start()).await;
    assert_ne!(theirs["upload_id"], first["upload_id"]);
    assert_eq!(received(&theirs), [false; 6]);

    // the parts not held yet, sent to the fresh URLs, complete the upload; each part was
    // received once
    let upload_id = again["upload_id"].as_str().unwrap().to_owned();
    let parts = send_missing(&app, &data, &again).await;
    assert_eq!(app.catalog().parts(&upload_id).await.unwrap().len(), 6);
    assert_eq!(upload_staging(&app), staging_for(&app, 6), "bob's upload holds no part; ours holds each once");
    let done = cam
        .post("multipart_complete", json!({"file_size": SIZE, "file_hash": FILE_HASH, "s3_bucket_id": 1, "upload_id": upload_id, "part_list": parts}))
        .await;
    assert_eq!(done.status(), 201);
    let conflict = cam.post("multipart", start()).await;
    assert_eq!(conflict.status(), 409, "complete: held, nothing to resume");
}
