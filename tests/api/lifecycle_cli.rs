//! The storage lifecycle from the command line: `ferry admin files delete` and `ferry admin
//! collect`, and a collection killed (SIGKILL) at any moment never leaves a catalog row
//! without its bytes, on SQLite and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::catalog_postgres::TestDatabase;
use crate::helpers::*;
use crate::lifecycle::session_upload;

/// `ferry admin ARGS --json` on `data_dir` with `env`; (exit code, the JSON line).
fn admin(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, Value) {
    let out = admin_command(data_dir, env, args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(if code == 0 { &out.stdout } else { &out.stderr }).into_owned();
    (code, serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn admin_command(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = ferry_bin();
    cmd.arg("--data-dir").arg(data_dir).arg("admin").args(args).arg("--json").envs(env.iter().copied());
    cmd
}

/// Starts a server on `data_dir`, stores `count` library files for alice through the session
/// family, deletes them all over HTTP, and stops the server; returns the files' hashes.
async fn deleted_files(data_dir: &Path, env: &[(&str, &str)], count: usize) -> Vec<String> {
    admin(data_dir, env, &["user", "add", "alice", "--level", "uploader"]);
    let (_, token) = admin(data_dir, env, &["token", "add", "--user", "alice", "--scopes", "upload,delete"]);
    let token = token["token"].as_str().unwrap().to_owned();
    let mut server = FerryProcess::start(data_dir, env);
    let client = reqwest::Client::new();
    let mut hashes = Vec::new();
    for n in 0..count {
        let bytes = bytes_of(2000 + n, n as u64);
        let file_id = session_upload(&server.address, &token, &bytes).await;
        let deleted = client.delete(format!("{}/api/files/{file_id}", server.address)).bearer_auth(&token);
        assert_eq!(deleted.send().await.unwrap().status(), 200);
        hashes.push(sha256_hex(&bytes));
    }
    server.signal("TERM");
    assert!(server.wait_exit(20).is_some(), "the server stops");
    hashes
}

#[tokio::test]
async fn admin_deletes_a_file_and_collect_frees_it_now() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = [("FERRY_TOMBSTONE_RETENTION", "0s"), ("FERRY_GC_GRACE", "0s")];
    admin(d, &[], &["user", "add", "bob", "--level", "uploader"]);
    let (_, token) = admin(d, &[], &["token", "add", "--user", "bob", "--scopes", "upload"]);
    let mut server = FerryProcess::start(d, &[]);
    let file_id = session_upload(&server.address, token["token"].as_str().unwrap(), &bytes_of(9000, 7)).await;

    // beside a running server on SQLite the rows are done here and the bytes left to it
    let (code, deleted) = admin(d, &now, &["files", "delete", &file_id]);
    assert_eq!((code, deleted), (0, json!({"file_id": file_id, "deleted": true})));
    let (_, beside) = admin(d, &now, &["collect"]);
    assert_eq!(beside["blob_collection"], false, "{beside}");
    server.signal("TERM");
    assert!(server.wait_exit(20).is_some());

    let (code, report) = admin(d, &now, &["collect"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["blob_collection"], true);
    assert_eq!((&report["collected_blobs"], &report["freed_bytes"]), (&json!(1), &json!(9000)), "{report}");
    assert!(files_under(&d.join("blobs")).is_empty(), "the bytes left the disk");
    let (code, missing) = admin(d, &[], &["files", "delete", &file_id]);
    assert_eq!((code, &missing["error"]), (1, &json!("not_found")));
    let (_, check) = admin(d, &[], &["check"]);
    assert_eq!(check["rows_without_blobs"], json!([]), "{check}");
    assert_eq!(check["blobs_without_rows"], json!([]), "{check}");
}

/// Kills `ferry admin collect` (SIGKILL) ever later into its pass until one finishes, checking
/// after each kill that every catalog row still has its bytes; at least one kill must land in
/// the middle of the collection for the test to count.
async fn killed_collections_leave_no_row_without_bytes(data_dir: &Path, env: &[(&str, &str)]) {
    let hashes = deleted_files(data_dir, env, 200).await;
    let mut collect_env = env.to_vec();
    collect_env.extend([("FERRY_TOMBSTONE_RETENTION", "0s"), ("FERRY_GC_GRACE", "0s")]);
    let blob_files = || files_under(&data_dir.join("blobs")).len();
    let mut interrupted_mid_pass = 0;
    // from 5 ms (the pass on SQLite can be over within 60 ms of the start) to over a second
    // (S3's slower deletes)
    for attempt in 0..125u64 {
        let before = blob_files();
        if before == 0 {
            break;
        }
        let mut child = admin_command(data_dir, &collect_env, &["collect"]).stdout(Stdio::null()).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(5 + attempt * 10)).await;
        let _ = child.kill();
        child.wait().unwrap();
        let (code, check) = admin(data_dir, env, &["check"]);
        assert_eq!(code, 0, "{check}");
        assert_eq!(check["rows_without_blobs"], json!([]), "killed on attempt {attempt}: {check}");
        let after = blob_files();
        interrupted_mid_pass += usize::from(after > 0 && after < before);
    }
    assert!(interrupted_mid_pass > 0, "no kill landed during a collection");
    let (code, report) = admin(data_dir, &collect_env, &["collect"]);
    assert_eq!(code, 0, "{report}");
    let (_, check) = admin(data_dir, env, &["check"]);
    assert_eq!(check["rows_without_blobs"], json!([]), "{check}");
    assert_eq!(check["blobs_without_rows"], json!([]), "{check}");
    assert_eq!(check["pending_intents"], json!([]), "{check}");
    let left = files_under(&data_dir.join("blobs"));
    assert!(left.is_empty(), "all {} deleted files were collected: {left:?}", hashes.len());
}

#[tokio::test]
async fn a_killed_collection_leaves_no_row_without_bytes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    killed_collections_leave_no_row_without_bytes(dir.path(), &[]).await;
}

#[tokio::test]
async fn a_killed_collection_leaves_no_row_without_bytes_on_postgres() {
    let Some(database) = TestDatabase::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_collections_leave_no_row_without_bytes(dir.path(), &[("FERRY_DATABASE_URL", &database.url)]).await;
}
