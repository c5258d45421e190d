//! Signed URLs on the upload host: tampering, expiry, principals, method binding, Range
//! reads; and consistency after a real `ferry serve` is killed mid-upload.

use std::process::Command;
use std::time::Duration;

use ferry::domain::Level;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn any_changed_character_or_an_expired_url_is_403() {
    let app = spawn_app().await;
    let (a, b) = (app.user("a", Level::Uploader, "upload").await, app.user("b", Level::Uploader, "upload").await);
    let data = bytes_of(1000, 1);
    let url = app.signed_put(a.user_id, Some(1000), None);

    let other_user = url.replacen(&format!("user={}", a.user_id), &format!("user={}", b.user_id), 1);
    let other_size = url.replacen("size=1000", "size=1001", 1);
    let other_path = url.replacen("/signed/blob?", "/signed/blob/?", 1);
    let mut bad_sig = url.clone();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == '0' { '1' } else { '0' });
    let no_sig = url.split("&sig=").next().unwrap().to_owned();
    for tampered in [other_user, other_size, bad_sig, no_sig] {
        let response = app.client.put(&tampered).body(data.clone()).send().await.unwrap();
        expect_error(response, 403, "invalid_signature").await;
    }
    let response = app.client.put(&other_path).body(data.clone()).send().await.unwrap();
    assert!(matches!(response.status().as_u16(), 403 | 404), "a changed path never uploads");

    let expired = ferry::signing::targets::blob_put(
        &app.state.signer,
        &app.state.upload_url,
        a.user_id,
        None,
        None,
        ferry::clock::now_secs() - 5,
    );
    expect_error(app.client.put(&expired).body(data.clone()).send().await.unwrap(), 403, "expired_signature").await;

    // a URL signed with another server's secret
    let foreign = ferry::signing::Signer::new(b"someone else".to_vec());
    let forged = ferry::signing::targets::blob_put(
        &foreign,
        &app.state.upload_url,
        a.user_id,
        None,
        None,
        app.state.signed_url_expiry(),
    );
    expect_error(app.client.put(&forged).body(data.clone()).send().await.unwrap(), 403, "invalid_signature").await;

    assert!(app.blob_files().is_empty());
    assert_eq!(app.client.put(&url).body(data).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_signed_url_is_bound_to_its_method() {
    let app = spawn_app().await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let data = bytes_of(100, 2);
    app.client.put(app.signed_put(a.user_id, None, None)).body(data.clone()).send().await.unwrap();
    let get_url = app.signed_get(&sha256_hex(&data));
    let response = app.client.put(&get_url).body(data).send().await.unwrap();
    assert_ne!(response.status(), 200);
    let put_url = app.signed_put(a.user_id, None, None);
    assert!(app.client.get(&put_url).send().await.unwrap().status().is_client_error());
}

#[tokio::test]
async fn signed_downloads_serve_ranges() {
    let app = spawn_app().await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let data = bytes_of(1_000_000, 3);
    app.client.put(app.signed_put(a.user_id, None, None)).body(data.clone()).send().await.unwrap();
    let url = app.signed_get(&sha256_hex(&data));

    let whole = app.client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-length"], "1000000");
    assert_eq!(whole.headers()["etag"], format!("\"{}\"", sha256_hex(&data)).as_str());
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &data[..]);

    let cases: [(&str, std::ops::Range<usize>); 4] = [
        ("bytes=0-99", 0..100),
        ("bytes=500000-500009", 500_000..500_010),
        ("bytes=-10", 999_990..1_000_000),
        ("bytes=999999-", 999_999..1_000_000),
    ];
    for (range, expected) in cases {
        let part = app.client.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(part.status(), 206, "{range}");
        let content_range = part.headers()["content-range"].to_str().unwrap().to_owned();
        assert_eq!(content_range, format!("bytes {}-{}/1000000", expected.start, expected.end - 1));
        assert_eq!(part.bytes().await.unwrap().as_ref(), &data[expected], "{range}");
    }
    let unsatisfiable = app.client.get(&url).header("range", "bytes=1000000-").send().await.unwrap();
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */1000000");
    expect_error(unsatisfiable, 416, "range_not_satisfiable").await;

    let cached =
        app.client.get(&url).header("if-none-match", format!("\"{}\"", sha256_hex(&data))).send().await.unwrap();
    assert_eq!(cached.status(), 304);

    let unknown = app.signed_get(&"0".repeat(64));
    expect_error(app.client.get(&unknown).send().await.unwrap(), 404, "not_found").await;
}

/// Starts `n` slow curl uploads of distinct 8 MiB files to the server.
fn slow_uploads(server: &FerryProcess, dir: &std::path::Path, urls: &[String]) -> Vec<std::process::Child> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| {
            let file = dir.join(format!("upload-{i}"));
            std::fs::write(&file, bytes_of(8 << 20, 100 + i as u64)).unwrap();
            let _ = &server.address;
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "--limit-rate", "2M", "-T"])
                .arg(&file)
                .arg(url)
                .spawn()
                .unwrap()
        })
        .collect()
}

#[test]
fn after_kill_9_mid_upload_and_a_restart_store_and_catalog_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("FERRY_SIGNED_URL_TTL", "1h")];
    let server = FerryProcess::start(&data, &env);
    admin_json(&data, &["user", "add", "kim", "--level", "uploader"]);
    let sign = |extra: &[&str]| -> String {
        let mut args = vec!["sign-upload", "--user", "kim"];
        args.extend_from_slice(extra);
        let out = ferry_bin()
            .arg("--data-dir")
            .arg(&data)
            .env("FERRY_UPLOAD_URL", &server.address)
            .arg("admin")
            .args(&args)
            .arg("--json")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["url"].as_str().unwrap().to_owned()
    };

    // one upload that completes before the crash must survive it
    let done_file = dir.path().join("done");
    let done_bytes = bytes_of(2 << 20, 7);
    std::fs::write(&done_file, &done_bytes).unwrap();
    let done = Command::new("curl").args(["-sf", "-T"]).arg(&done_file).arg(sign(&[])).output().unwrap();
    assert!(done.status.success());

    let urls: Vec<String> = (0..4).map(|_| sign(&[])).collect();
    let mut clients = slow_uploads(&server, dir.path(), &urls);
    std::thread::sleep(Duration::from_millis(1500));
    let staging = files_under(&data.join("staging").join("requests"));
    assert!(!staging.is_empty(), "uploads were in flight when the server died");
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(5).expect("killed");
    for client in &mut clients {
        let _ = client.wait();
    }

    let restarted = FerryProcess::start(&data, &env);
    assert!(files_under(&data.join("staging").join("requests")).is_empty(), "leftover staging removed on start");
    let (code, report) = admin_json(&data, &["check"]);
    assert_eq!(code, 0);
    assert_eq!(report["blobs_without_rows"], serde_json::json!([]), "{report}");
    assert_eq!(report["rows_without_blobs"], serde_json::json!([]), "{report}");
    let stored = files_under(&data.join("blobs"));
    assert_eq!(stored.len(), 1, "only the finished upload is stored: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), done_bytes);
    drop(restarted);
}
