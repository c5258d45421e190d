//! `examples/device_sync.py`, a client written from API.md alone, against the real binary.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

/// Runs the script; returns its one JSON line (panics with its stderr when it fails).
fn device_sync(server: &str, key: &str, folder: &Path, delete: Option<&str>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("device_sync.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--server", server, "--key", key, "--folder"]).arg(folder);
    if let Some(rel) = delete {
        cmd.args(["--delete", rel]);
    }
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "device_sync.py failed ({}): {stderr}\nstdout: {stdout}", out.status);
    assert_eq!(stdout.trim_end().lines().count(), 1, "exactly one line, got {stdout:?}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn the_example_device_client_syncs_a_folder_and_a_rerun_uploads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let server = FerryProcess::start(&data_dir, &[]);

    let (code, _) = admin_json(&data_dir, &["user", "add", "alice", "--level", "uploader"]);
    assert_eq!(code, 0);
    let (code, device) = admin_json(&data_dir, &["device", "add", "--user", "alice", "--name", "cam"]);
    assert_eq!(code, 0);
    let key = device["device_session_key"].as_str().expect("a device key").to_owned();
    assert_eq!(admin_json(&data_dir, &["volume", "add", "photos", "--user", "alice"]).0, 0);
    assert_eq!(admin_json(&data_dir, &["grant", "add", "--device", "cam", "--volume", "photos"]).0, 0);

    let folder = dir.path().join("camera");
    std::fs::create_dir_all(folder.join("trip")).unwrap();
    std::fs::write(folder.join("a.jpg"), bytes_of(1000, 1)).unwrap();
    std::fs::write(folder.join("b.jpg"), bytes_of(70_000, 2)).unwrap();
    std::fs::write(folder.join("trip").join("c.jpg"), bytes_of(3 << 20, 3)).unwrap();
    // over 16 MiB, so the multipart flow runs (three 8 MiB-chunk parts, the last one short)
    std::fs::write(folder.join("clip.mp4"), bytes_of((20 << 20) + 123, 4)).unwrap();

    let first = device_sync(&server.address, &key, &folder, Some("b.jpg"));
    assert_eq!(first, json!({"uploaded": 4, "skipped": 0, "media": 4, "deleted": 1}), "first run");

    // same folder again: every file is already held; b.jpg is created again, which revives it
    let second = device_sync(&server.address, &key, &folder, None);
    assert_eq!(second, json!({"uploaded": 0, "skipped": 4, "media": 4, "deleted": 0}), "second run");

    let (code, report) = admin_json(&data_dir, &["check"]);
    assert_eq!(code, 0);
    assert_eq!(report["blobs_without_rows"], json!([]), "{report}");
    assert_eq!(report["rows_without_blobs"], json!([]), "{report}");
    drop(server);
}
