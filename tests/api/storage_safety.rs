//! What may never happen to stored files: a data dir pointed at another catalog loses nothing,
//! bytes the catalog does not know are only removed on request, and an interrupted commit or
//! collection is finished from its intent (never a row without bytes).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry::blob_store::BlobStore;
use std::sync::Arc;

use ferry::catalog::{BlobStep, BoxError, ByteDeleter, Collection};
use ferry::domain::{Level, Sha256Hex};
use ferry::ingest::Expectation;
use ferry::jobs::consistency;
use serde_json::{Value, json};

use crate::helpers::*;

/// `ferry --data-dir DATA [--database-url URL] ARGS`.
fn ferry_on(data: &Path, database: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = ferry_bin();
    cmd.arg("--data-dir").arg(data);
    if let Some(url) = database {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(args).env("FERRY_LOG", "warn").output().unwrap()
}

fn upload_through(server: &FerryProcess, data: &Path, user: &str, bytes: &[u8], scratch: &Path) -> Value {
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(data)
        .env("FERRY_UPLOAD_URL", &server.address)
        .args(["admin", "sign-upload", "--user", user, "--json"])
        .output()
        .unwrap();
    let signed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = scratch.join("upload.bin");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-T"])
        .arg(&file)
        .arg(signed["url"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn download(server: &FerryProcess, data: &Path, sha256: &str) -> Vec<u8> {
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(data)
        .env("FERRY_UPLOAD_URL", &server.address)
        .args(["admin", "sign-download", sha256, "--json"])
        .output()
        .unwrap();
    let signed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = Command::new("curl").args(["-sS", "--fail-with-body"]).arg(signed["url"].as_str().unwrap()).output();
    got.unwrap().stdout
}

#[test]
fn a_data_dir_pointed_at_another_catalog_is_refused_and_keeps_every_blob() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let other = format!("sqlite://{}", dir.path().join("other.db").display());
    let bytes = bytes_of(300_000, 9);
    let mut server = FerryProcess::start(&data, &[]);
    admin_json(&data, &["user", "add", "kim", "--level", "uploader"]);
    let stored = upload_through(&server, &data, "kim", &bytes, dir.path());
    server.signal("TERM");
    server.wait_exit(10).expect("stops");

    // the README's "switch to PostgreSQL" mistake, with a second SQLite catalog
    let refused = ferry_on(&data, Some(&other), &["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("belongs to another catalog") && said.contains("migrate-store"), "{said}");
    let listed = ferry_on(&data, Some(&other), &["admin", "user", "list", "--json"]);
    assert_eq!(listed.status.code(), Some(1), "admin commands are refused too");
    assert_eq!(files_under(&data.join("blobs")).len(), 1, "the blob is still there");

    // back on its own catalog everything is as it was
    let server = FerryProcess::start(&data, &[]);
    assert_eq!(download(&server, &data, stored["sha256"].as_str().unwrap()), bytes);
    let (code, report) = admin_json(&data, &["check"]);
    assert_eq!((code, &report["blobs_without_rows"], &report["rows_without_blobs"]), (0, &json!([]), &json!([])));
    drop(server);

    // a store from before stores were bound holds blobs a fresh catalog knows nothing about
    std::fs::remove_file(data.join("ferry-store-id")).unwrap();
    let unbind = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"delete from settings where key='store_id'\"); c.commit()";
    let status = Command::new("python3").args(["-c", unbind]).arg(data.join("ferry.db")).status().unwrap();
    assert!(status.success());
    let refused = ferry_on(&data, Some(&other), &["serve", "--listen", "127.0.0.1:0"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("knows nothing about"), "{said}");
    assert_eq!(files_under(&data.join("blobs")).len(), 1);
    // its own catalog binds it again
    let server = FerryProcess::start(&data, &[]);
    assert_eq!(download(&server, &data, stored["sha256"].as_str().unwrap()), bytes);
}

#[test]
fn bytes_the_catalog_does_not_know_survive_a_restart_and_go_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = FerryProcess::start(&data, &[]);
    drop(server);
    let stranger = bytes_of(1000, 4);
    let hash = sha256_hex(&stranger);
    let path = data.join("blobs").join("sha256").join(&hash[0..2]).join(&hash[2..4]);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join(&hash), &stranger).unwrap();

    let server = FerryProcess::start(&data, &[]);
    assert!(path.join(&hash).exists(), "the start-up sweep leaves bytes it knows nothing about");
    let (_, report) = admin_json(&data, &["check"]);
    assert_eq!(report["blobs_without_rows"], json!([hash]), "{report}");
    // beside the running server an upload of the same content could adopt them at any moment
    let (code, kept) = admin_json(&data, &["check", "--repair"]);
    assert_eq!((code, &kept["removed"], &kept["blobs_without_rows"]), (0, &json!([]), &json!([hash])), "{kept}");
    assert!(path.join(&hash).exists());
    drop(server);
    let (code, repaired) = admin_json(&data, &["check", "--repair"]);
    assert_eq!(code, 0, "{repaired}");
    assert_eq!(repaired["removed"], json!([hash]), "{repaired}");
    assert!(!path.join(&hash).exists());
    let (_, report) = admin_json(&data, &["check"]);
    assert_eq!(report["blobs_without_rows"], json!([]));
}

fn failing_after(
    store: std::sync::Arc<dyn BlobStore>,
    staged: ferry::blob_store::Staged,
    sha256: Sha256Hex,
) -> BlobStep {
    Box::new(move || {
        Box::pin(async move {
            store.commit(&staged, &sha256).await?;
            Err::<(), BoxError>("the process died between placing the bytes and recording them".into())
        })
    })
}

#[tokio::test]
async fn an_interrupted_commit_is_undone_by_the_intent_sweep() {
    let app = spawn_app().await;
    let user = app.user("kim", Level::Uploader, "upload").await;
    let bytes = bytes_of(70_000, 11);
    let body = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes.clone())) });
    let received = app.state.ingest.receive(Box::pin(body), &Expectation::default()).await.unwrap();
    let sha256 = received.blob.sha256.clone();
    let step = failing_after(app.state.store.clone(), received.staged().clone(), sha256.clone());
    assert!(app.catalog().commit_blob(&received.blob, Some(user.user_id), step).await.is_err());

    assert_eq!(app.state.store.size_of(&sha256).await.unwrap(), Some(70_000), "the bytes were placed");
    assert!(app.catalog().blob(&sha256).await.unwrap().is_none(), "but never recorded");
    assert_eq!(app.catalog().pending_intents().await.unwrap(), vec![sha256.clone()]);
    let scope = consistency::CheckScope { deep: false, staging_age: Duration::from_secs(3600) };
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.blobs_without_rows.is_empty(), "named by an intent, not unknown: {report:?}");

    let swept = consistency::sweep_intents(app.catalog().as_ref(), app.state.store.clone(), Duration::ZERO).await;
    assert_eq!(swept.unwrap(), 1);
    assert_eq!(app.state.store.size_of(&sha256).await.unwrap(), None, "the unrecorded bytes are gone");
    assert!(app.catalog().pending_intents().await.unwrap().is_empty());
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.blobs_without_rows.is_empty() && report.rows_without_blobs.is_empty(), "{report:?}");
}

#[tokio::test]
async fn an_interrupted_collection_never_leaves_a_row_without_bytes() {
    let app = spawn_app().await;
    let user = app.user("kim", Level::Uploader, "upload").await;
    let bytes = bytes_of(40_000, 12);
    let body = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes.clone())) });
    let ingested = app.state.ingest.ingest(Box::pin(body), &Expectation::default(), user.user_id).await.unwrap();
    let sha256 = ingested.blob.sha256.clone();
    app.catalog().release_hold(user.user_id, &sha256).await.unwrap();

    // the bytes cannot be deleted now (a crash would leave the same state)
    let failing: ByteDeleter = Arc::new(|_| Box::pin(async { Err::<(), BoxError>("the disk went away".into()) }));
    let collected = app.catalog().collect_blob(ferry::clock::now_ms(), failing).await.unwrap();
    assert_eq!(collected, Collection::Collected { sha256: sha256.clone(), size: 40_000 });
    assert!(app.catalog().blob(&sha256).await.unwrap().is_none(), "the rows went first");
    assert_eq!(app.state.store.size_of(&sha256).await.unwrap(), Some(40_000), "the bytes stayed");
    assert_eq!(app.catalog().pending_intents().await.unwrap(), vec![sha256.clone()]);

    let swept = consistency::sweep_intents(app.catalog().as_ref(), app.state.store.clone(), Duration::ZERO).await;
    assert_eq!(swept.unwrap(), 1);
    assert_eq!(app.state.store.size_of(&sha256).await.unwrap(), None);
    assert!(app.catalog().pending_intents().await.unwrap().is_empty());
}

/// Checkpoints the SQLite catalog at `path` and truncates its write-ahead log to nothing.
fn empty_write_ahead_log(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("pragma wal_checkpoint(truncate)", [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint ran");
    assert_eq!(std::fs::metadata(path.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0), 0);
}

/// Fills the filesystem of `dir` with one file until it refuses a write; returns the file.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).and_then(|()| file.sync_all()).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).and_then(|()| file.sync_all()).is_ok() {}
    path
}

/// A size-limited filesystem (`.ci/run` mounts a tmpfs and names it in FERRY_TEST_SMALL_FS).
fn small_filesystem() -> Option<tempfile::TempDir> {
    let Ok(root) = std::env::var("FERRY_TEST_SMALL_FS") else {
        eprintln!("disk-full test not run: set FERRY_TEST_SMALL_FS to a small filesystem (bash .ci/run mounts one)");
        return None;
    };
    Some(tempfile::tempdir_in(root).unwrap())
}

#[tokio::test]
async fn a_full_disk_answers_507_keeps_nothing_and_reads_go_on() {
    let Some(small) = small_filesystem() else { return };
    let elsewhere = tempfile::tempdir().unwrap();
    // the blobs on the small filesystem, the catalog elsewhere
    let data = small.path().join("data");
    let catalog_url = format!("sqlite://{}", elsewhere.path().join("ferry.db").display());
    // a disk that fills up is the local store's (on S3 the bucket's server answers for it)
    let on_local_disk = |layer: &mut ferry::config::Layer| layer.retain(|key, _| !key.starts_with("s3_"));
    let app = spawn_app_with(|layer| {
        on_local_disk(layer);
        layer.insert("data_dir", data.display().to_string());
        layer.insert("database_url", catalog_url);
    })
    .await;
    let user = app.user("kim", Level::Uploader, "upload").await;
    let kept = bytes_of(100_000, 1);
    let stored = app.client.put(app.signed_put(user.user_id, None, None)).body(kept.clone()).send().await.unwrap();
    assert_eq!(stored.status(), 200);
    // larger than the whole filesystem: the staging write runs out of space
    let big = bytes_of(40 * 1024 * 1024, 3);
    let refused = app.client.put(app.signed_put(user.user_id, None, None)).body(big.clone()).send().await.unwrap();
    expect_error(refused, 507, "insufficient_storage").await;
    assert!(files_under(&data.join("staging").join("requests")).is_empty(), "the partial staging file is gone");
    let big_hash = Sha256Hex::parse(&sha256_hex(&big)).unwrap();
    assert!(app.catalog().blob(&big_hash).await.unwrap().is_none(), "nothing recorded");
    let read = app.client.get(app.signed_get(&sha256_hex(&kept))).send().await.unwrap();
    assert_eq!(read.bytes().await.unwrap().as_ref(), &kept[..], "reads go on");
    drop(app);

    // the catalog on the small filesystem, full; the blobs elsewhere
    let catalog_url = format!("sqlite://{}", small.path().join("ferry.db").display());
    let data = elsewhere.path().join("data");
    let app = spawn_app_with(|layer| {
        on_local_disk(layer);
        layer.insert("data_dir", data.display().to_string());
        layer.insert("database_url", catalog_url);
    })
    .await;
    let user = app.user("kim", Level::Uploader, "upload").await;
    // SQLite reuses its write-ahead log's pages after a checkpoint, so a full disk only shows
    // once the log has to grow: empty it first, as a quiet server's checkpoint would
    empty_write_ahead_log(&small.path().join("ferry.db"));
    let filler = fill(small.path());
    let refused = app.client.put(app.signed_put(user.user_id, None, None)).body(kept.clone()).send().await.unwrap();
    expect_error(refused, 507, "insufficient_storage").await;
    let kept_hash = Sha256Hex::parse(&sha256_hex(&kept)).unwrap();
    std::fs::remove_file(&filler).unwrap();
    assert!(app.catalog().blob(&kept_hash).await.unwrap().is_none(), "nothing recorded");
    // bytes placed before the catalog refused are named by an intent, and swept
    let pending = app.catalog().pending_intents().await.unwrap();
    let swept = consistency::sweep_intents(app.catalog().as_ref(), app.state.store.clone(), Duration::ZERO).await;
    let left = files_under(&data.join("blobs"));
    assert!(left.is_empty(), "no bytes left without their row: {left:?} {pending:?} {swept:?}");
    let again = app.client.put(app.signed_put(user.user_id, None, None)).body(kept.clone()).send().await.unwrap();
    assert_eq!(again.status(), 200, "with room again, uploads work without a restart");
}
