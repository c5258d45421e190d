//! The crash loop (issue 27): the real server is killed with SIGKILL at a random moment while
//! uploads of every family run at once, then started again on the same data dir, round after
//! round. After each restart every upload acknowledged so far downloads byte-identical, no
//! upload refused with an error is visible, `ferry admin check` finds every row with its bytes
//! and every blob with its row, and no request's staging is left. The same with two replicas
//! on PostgreSQL + S3, one of them killed (clients upload through it, the other one serves
//! the checks). `FERRY_CRASH_ROUNDS` sets the number of rounds (CI: 5; `bench/crash-loop` 100).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};

use crate::helpers::*;
use uploads::{ACKNOWLEDGED_KINDS, Credentials, DEVICE_MULTIPART, KINDS, Seen, read_back, upload_once};

/// `ferry --data-dir DATA admin ARGS --json` with the replica's settings `env`.
fn admin(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut command = ferry_bin();
    command.arg("--data-dir").arg(data).arg("admin").args(args).arg("--json").envs(env.iter().copied());
    let out = command.output().unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

mod uploads;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_random_moments_the_server_loses_no_acknowledged_upload() {
    let scratch = tempfile::tempdir().unwrap();
    crash_loop(&scratch.path().join("data"), &[], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_two_replicas_killed_at_random_moments_loses_no_acknowledged_upload() {
    let (Some(s3), Some(database)) =
        (crate::blob_store_conformance::test_s3_config(), crate::catalog_postgres::TestDatabase::create().await)
    else {
        return;
    };
    let env = crate::replicas::replica_env(&s3, &database, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let scratch = tempfile::tempdir().unwrap();
    crash_loop(&scratch.path().join("data"), &env, true).await;
}

/// Rounds of uploads through a server on `data` (with settings `env`) killed at a random
/// moment; with `replicated`, a second replica on other data dir serves every check.
async fn crash_loop(data: &Path, env: &[(&str, &str)], replicated: bool) {
    let rounds: usize = std::env::var("FERRY_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    admin(data, env, &["user", "add", "alice", "--level", "uploader"]);
    let token =
        admin(data, env, &["token", "add", "--user", "alice", "--scopes", "upload,read,delete"])["token"].clone();
    let key = admin(data, env, &["device", "add", "--user", "alice", "--name", "cam"])["device_session_key"].clone();
    admin(data, env, &["volume", "add", "photos", "--user", "alice"]);
    let grant = admin(data, env, &["grant", "add", "--device", "cam", "--volume", "photos"])["media_grant_id"].clone();
    let creds = Arc::new(Credentials {
        token: token.as_str().unwrap().into(),
        key: key.as_str().unwrap().into(),
        grant: grant.as_str().unwrap().into(),
    });
    let other_dir = tempfile::tempdir().unwrap();
    let survivor = replicated.then(|| FerryProcess::start(other_dir.path(), env));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (mut acked_total, mut aborted_total) = (0, 0);
    for round in 0..rounds {
        // the large file is made before the server starts, so the kill window is all uploading
        let large_size = (16 << 20) + 1 + round * 7919;
        let mut large = Some(bytes_of(large_size, round as u64));
        let server = FerryProcess::start(data, env);
        let base = server.address.clone();
        let mut workers = Vec::new();
        // in the first round the kill waits for the large file, so every run sees one through
        let (large_sent, large_done) = tokio::sync::oneshot::channel::<()>();
        let mut large_sent = Some(large_sent);
        for worker in 0..KINDS {
            let (client, base, creds, seen) = (client.clone(), base.clone(), creds.clone(), seen.clone());
            let mut large = if worker == 0 { large.take() } else { None };
            let mut large_sent = if worker == 0 { large_sent.take() } else { None };
            workers.push(tokio::spawn(async move {
                // bounded: the kill ends it long before
                for n in 0..1_000usize {
                    let name = format!("r{round}-w{worker}-{n}");
                    let size = 1 + (round * 7919 + worker * 104_729 + n * 3571) % (256 * 1024);
                    // one worker per kind, each starting at its own, so every kind is under way
                    // when the kill comes; worker 0 first sends a file in device multipart parts
                    let turn = if worker == 0 { n.checked_sub(1) } else { Some(n) };
                    let kind = turn.map_or(DEVICE_MULTIPART, |turn| (worker + turn + round) % KINDS);
                    let bytes = match large.take() {
                        Some(large) if kind == DEVICE_MULTIPART => large,
                        _ => bytes_of(size, (round * 1000 + worker * 100 + n) as u64),
                    };
                    let outcome = upload_once(&client, &base, &creds, kind, &name, bytes, &seen).await;
                    if kind == DEVICE_MULTIPART
                        && let Some(sent) = large_sent.take()
                    {
                        let _ = sent.send(());
                    }
                    match outcome {
                        Ok(Some(acked)) => seen.lock().unwrap().acked.push(acked),
                        Ok(None) => {}
                        Err(_) => return, // the server went away
                    }
                }
            }));
        }
        if round == 0 {
            let _ = tokio::time::timeout(Duration::from_secs(60), large_done).await;
        }
        let moment = rand::rng().random_range(150..900);
        eprintln!("crash loop round {round}: SIGKILL after {moment} ms");
        tokio::time::sleep(Duration::from_millis(moment)).await;
        server.signal("KILL");
        drop(server);
        for worker in workers {
            let _ = worker.await;
        }

        let restarted = FerryProcess::start(data, env);
        let base = survivor.as_ref().unwrap_or(&restarted).address.clone();
        let acked = seen.lock().unwrap().acked.clone();
        for upload in &acked[acked_total..] {
            let (status, bytes) = read_back(&client, &base, &creds, upload).await;
            assert_eq!(status, 200, "round {round}: acknowledged {} is gone", upload.what);
            assert!(bytes == upload.bytes, "round {round}: acknowledged {} came back different", upload.what);
        }
        acked_total = acked.len();
        let refused = seen.lock().unwrap().refused_titles.clone();
        let files = admin(data, env, &["files", "list", "--user", "alice"]).to_string();
        for title in &refused {
            assert!(!files.contains(&format!("\"{title}\"")), "round {round}: refused upload {title} is visible");
        }
        // an acknowledged abort stays one: the upload cannot be completed, its file never appears
        let aborted = seen.lock().unwrap().aborted.clone();
        for upload in &aborted[aborted_total..] {
            let name = &upload.name;
            let parts = json!({"upload_id": upload.upload_id, "parts": [{"part_number": 1, "etag": upload.etag}]});
            let complete = client.post(format!("{base}/api/users/multipart_upload_complete/{name}"));
            let completed = complete.bearer_auth(&creds.token).json(&parts).send().await.unwrap();
            assert!(completed.status().is_client_error(), "round {round}: aborted {name} completed after the restart");
            let file = client.get(format!("{base}/api/users/files/{name}")).bearer_auth(&creds.token).send();
            assert_eq!(file.await.unwrap().status(), 404, "round {round}: aborted multipart upload {name} is visible");
        }
        aborted_total = aborted.len();
        let check = admin(data, env, &["check"]);
        for field in ["blobs_without_rows", "rows_without_blobs", "pending_intents", "staging_leftovers"] {
            assert_eq!(check[field], json!([]), "round {round}: admin check {field}: {check}");
        }
        if !replicated {
            let requests_staging = files_under(&data.join("staging").join("requests"));
            assert!(requests_staging.is_empty(), "round {round}: request staging left: {requests_staging:?}");
        }
        drop(restarted);
    }
    // every acknowledged upload, once more after the last restart
    let server = FerryProcess::start(data, env);
    let acked = seen.lock().unwrap().acked.clone();
    for upload in &acked {
        let (status, bytes) = read_back(&client, &server.address, &creds, upload).await;
        assert!(status == 200 && bytes == upload.bytes, "acknowledged {} lost after {rounds} crashes", upload.what);
    }
    assert!(acked.len() >= rounds * 5, "only {} uploads were acknowledged in {rounds} rounds", acked.len());
    for kind in ACKNOWLEDGED_KINDS {
        assert!(acked.iter().any(|a| a.kind == kind), "no upload of kind {kind} was acknowledged");
    }
    let in_parts = acked.iter().filter(|a| a.kind == DEVICE_MULTIPART).count();
    // one try a round, often killed mid-flight; the first round's is let through
    assert!(in_parts > 0, "no device multipart upload was acknowledged in {rounds} rounds");
    let refused = seen.lock().unwrap().refused_titles.len();
    assert!(refused >= rounds, "only {refused} refused uploads were tried in {rounds} rounds");
    let how = if replicated { "one of two replicas on PostgreSQL + S3" } else { "the embedded default" };
    eprintln!(
        "crash loop ({how}): {rounds} rounds, {} acknowledged uploads checked ({in_parts} device multipart), 0 lost; \
         {refused} refused, none visible",
        acked.len()
    );
}
