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
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

/// Where an acknowledged upload is read back (a path on whichever server runs now).
#[derive(Clone, Debug)]
enum Readback {
    /// GET with the token.
    Path(String),
    /// The device family's `download` of this content, then its signed URL.
    DeviceContent(String),
}

#[derive(Clone, Debug)]
struct Acked {
    kind: usize,
    what: String,
    readback: Readback,
    bytes: Vec<u8>,
}

struct Credentials {
    token: String,
    key: String,
    grant: String,
}

/// What the clients saw: uploads acknowledged, and session uploads refused with an error
/// status (by their title).
#[derive(Default)]
struct Seen {
    acked: Vec<Acked>,
    refused_titles: Vec<String>,
}

/// `ferry --data-dir DATA admin ARGS --json` with the replica's settings `env`.
fn admin(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut command = ferry_bin();
    command.arg("--data-dir").arg(data).arg("admin").args(args).arg("--json").envs(env.iter().copied());
    let out = command.output().unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The path of a URL (links name the server that handed them out; it runs elsewhere now).
fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/".into(), |at| after_scheme[at..].to_owned())
}

/// One upload of `kind` (0-5: device, session, gallery, tus, multipart, a refused session
/// upload); `Some` when acknowledged.
async fn upload_once(
    client: &reqwest::Client,
    base: &str,
    creds: &Credentials,
    kind: usize,
    name: &str,
    bytes: Vec<u8>,
    seen: &Mutex<Seen>,
) -> reqwest::Result<Option<Acked>> {
    let token = &creds.token;
    let acked = |readback| Some(Acked { kind, what: format!("{kind}:{name}"), readback, bytes: bytes.clone() });
    match kind {
        0 => {
            let hash = sha256_hex(&bytes);
            let grant = format!("{base}/device/1/media_grant/{}", creds.grant);
            let key = format!("device_session_key={}", creds.key);
            let check = json!({"file_list": [{"file_hash": hash, "file_size": bytes.len()}]});
            let answer: Value = client.post(format!("{grant}/upload?{key}")).json(&check).send().await?.json().await?;
            let entry = &answer["upload_list"][0];
            if entry["skip_upload"] != true {
                let put = client.put(entry["signed_opts"]["url"].as_str().unwrap_or_default()).body(bytes.clone());
                if !put.send().await?.status().is_success() {
                    return Ok(None);
                }
            }
            let media = json!({"media_path": format!("/{name}"), "file_hash": hash, "file_size": bytes.len(),
                               "ctime": 1, "mtime": 1});
            let created = client.post(format!("{grant}/media?{key}")).json(&media).send().await?;
            Ok(created.status().is_success().then(|| acked(Readback::DeviceContent(hash))).flatten())
        }
        // 1: a session upload; 5: one the session must refuse (a file type it does not take)
        1 | 5 => {
            let register = client.post(format!("{base}/api/upload/id")).bearer_auth(token);
            let mut fields = vec![("folder_id", "crash")];
            if kind == 5 {
                fields.push(("file_extensions", "jpg"));
            }
            let session: Value = register.form(&fields).send().await?.json().await?;
            let Some(ulid) = session["ulid"].as_str() else { return Ok(None) };
            let form =
                Form::new().text("title", name.to_owned()).part("file", Part::bytes(bytes.clone()).file_name("f.bin"));
            let stored =
                client.post(format!("{base}/api/file/{ulid}")).bearer_auth(token).multipart(form).send().await?;
            if stored.status().is_client_error() || stored.status().is_server_error() {
                seen.lock().unwrap().refused_titles.push(name.to_owned());
                return Ok(None);
            }
            assert!(kind != 5, "a file of a type the session does not take was stored: {name}");
            let answer: Value = stored.json().await?;
            Ok(answer["file_id"].as_str().map(|id| format!("/api/files/{id}")).and_then(|p| acked(Readback::Path(p))))
        }
        2 => {
            let form =
                Form::new().text("name", name.to_owned()).part("event", Part::bytes(bytes.clone()).file_name("e.jpg"));
            let stored = client.post(format!("{base}/api/gallery/cam/upload")).bearer_auth(token).multipart(form);
            let answer: Value = stored.send().await?.json().await?;
            let Some(event) = answer["eventId"].as_str() else { return Ok(None) };
            Ok(acked(Readback::Path(format!("/api/gallery/cam/events/{event}/file"))))
        }
        3 => {
            let create = client.post(format!("{base}/files/")).bearer_auth(token).header("tus-resumable", "1.0.0");
            let created = create.header("upload-length", bytes.len().to_string()).send().await?;
            let Some(location) = created.headers().get("location").and_then(|l| l.to_str().ok()) else {
                return Ok(None);
            };
            let patch = client.patch(format!("{base}{}", path_of(location))).bearer_auth(token);
            let patched = patch
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", crate::tus::OCTETS)
                .body(bytes.clone())
                .send()
                .await?;
            let file = patched.headers().get("ferry-location").and_then(|l| l.to_str().ok()).map(path_of);
            Ok(file.filter(|_| patched.status() == 204).and_then(|p| acked(Readback::Path(p))))
        }
        _ => {
            let target: Value =
                client.get(format!("{base}/api/users/uploads/{name}")).bearer_auth(token).send().await?.json().await?;
            let Some(url) = target["upload_url"].as_str() else { return Ok(None) };
            let put = client.put(format!("{base}{}", path_of(url))).body(bytes.clone()).send().await?;
            Ok(put.status().is_success().then(|| acked(Readback::Path(format!("/api/users/files/{name}")))).flatten())
        }
    }
}

/// What is stored for `acked` on the server at `base` now.
async fn read_back(client: &reqwest::Client, base: &str, creds: &Credentials, acked: &Acked) -> (u16, Vec<u8>) {
    let response = match &acked.readback {
        Readback::Path(path) => client.get(format!("{base}{path}")).bearer_auth(&creds.token).send().await.unwrap(),
        Readback::DeviceContent(hash) => {
            let url = format!("{base}/device/1/media_grant/{}/download?device_session_key={}", creds.grant, creds.key);
            let answer: Value =
                client.post(url).json(&json!({"hash_list": [hash]})).send().await.unwrap().json().await.unwrap();
            let Some(signed) = answer["download_list"][0]["url"].as_str() else { return (404, Vec::new()) };
            client.get(format!("{base}{}", path_of(signed))).send().await.unwrap()
        }
    };
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn killed_at_random_moments_the_server_loses_no_acknowledged_upload() {
    let scratch = tempfile::tempdir().unwrap();
    crash_loop(&scratch.path().join("data"), &[], false).await;
}

#[tokio::test]
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
    let mut acked_total = 0;
    for round in 0..rounds {
        let server = FerryProcess::start(data, env);
        let base = server.address.clone();
        let mut workers = Vec::new();
        for worker in 0..6 {
            let (client, base, creds, seen) = (client.clone(), base.clone(), creds.clone(), seen.clone());
            workers.push(tokio::spawn(async move {
                // bounded: the kill ends it long before
                for n in 0..1_000usize {
                    let name = format!("r{round}-w{worker}-{n}");
                    let size = 1 + (round * 7919 + worker * 104_729 + n * 3571) % (256 * 1024);
                    let bytes = bytes_of(size, (round * 1000 + worker * 100 + n) as u64);
                    match upload_once(&client, &base, &creds, (worker + n) % 6, &name, bytes, &seen).await {
                        Ok(Some(acked)) => seen.lock().unwrap().acked.push(acked),
                        Ok(None) => {}
                        Err(_) => return, // the server went away
                    }
                }
            }));
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
    for kind in 0..5 {
        assert!(acked.iter().any(|a| a.kind == kind), "no upload of kind {kind} was acknowledged");
    }
    let refused = seen.lock().unwrap().refused_titles.len();
    assert!(refused >= rounds, "only {refused} refused uploads were tried in {rounds} rounds");
    let how = if replicated { "one of two replicas on PostgreSQL + S3" } else { "the embedded default" };
    eprintln!(
        "crash loop ({how}): {rounds} rounds, {} acknowledged uploads checked, 0 lost; {refused} refused, none visible",
        acked.len()
    );
}
