//! `ferry admin backup` / `restore` (issue 30): a backup taken while uploads run restores into
//! a new data dir that `admin check` finds clean, with every file acknowledged before the
//! backup began byte-identical; what cannot be a backup or a restore is refused.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::in_flight::{form_end, form_file, form_upload, in_flight, register_session};
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
    // a session upload (autofinish: one file) and a gallery upload-url PUT, both mid-body
    let session = register_session(&client, &server.address, &token, "trip").await;
    let upload = form_upload(&client, session["api"]["upload"].as_str().unwrap(), &token);
    let (session_feed, session_upload_task) = in_flight(upload, form_file("slow.jpg", &bytes_of(50_000, 97))).await;
    admin_json(&live, &["device", "add", "--user", "alice", "--name", "door"]);
    let urls: Value = client
        .get(format!("{}/api/gallery/door/upload-url?filename=ring.jpg", server.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gallery_url = urls["upload_url"].as_str().unwrap().to_owned();
    let put = client.put(&gallery_url).header("content-length", "20000");
    let (gallery_feed, gallery_task) = in_flight(put, bytes_of(5000, 98)).await;

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
    // (the uploaders' own uploads in flight at that moment are left out too)
    let dropped = manifest["dropped_uploads"].as_u64().unwrap();
    assert!(dropped >= 3, "tus, session and gallery uploads in flight left out: {manifest}");
    drop((session_feed, gallery_feed));
    let _ = session_upload_task.await.unwrap(); // ended mid-body: refused, or cut off
    let _ = gallery_task.await.unwrap();
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
    let moved = |url: &str| url.replacen(&format!("http://{}", url.split('/').nth(2).unwrap()), &server.address, 1);
    let head = client.head(moved(&tus)).bearer_auth(&token).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(head.status(), 404, "an upload in flight at the backup starts again");
    // the clients of the other two start again, and are not refused
    let form = [form_file("slow.jpg", &bytes_of(500, 97)), form_end()].concat();
    let retried = form_upload(&client, &moved(session["api"]["upload"].as_str().unwrap()), &token)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200, "{:?}", retried.text().await);
    let retried = client.put(moved(&gallery_url)).body(bytes_of(700, 98)).send().await.unwrap();
    assert!(retried.status().is_success(), "{:?}", retried.text().await);
}

#[test]
fn a_backup_is_the_owners_alone_and_a_damaged_one_restores_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (live, backup, restored) = (dir.path().join("live"), dir.path().join("backup"), dir.path().join("restored"));
    admin_json(&live, &["user", "add", "alice", "--level", "uploader"]);
    assert_eq!(admin_json(&live, &["backup", backup.to_str().unwrap()]).0, 0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&backup), 0o700);
    assert_eq!(mode(&backup.join("ferry.db")), 0o600, "the catalog holds the signing secret");
    assert_eq!(mode(&backup.join("ferry-backup.json")), 0o600);

    // a blob the manifest does not list: the restore stops and leaves nothing behind
    let stray = backup.join("blobs/sha256/00/00");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("0".repeat(64)), b"stray").unwrap();
    let (code, damaged) = admin_json(&restored, &["restore", backup.to_str().unwrap()]);
    assert_eq!((code, damaged["error"].as_str()), (1, Some("backup")), "{damaged}");
    assert!(!restored.exists(), "a failed restore removes what it copied");
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

#[tokio::test]
async fn a_damaged_store_is_flagged_by_its_backup_a_damaged_backup_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (live, backup, restored) = (dir.path().join("live"), dir.path().join("backup"), dir.path().join("restored"));
    let backup_arg = backup.to_str().unwrap();
    admin_json(&live, &["user", "add", "alice", "--level", "uploader"]);
    let token = admin_json(&live, &["token", "add", "--user", "alice", "--scopes", "upload,read"]).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = FerryProcess::start(&live, &[]);
    for i in 0..3 {
        session_upload(&server.address, &token, &bytes_of(5000 + i, i as u64)).await;
    }
    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(path, bytes).unwrap();
    };

    // a blob damaged in the store: the backup is made all the same (the damage is the
    // store's), lists the blob and exits 1; it restores, that blob as it was
    let stored = files_under(&live.join("blobs"))[0].clone();
    let name = stored.file_name().unwrap().to_str().unwrap().to_owned();
    let intact = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, &intact[..intact.len() / 2]).unwrap(); // it lost its end
    let (code, flagged) = admin_json(&live, &["backup", backup_arg]);
    assert_eq!((code, flagged["error"].as_str()), (1, Some("backup")), "{flagged}");
    let message = flagged["message"].as_str().unwrap();
    assert!(
        message.contains("are damaged") && message.contains(&name) && message.contains("check --deep"),
        "{flagged}"
    );
    let listed: Value = serde_json::from_slice(&std::fs::read(backup.join("ferry-backup.json")).unwrap()).unwrap();
    assert_eq!(listed["damaged_blobs"], json!([name]), "{listed}");
    let (code, with_damage) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!((code, &with_damage["damaged_blobs"]), (0, &json!([name])), "{with_damage}");
    assert!(with_damage["message"].is_null(), "{with_damage}");
    std::fs::remove_dir_all(&restored).unwrap();
    std::fs::remove_dir_all(&backup).unwrap();
    std::fs::write(&stored, &intact).unwrap();
    assert_eq!(admin_json(&live, &["backup", backup_arg]).0, 0);

    // a blob damaged in the backup: the restore refuses it and removes what it copied
    let copied = files_under(&backup.join("blobs"))[0].clone();
    flip(&copied);
    let (code, refused) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!(code, 1, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("is damaged"), "{refused}");
    assert!(!restored.exists(), "{refused}");
    flip(&copied);

    // a blob missing from the backup, its manifest made to agree: the check after the copy
    // finds a row without bytes, and the restore is removed again
    let size = std::fs::metadata(&copied).unwrap().len();
    std::fs::remove_file(&copied).unwrap();
    let manifest_path = backup.join("ferry-backup.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["blobs"] = json!(manifest["blobs"].as_u64().unwrap() - 1);
    manifest["bytes"] = json!(manifest["bytes"].as_u64().unwrap() - size);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    // (into a data dir made empty beforehand: it is emptied again, not removed)
    std::fs::create_dir(&restored).unwrap();
    let (code, unchecked) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!((code, unchecked["error"].as_str()), (1, Some("check")), "{unchecked}");
    assert!(unchecked["message"].as_str().unwrap().contains("the restore was removed"), "{unchecked}");
    assert_eq!(std::fs::read_dir(&restored).unwrap().count(), 0, "{unchecked}");
    std::fs::remove_dir(&restored).unwrap();

    // an old catalog's journal where the catalog would go is refused before anything is copied
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::write(restored.join("ferry.db-wal"), b"an old journal").unwrap();
    let (code, in_the_way) = admin_json(&restored, &["restore", backup_arg]);
    assert_eq!((code, in_the_way["error"].as_str()), (1, Some("invalid_argument")), "{in_the_way}");
    assert!(in_the_way["message"].as_str().unwrap().contains("is in the way"), "{in_the_way}");
    drop(server);
}
