//! `ferry admin migrate-store`: an embedded data dir (SQLite + local blobs) grows into
//! PostgreSQL + S3 without re-uploading; every blob is verified, a corrupted one is refused,
//! and running the command again resumes. Needs `FERRY_TEST_DATABASE_URL` and `FERRY_TEST_S3_*`.

use std::path::Path;

use serde_json::{Value, json};

use crate::blob_store_conformance::test_s3_config;
use crate::catalog_postgres::TestDatabase;
use crate::device_client::DeviceClient;
use crate::helpers::*;

fn migrate(env: &[(&str, String)], from: &Path) -> (i32, Value) {
    let target = tempfile::tempdir().unwrap();
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(target.path())
        .args(["admin", "migrate-store", "--from-data-dir"])
        .arg(from)
        .arg("--json")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(if code == 0 { &out.stdout } else { &out.stderr }).into_owned();
    (code, serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Adds an account to the catalog (and store) `env` names, as an admin would.
fn add_user(env: &[(&str, String)], name: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let added = ferry_bin()
        .arg("--data-dir")
        .arg(scratch.path())
        .args(["admin", "user", "add", name, "--level", "uploader"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
}

fn inserted(report: &Value, table: &str) -> u64 {
    let tables = report["tables"].as_array().unwrap();
    tables.iter().find(|t| t["table"] == table).map_or(0, |t| t["inserted"].as_u64().unwrap())
}

#[tokio::test]
async fn an_embedded_data_dir_moves_to_postgres_and_s3_verified_and_resumable() {
    let (Some(s3), Some(database)) = (test_s3_config(), TestDatabase::create().await) else { return };
    // the embedded installation: SQLite and local disk, whatever the suite runs on
    let app = spawn_app_with(|layer| {
        for key in ["database_url", "s3_bucket", "s3_endpoint", "s3_prefix"] {
            layer.remove(key);
        }
        layer.insert("database_url", format!("sqlite://{}/ferry.db", layer["data_dir"]));
    })
    .await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| bytes_of(20_000 + i, 40 + i as u64)).collect();
    for (i, file) in files.iter().enumerate() {
        let hash = cam.upload(file).await;
        assert_eq!(cam.create(&format!("/f{i}.bin"), &hash, file.len()).await.status(), 200);
    }
    let old = app.data_dir.path().to_owned();
    let old_link = app.signed_get(&sha256_hex(&files[1]));

    let env = vec![
        ("FERRY_DATABASE_URL", database.url.clone()),
        ("FERRY_S3_ENDPOINT", s3.endpoint.clone().unwrap()),
        ("FERRY_S3_REGION", s3.region.clone()),
        ("FERRY_S3_BUCKET", s3.bucket.clone()),
        ("FERRY_S3_PREFIX", s3.prefix.clone()),
        ("FERRY_S3_ACCESS_KEY_ID", s3.access_key_id.clone().unwrap_or_default()),
        ("FERRY_S3_SECRET_ACCESS_KEY", s3.secret_access_key.clone().map(|s| s.0).unwrap_or_default()),
    ];
    // not while the old server runs (its data dir's lock is held)
    let (code, refused) = migrate(&env, &old);
    assert_eq!(code, 1, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("stop it, then migrate"), "{refused}");
    app.stop_serving().await;

    // a blob damaged on the old disk is refused, named, and nothing of the catalog moves
    let damaged = app.blob_files().into_iter().next().unwrap();
    let original = std::fs::read(&damaged).unwrap();
    let mut broken = original.clone();
    broken[100] ^= 0xff;
    std::fs::write(&damaged, &broken).unwrap();
    let (code, refused) = migrate(&env, &old);
    assert_eq!(code, 1, "{refused}");
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(refused["message"].as_str().unwrap().contains(name), "{refused}");
    std::fs::write(&damaged, &original).unwrap();

    // the repaired run copies what is missing; a further run finds everything there
    let (code, report) = migrate(&env, &old);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["blobs_copied"].as_u64().unwrap() + report["blobs_present"].as_u64().unwrap(), 3);
    assert_eq!((inserted(&report, "users"), inserted(&report, "media")), (1, 3), "{report}");
    let (_, again) = migrate(&env, &old);
    assert_eq!((again["blobs_copied"].as_u64(), again["blobs_present"].as_u64()), (Some(0), Some(3)));
    assert!(again["tables"].as_array().unwrap().iter().all(|t| t["inserted"] == 0), "{again}");

    // nor again once the new installation has accounts the old one does not
    add_user(&env, "carol");
    let (code, refused) = migrate(&env, &old);
    assert_eq!(code, 1, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("1 account(s) the old installation does not"), "{refused}");

    // never into a catalog with accounts of its own: rows keep their ids, so bob's user 1
    // would have been given alice's files
    let other = TestDatabase::create().await.unwrap();
    let mut elsewhere = env.clone();
    elsewhere[0].1 = other.url.clone();
    elsewhere[4].1 = format!("{}-elsewhere/", s3.prefix.trim_end_matches('/'));
    assert_eq!(elsewhere[4].0, "FERRY_S3_PREFIX");
    add_user(&elsewhere, "bob");
    let (code, refused) = migrate(&elsewhere, &old);
    assert_eq!(code, 1, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("holds 1 account(s) the old installation does not"),
        "{refused}"
    );

    // a server on PostgreSQL + S3 knows the device, its key, its content and its media
    let new_dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = FerryProcess::start(new_dir.path(), &env);
    let client = reqwest::Client::new();
    let list: Vec<Value> = files.iter().map(|f| json!({"file_hash": sha256_hex(f), "file_size": f.len()})).collect();
    let url = format!("{}/device/1/media_grant/{}/upload", server.address, cam.grant);
    let body = json!({"device_session_key": cam.key, "file_list": list});
    let answer: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
    let entries = answer["upload_list"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["skip_upload"] == true), "{answer}");
    let feed = format!("{}/device/1/media_grant/{}/media_list", server.address, cam.grant);
    let feed: Value =
        client.post(feed).json(&json!({"device_session_key": cam.key})).send().await.unwrap().json().await.unwrap();
    assert_eq!(feed["media_list"].as_array().unwrap().len(), 3);
    let link = old_link.replacen(&app.address, &server.address, 1);
    let bytes = client.get(link).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), &files[1][..], "served from S3, for a URL the old server signed");
}
