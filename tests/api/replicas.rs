//! Two real `ferry serve` processes on one PostgreSQL + one S3 bucket, as behind a load
//! balancer: any replica serves any step of an upload (multipart, tus), and a job queued once
//! runs once.
//! Needs `FERRY_TEST_DATABASE_URL` and `FERRY_TEST_S3_*`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ferry::catalog::SqlCatalog as PgCatalog;
use ferry::catalog::{Identities, JobQueue, Library, TokenRecord, User};
use ferry::domain::{Level, Name};
use serde_json::{Value, json};

use crate::blob_store_conformance::test_s3_config;
use crate::catalog_postgres::TestDatabase;
use crate::helpers::*;

const MIB: usize = 1024 * 1024;

/// An origin server on loopback that counts how often its file is fetched.
async fn counting_origin(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/clip.mp4",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/clip.mp4", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hits)
}

/// User alice (uploader) with a token of `scopes`: the user, the token's secret and its record.
async fn alice_with_token(catalog: &PgCatalog, scopes: &str) -> (User, String, TokenRecord) {
    let alice = catalog.create_user(&Name::parse("alice").unwrap(), Level::Uploader).await.unwrap();
    let token = ferry::auth::secrets::generate("fry_t_");
    let hash = ferry::auth::secrets::hash(&token);
    let issued = catalog.create_token(alice.user_id, scopes.parse().unwrap(), &hash).await.unwrap();
    (alice, token, issued)
}

/// The environment of a replica on `database` and `s3`.
pub(crate) fn replica_env(
    s3: &ferry::config::S3Config,
    database: &TestDatabase,
    direct: bool,
) -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_DATABASE_URL", database.url.clone()),
        ("FERRY_S3_ENDPOINT", s3.endpoint.clone().unwrap()),
        ("FERRY_S3_REGION", s3.region.clone()),
        ("FERRY_S3_BUCKET", s3.bucket.clone()),
        ("FERRY_S3_PREFIX", s3.prefix.clone()),
        ("FERRY_S3_ACCESS_KEY_ID", s3.access_key_id.clone().unwrap_or_default()),
        ("FERRY_S3_SECRET_ACCESS_KEY", s3.secret_access_key.clone().map(|s| s.0).unwrap_or_default()),
        ("FERRY_REMOTE_ALLOW", "127.0.0.1/32".into()),
        ("FERRY_JOB_INTERVAL", "100ms".into()),
        ("FERRY_S3_DIRECT", direct.to_string()),
    ]
}

#[tokio::test]
async fn two_replicas_share_uploads_and_run_a_job_once() {
    let (Some(s3), Some(database)) = (test_s3_config(), TestDatabase::create().await) else { return };
    let env = replica_env(&s3, &database, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = FerryProcess::start(dir_a.path(), &env);
    let b = FerryProcess::start(dir_b.path(), &env);
    let client = reqwest::Client::new();

    let catalog = PgCatalog::open(&database.url).await.unwrap();
    let (_, token, _) = alice_with_token(&catalog, "upload").await;

    // start on A, send the parts to B (same signed path and query, other host), complete on A
    let start = format!("{}/api/users/multipart_upload_start/shared?part_count=2", a.address);
    let started: Value = client.get(start).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let pieces = [bytes_of(5 * MIB, 1), bytes_of(300, 2)];
    let mut etags = Vec::new();
    for (url, piece) in started["presigned_urls"].as_array().unwrap().iter().zip(&pieces) {
        let url = url.as_str().unwrap().replacen(&a.address, &b.address, 1);
        assert!(url.starts_with(&b.address), "{url}");
        let put = client.put(url).body(piece.clone()).send().await.unwrap();
        assert_eq!(put.status(), 200, "B takes a part of A's upload");
        etags.push(put.headers()["etag"].to_str().unwrap().to_owned());
    }
    let parts: Vec<Value> = etags.iter().zip(1..).map(|(e, n)| json!({"part_number": n, "etag": e})).collect();
    let complete = format!("{}/api/users/multipart_upload_complete/shared", a.address);
    let body = json!({"upload_id": started["upload_id"], "parts": parts});
    let done: Value = client.post(complete).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
    let whole = pieces.concat();
    assert_eq!(done["checksum"], sha256_hex(&whole), "{done}");
    let location = done["location"].as_str().unwrap().replacen(&a.address, &b.address, 1);
    let fetched = client.get(location).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &whole[..], "B serves what A completed, from S3");
    assert!(no_local_blobs(&[dir_a.path(), dir_b.path()]), "no blob bytes on a replica's disk");

    // a job queued through A is claimed by exactly one of the two runners
    let (origin, hits) = counting_origin(bytes_of(40_000, 3)).await;
    let queued: Value = client
        .post(format!("{}/api/upload/remote", a.address))
        .bearer_auth(&token)
        .json(&json!({"url": origin, "folder_id": "web"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = queued["job_id"].as_str().expect("a job id").to_owned();
    let mut status = Value::Null;
    for _ in 0..100 {
        let url = format!("{}/api/upload/remote/{job}", b.address);
        status = client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        if status["status"] == "done" || status["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "done", "{status}");
    tokio::time::sleep(Duration::from_millis(500)).await; // both runners have looked again
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the job ran once");
    // every job (the fetch, and the media jobs uploads queue) was claimed once, by one runner
    let jobs = catalog.list_jobs(None).await.unwrap();
    assert!(jobs.iter().any(|j| j.job_id.to_string() == job));
    assert!(jobs.iter().all(|j| j.attempts == 1), "{jobs:?}");
    drop((a, b));
}

#[tokio::test]
async fn direct_completions_sent_to_two_replicas_at_once_all_get_the_same_answer() {
    let (Some(s3), Some(database)) = (test_s3_config(), TestDatabase::create().await) else { return };
    let env = replica_env(&s3, &database, true);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = FerryProcess::start(dir_a.path(), &env);
    let b = FerryProcess::start(dir_b.path(), &env);
    let client = reqwest::Client::new();
    let catalog = PgCatalog::open(&database.url).await.unwrap();
    let (_, token, _) = alice_with_token(&catalog, "upload").await;
    for round in 0..3 {
        let file_id = format!("clip-{round}");
        let start = format!("{}/api/users/multipart_upload_start/{file_id}?part_count=2", a.address);
        let started: Value = client.get(start).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let pieces = [bytes_of(5 * MIB, 10 + round), bytes_of(30_000, 20 + round)];
        let mut parts = Vec::new();
        for (n, piece) in pieces.iter().enumerate() {
            let put = client.put(started["presigned_urls"][n].as_str().unwrap()).body(piece.clone()).send();
            let put = put.await.unwrap();
            assert_eq!(put.status(), 200);
            parts.push(json!({"part_number": n + 1, "etag": put.headers()["etag"].to_str().unwrap()}));
        }
        let body = json!({"upload_id": started["upload_id"], "parts": parts});
        let completes = (0..6).map(|i| {
            let replica = if i % 2 == 0 { &a.address } else { &b.address };
            let url = format!("{replica}/api/users/multipart_upload_complete/{file_id}");
            client.post(url).bearer_auth(&token).json(&body).send()
        });
        let mut answers = Vec::new();
        for answer in futures_util::future::join_all(completes).await {
            let answer = answer.unwrap();
            let status = answer.status();
            let text = answer.text().await.unwrap();
            assert_eq!(status, 200, "round {round}: {text}");
            answers.push(serde_json::from_str::<Value>(&text).unwrap());
        }
        let first = &answers[0];
        assert!(answers.iter().all(|answer| answer["checksum"] == first["checksum"]), "{answers:?}");
        let whole = pieces.concat();
        assert_eq!(first["checksum"], sha256_hex(&whole));
        for replica in [&a.address, &b.address] {
            let url = format!("{replica}/api/users/files/{file_id}");
            let fetched = client.get(url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(fetched.bytes().await.unwrap().as_ref(), &whole[..], "round {round}: the file is there");
        }
    }
}

/// True when no replica keeps blob files in its data dir (they are all in the bucket).
fn no_local_blobs(dirs: &[&std::path::Path]) -> bool {
    dirs.iter().all(|d| files_under(&d.join("blobs")).is_empty())
}

#[tokio::test]
async fn a_token_revoked_is_refused_by_both_replicas_within_a_second_while_their_caches_are_warm() {
    let (Some(s3), Some(database)) = (test_s3_config(), TestDatabase::create().await) else { return };
    let env = replica_env(&s3, &database, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let replicas = [FerryProcess::start(dir_a.path(), &env), FerryProcess::start(dir_b.path(), &env)];
    let client = reqwest::Client::new();
    let catalog = PgCatalog::open(&database.url).await.unwrap();
    let (_, token, issued) = alice_with_token(&catalog, "read").await;
    let me = |replica: &FerryProcess| client.get(format!("{}/api/me", replica.address)).bearer_auth(&token).send();
    for _ in 0..20 {
        for replica in &replicas {
            assert_eq!(me(replica).await.unwrap().status(), 200, "a burst on each replica warms its cache");
        }
    }
    catalog.revoke_token(issued.token_id).await.unwrap();
    // both are asked in turn, so neither gets a second longer than the other
    let since = std::time::Instant::now();
    for replica in &replicas {
        refused_within_a_second(|| async { me(replica).await.unwrap() }, 401, "unauthorized").await;
    }
    assert!(since.elapsed() < Duration::from_secs(1), "both refuse within a second of the revocation");
}

#[tokio::test]
async fn a_tus_upload_started_on_one_replica_is_finished_on_the_other() {
    let (Some(s3), Some(database)) = (test_s3_config(), TestDatabase::create().await) else { return };
    let root = std::env::var("FERRY_TEST_S3_ROOT").expect("FERRY_TEST_S3_ROOT (the s3s-fs root) with FERRY_TEST_S3_*");
    let env = replica_env(&s3, &database, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = FerryProcess::start(dir_a.path(), &env);
    let b = FerryProcess::start(dir_b.path(), &env);
    let client = reqwest::Client::new();
    let catalog = PgCatalog::open(&database.url).await.unwrap();
    let (alice, token, _) = alice_with_token(&catalog, "upload").await;
    let tus = |method: reqwest::Method, url: &str| {
        client.request(method, url).bearer_auth(&token).header("tus-resumable", "1.0.0")
    };
    let patch = |replica: &str, id: &str, offset: usize, bytes: Vec<u8>| {
        tus(reqwest::Method::PATCH, &format!("{replica}/files/{id}"))
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes)
            .send()
    };

    let body = bytes_of(17 * MIB + 5, 40);
    let created = tus(reqwest::Method::POST, &format!("{}/files/", a.address))
        .header("upload-length", body.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    // a part's worth on A, a tail's worth on B (less than S3's 5 MiB part), more on A
    let cuts = [0, 6 * MIB, 7 * MIB, 12 * MIB];
    for (window, replica) in cuts.windows(2).zip([&a.address, &b.address, &a.address]) {
        let patched = patch(replica, &id, window[0], body[window[0]..window[1]].to_vec()).await.unwrap();
        assert_eq!(patched.status(), 204, "{replica}: {:?}", patched.text().await);
    }
    let upload = ferry::catalog::TusUploads::tus_upload(&catalog, &id, alice.user_id).await.unwrap().unwrap();
    let state: Value = serde_json::from_str(&upload.staging_state).unwrap();
    let s3_upload = state["upload"].as_str().expect("parts went to an S3 multipart upload").to_owned();

    // while a PATCH on B holds the upload, a PATCH on A is locked out: the lease is shared
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(receive, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let slow = tokio::spawn(
        tus(reqwest::Method::PATCH, &format!("{}/files/{id}", b.address))
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", (12 * MIB).to_string())
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    send.send(Ok(body[12 * MIB..13 * MIB].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let locked = patch(&a.address, &id, 12 * MIB, body[12 * MIB..].to_vec()).await.unwrap();
    assert_eq!(locked.status(), 423, "{:?}", locked.text().await);
    send.send(Ok(body[13 * MIB..].to_vec())).await.unwrap();
    drop(send);
    let finished = slow.await.unwrap().unwrap();
    assert_eq!(finished.status(), 204, "B finished it: {:?}", finished.text().await);

    let files = catalog.list_files(Some(alice.user_id)).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].sha256.as_str(), sha256_hex(&body), "the blob's SHA-256 is right");
    let fetched = client.get(format!("{}/api/files/{}", a.address, files[0].file_id)).bearer_auth(&token).send();
    assert_eq!(sha256_hex(&fetched.await.unwrap().bytes().await.unwrap()), sha256_hex(&body));
    let staging = std::path::Path::new(&root).join(&s3.bucket).join(s3.prefix.trim_end_matches('/')).join("staging");
    assert!(files_under(&staging).is_empty(), "no staging object is left: {:?}", files_under(&staging));
    let part = std::path::Path::new(&root).join(format!(".upload_id-{s3_upload}.part-1"));
    assert!(!part.exists(), "the S3 multipart upload's parts are gone");
    assert!(no_local_blobs(&[dir_a.path(), dir_b.path()]));
}
