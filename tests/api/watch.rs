//! Watch folders: settle, ingest once, move to done/, survive a crash mid-ingest.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ferry::domain::Level;

use crate::helpers::*;

async fn wait_for_files(app: &TestApp, count: usize) -> Vec<ferry::catalog::LibraryFile> {
    for _ in 0..200 {
        let files = app.catalog().list_files(None).await.unwrap();
        if files.len() >= count {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("watch folder did not ingest {count} files in time");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn dropped_files_are_ingested_once_settled_and_moved_to_done() {
    let drop_dir = tempfile::tempdir().unwrap();
    let watched = drop_dir.path().to_path_buf();
    let app = spawn_app_with(|layer| {
        layer.insert("watch", format!("{}=alice/camera", watched.display()));
        layer.insert("watch_settle_ms", "300".into());
    })
    .await;
    app.user("alice", Level::Uploader, "upload").await;
    std::fs::write(watched.join("a.jpg"), bytes_of(5000, 1)).unwrap();
    std::fs::write(watched.join(".partial"), b"hidden files are left alone").unwrap();

    // a file still being written (every 100 ms, settle 300 ms) is ingested whole, once
    let mut slow = std::fs::File::create(watched.join("slow.mp4")).unwrap();
    for i in 0..6 {
        slow.write_all(&bytes_of(20_000, 10 + i)).unwrap();
        slow.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(slow);
    let whole: Vec<u8> = (0..6).flat_map(|i| bytes_of(20_000, 10 + i)).collect();

    let files = wait_for_files(&app, 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let files_after = app.catalog().list_files(None).await.unwrap();
    assert_eq!(files_after.len(), 2, "each file once: {files:?}");
    let slow_file = files_after.iter().find(|f| f.title == "slow.mp4").unwrap();
    assert_eq!(slow_file.sha256.as_str(), sha256_hex(&whole));
    assert_eq!(slow_file.size, 120_000);
    assert!(files_after.iter().all(|f| f.folder_key == "camera"));
    assert_eq!(names_in(&watched), vec![".partial", "done"]);
    assert_eq!(names_in(&watched.join("done")), vec!["a.jpg", "slow.mp4"]);

    // the same file dropped again (same name, size, mtime) is not recorded twice
    let again = watched.join("a.jpg");
    std::fs::copy(watched.join("done/a.jpg"), &again).unwrap();
    let mtime = std::fs::metadata(watched.join("done/a.jpg")).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(&again).unwrap().set_modified(mtime).unwrap();
    for _ in 0..100 {
        if !again.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!again.exists(), "moved away");
    assert_eq!(app.catalog().list_files(None).await.unwrap().len(), 2, "not recorded twice");
}

#[test]
fn a_crash_mid_ingest_loses_nothing_and_records_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, watched) = (dir.path().join("data"), dir.path().join("incoming"));
    std::fs::create_dir_all(&watched).unwrap();
    let watch = format!("{}=kim/cam", watched.display());
    let env = [("FERRY_WATCH", watch.as_str()), ("FERRY_WATCH_SETTLE_MS", "100")];
    admin_json(&data, &["user", "add", "kim", "--level", "uploader"]);

    // a big file, written before the server starts so it settles at once
    let big: Vec<u8> = (0..40).flat_map(|i| bytes_of(5 << 20, i)).collect();
    std::fs::write(watched.join("big.mov"), &big).unwrap();
    let mut server = FerryProcess::start(&data, &env);
    let staging = data.join("staging").join("requests");
    let mut caught = false;
    for _ in 0..400 {
        if !files_under(&staging).is_empty() {
            caught = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal("KILL");
    server.wait_exit(5).expect("killed");
    assert!(caught, "the server was killed while ingesting");

    let restarted = FerryProcess::start(&data, &env);
    let mut listed = serde_json::Value::Null;
    for _ in 0..200 {
        listed = admin_json(&data, &["files", "list"]).1;
        if listed["items"].as_array().is_some_and(|items| !items.is_empty()) && !watched.join("big.mov").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "recorded exactly once: {listed}");
    assert_eq!(items[0]["sha256"], sha256_hex(&big));
    assert_eq!(std::fs::read(watched.join("done/big.mov")).unwrap().len(), big.len());
    let (_, report) = admin_json(&data, &["check"]);
    assert_eq!(report["blobs_without_rows"], serde_json::json!([]));
    drop(restarted);
}
