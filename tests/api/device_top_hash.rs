//! The device family's top-hash (`file_hash`) of content over 16 MiB: computed while the
//! bytes stream in where a device binds it, and by the `device_hash` job, with one read of
//! the blob, for content that came through another family (API.md §5).

use ferry::domain::{ChunkHasher, JobKind, Sha256Hex};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

/// API.md §1's test content: byte i = i mod 251, and its top-hash at this size.
fn pattern() -> (Vec<u8>, &'static str) {
    let data = (0..41_955_385u64).map(|i| (i % 251) as u8).collect();
    (data, "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862")
}

fn top_hash_of(data: &[u8]) -> String {
    let mut chunks = ChunkHasher::new(Some(data.len() as u64));
    chunks.update(data);
    chunks.finish(data.len() as u64).unwrap().to_string()
}

async fn device_hash_jobs(app: &TestApp, data: &[u8]) -> usize {
    let jobs = app.catalog().list_jobs(None).await.unwrap();
    jobs.iter().filter(|j| j.kind == JobKind::DeviceHash && j.payload["sha256"] == sha256_hex(data)).count()
}

async fn check(cam: &DeviceClient<'_>, file_hash: &str, size: usize) -> Value {
    let answer = cam.post_ok("upload", json!({"file_list": [{"file_hash": file_hash, "file_size": size}]})).await;
    answer["upload_list"][0].clone()
}

#[tokio::test]
async fn content_from_another_family_is_found_by_its_top_hash_once_the_job_has_run() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, top) = pattern();

    // a signed PUT that binds no device hash: hashed once, answered without `file_hash`
    let put = app.client.put(app.signed_put(owner.user_id, None, None)).body(data.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let answer: Value = put.json().await.unwrap();
    assert_eq!(answer["sha256"], sha256_hex(&data));
    assert!(answer.get("file_hash").is_none(), "computed later, not on the upload's path: {answer}");
    assert_eq!(device_hash_jobs(&app, &data).await, 1, "its job is queued with the content");

    // the SHA-256 of content over 16 MiB is not its device hash: never found by it
    assert_ne!(check(&cam, &sha256_hex(&data), data.len()).await["skip_upload"], true);

    // no device sent it: the job alone computes its top-hash, with one read of the blob
    let sha256 = Sha256Hex::parse(&sha256_hex(&data)).unwrap();
    assert_eq!(recorded_top_hash(&app, &sha256).await.as_ref().map(Sha256Hex::as_str), Some(top));
    let entry = check(&cam, top, data.len()).await;
    assert_eq!(entry["skip_upload"], true, "found by its top-hash: {entry}");
    // and the same bytes sent again without a bound hash are answered with it
    let again = app.client.put(app.signed_put(owner.user_id, None, None)).body(data.clone()).send().await.unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!((again["deduplicated"].clone(), again["file_hash"].clone()), (json!(true), json!(top)));

    // and a device may name it in a media item
    let item = json!({"media_path": "/big.bin", "file_hash": top, "file_size": data.len(),
                      "ctime": "2026-01-01T00:00:00Z", "mtime": "2026-01-01T00:00:00Z"});
    let created = cam.post_ok("media", item).await;
    assert!(created["media_id"].is_i64(), "{created}");
}

#[tokio::test]
async fn a_device_that_binds_its_top_hash_gets_it_checked_at_once_and_queues_no_job() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(16 * 1024 * 1024 + 1, 41);
    let top = top_hash_of(&data);

    let entry = check(&cam, &top, data.len()).await;
    let url = entry["signed_opts"]["url"].as_str().unwrap().to_owned();
    let mut wrong = data.clone();
    wrong[9 * 1024 * 1024] ^= 1;
    expect_error(app.client.put(&url).body(wrong).send().await.unwrap(), 400, "hash_mismatch").await;
    let stored: Value = app.client.put(&url).body(data.clone()).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["file_hash"], top.as_str());

    let blob = app.catalog().blob(&Sha256Hex::parse(&sha256_hex(&data)).unwrap()).await.unwrap().unwrap();
    assert_eq!(blob.chunked_hash.map(|h| h.to_string()), Some(top.clone()), "recorded with the upload");
    assert_eq!(device_hash_jobs(&app, &data).await, 0);
    assert_eq!(check(&cam, &top, data.len()).await["skip_upload"], true);
}

#[tokio::test]
async fn small_content_is_named_by_its_sha256_whichever_family_brought_it() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(16 * 1024 * 1024, 42);
    let put = app.client.put(app.signed_put(owner.user_id, None, None)).body(data.clone()).send().await.unwrap();
    let answer: Value = put.json().await.unwrap();
    assert_eq!(answer["file_hash"], sha256_hex(&data), "16 MiB: the file hash is the SHA-256");
    assert_eq!(device_hash_jobs(&app, &data).await, 0);
    assert_eq!(check(&cam, &sha256_hex(&data), data.len()).await["skip_upload"], true);
}
