//! `ferry admin backup` / `restore` (issue 30): a backup taken while uploads run restores into
//! a new data dir that `admin check` finds clean, with every file acknowledged before the
//! backup began byte-identical; what cannot be a backup or a restore is refused.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::lifecycle::session_upload;

/// What an uploader got a 2xx for: (file id, bytes, when).
type Acknowledged = Arc<Mutex<Vec<(String, Vec<u8>, Instant)>>>;

fn admin_async(data_dir: &Path, args: &[&str]) -> tokio::task::JoinHandle<(i32, Value)> {
    let (data_dir, args): (_, Vec<String>) = (data_dir.to_owned(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || admin_json(&data_dir, &args.iter().map(String::as_str).collect::<Vec<_>>()))
}

fn assert_clean(check: &Value) {
    for list in ["blobs_without_rows", "rows_without_blobs", "pending_intents", "staging_leftovers"] {
        assert_eq!(check[list], json!([]), "{list} in {check}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_uploads_restores_every_acknowledged_file() {
    let dir = tempfile::tempdir().unwrap();
    let (live, backup, restored) = (dir.path().join("live"), dir.path().join("backup"), dir.path().join("restored"));
    admin_json(&live, &["user", "add", "alice", "--level", "uploader"]);
    let token = admin_json(&live, &["token", "add", "--user", "alice", "--scopes", "upload,read"]).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut server = FerryProcess::start(&live, &[]);
    let client = reqwest::Client::new();
    // a tus upload half sent when the backup is taken
    let created = client
        .post(format!("{}/files/", server.address))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "9000")
        .send()
        .await
        .unwrap();
    let tus = created.headers()["location"].to_str().unwrap().to_owned();
    let patched = client
        .patch(&tus)
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(bytes_of(4000, 99))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 204);

    let (stop, acknowledged): (Arc<AtomicBool>, Acknowledged) = Default::default();
    let uploaders: Vec<_> = (0..4u64)
        .map(|worker| {
            let (stop, acknowledged, base, token) =
                (stop.clone(), acknowledged.clone(), server.address.clone(), token.clone());
            tokio::spawn(async move {
                for n in 0..300u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let bytes = bytes_of(2000 + (n as usize * 13) % 5000, worker * 1000 + n);
                    let file_id = session_upload(&base, &token, &bytes).await;
                    acknowledged.lock().unwrap().push((file_id, bytes, Instant::now()));
                }
            })
        })
        .collect();
    for _ in 0..200 {
        if acknowledged.lock().unwrap().len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let began = Instant::now();
    let (code, manifest) = admin_async(&live, &["backup", backup.to_str().unwrap()]).await.unwrap();
    assert_eq!(code, 0, "{manifest}");
    stop.store(true, Ordering::Relaxed);
    for uploader in uploaders {
        uploader.await.unwrap();
    }
    let before: Vec<_> = acknowledged.lock().unwrap().iter().filter(|(_, _, at)| *at < began).cloned().collect();
    assert!(before.len() >= 20, "{} files acknowledged before the backup", before.len());
    assert_eq!(manifest["dropped_uploads"], 1, "the half-sent tus upload is left out: {manifest}");
    assert!(manifest["blobs"].as_u64().unwrap() >= before.len() as u64, "{manifest}");
    server.signal("TERM");
    assert!(server.wait_exit(20).is_some());

    let (code, restore) = admin_async(&restored, &["restore", backup.to_str().unwrap()]).await.unwrap();
    assert_eq!(code, 0, "{restore}");
    assert_clean(&restore["check"]);
    assert_clean(&admin_async(&restored, &["check", "--deep"]).await.unwrap().1);

    let server = FerryProcess::start(&restored, &[]);
    for (file_id, bytes, _) in &before {
        let url = format!("{}/api/files/{file_id}", server.address);
        let got = client.get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(got.status(), 200, "file {file_id}");
        assert!(got.bytes().await.unwrap() == bytes.as_slice(), "file {file_id} is byte-identical");
    }
    let tus = tus.replacen(&format!("http://{}", tus.split('/').nth(2).unwrap()), &server.address, 1);
    let head = client.head(&tus).bearer_auth(&token).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(head.status(), 404, "an upload in flight at the backup starts again");
}

#[test]
fn what_is_no_backup_or_no_place_to_restore_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (live, backup, restored) = (dir.path().join("live"), dir.path().join("backup"), dir.path().join("restored"));
    let backup_arg = backup.to_str().unwrap();
    admin_json(&live, &["user", "add", "alice", "--level", "uploader"]);

    let (code, missing) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!((code, missing["error"].as_str()), (1, Some("invalid_argument")), "{missing}");
    assert!(!restored.exists(), "a failed restore creates nothing");

    assert_eq!(admin_json(&live, &["backup", backup_arg]).0, 0);
    let (code, again) = admin_json(&live, &["backup", backup_arg]);
    assert_eq!((code, again["error"].as_str()), (1, Some("invalid_argument")), "{again}");
    assert!(again["message"].as_str().unwrap().contains("not empty"), "{again}");

    let (code, onto_live) = admin_json(&live, &["restore", backup_arg]);
    assert_eq!((code, onto_live["error"].as_str()), (1, Some("invalid_argument")), "{onto_live}");
    assert!(onto_live["message"].as_str().unwrap().contains("already exists"), "{onto_live}");

    // an interrupted backup (no manifest) is never restored
    std::fs::remove_file(backup.join("ferry-backup.json")).unwrap();
    let (code, unfinished) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!((code, unfinished["error"].as_str()), (1, Some("invalid_argument")), "{unfinished}");

    let on_postgres = ferry_bin()
        .args(["--data-dir", live.to_str().unwrap(), "admin", "backup", dir.path().join("pg").to_str().unwrap()])
        .arg("--json")
        .env("FERRY_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .output()
        .unwrap();
    let refusal: Value = serde_json::from_slice(&on_postgres.stderr).unwrap();
    assert!(refusal["message"].as_str().unwrap().contains("pg_dump"), "{refusal}");
}
