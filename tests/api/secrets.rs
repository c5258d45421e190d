//! Secrets in what Ferry shows: a password in a remote-import URL never appears in
//! `ferry admin jobs list` (JSON or text), in the job status API, nor in the log.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::helpers::*;

const PASSWORDS: [&str; 3] = ["s3cr3t-pw", "0ther-s3cret", "th1rd%20secret"];

fn admin_text(dir: &std::path::Path, args: &[&str]) -> String {
    let out = ferry_bin().arg("--data-dir").arg(dir).arg("admin").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn assert_no_password(what: &str, text: &str) {
    for password in PASSWORDS {
        assert!(!text.contains(password), "{what} shows the password {password}: {text}");
    }
    assert!(!text.contains("th1rd secret"), "{what} shows a decoded password: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_in_remote_import_urls_are_never_shown() {
    let origin = Router::new()
        .route("/photo.jpg", get(|| async { bytes_of(2000, 1) }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND.into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, origin).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    admin_json(dir.path(), &["user", "add", "alice", "--level", "uploader"]);
    let (_, token) = admin_json(dir.path(), &["token", "add", "--user", "alice", "--scopes", "upload"]);
    let token = token["token"].as_str().unwrap().to_owned();
    let log = dir.path().join("server.log");
    let mut server = FerryProcess::start_logging(dir.path(), &[("FERRY_REMOTE_ALLOW", "127.0.0.1/32")], &log);

    let client = reqwest::Client::new();
    let urls = [
        format!("http://alice:{}@{origin_address}/photo.jpg", PASSWORDS[0]),
        format!("http://bob:{}@{origin_address}/missing", PASSWORDS[1]),
        // a closed port: the job is retried with the network error recorded
        format!("http://carol:{}@127.0.0.1:1/unreachable", PASSWORDS[2]),
    ];
    let mut jobs = Vec::new();
    for url in &urls {
        let accepted = client
            .post(format!("{}/api/upload/remote", server.address))
            .bearer_auth(&token)
            .json(&json!({"url": url, "folder_id": "web"}))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202);
        let text = accepted.text().await.unwrap();
        assert_no_password("the import answer", &text);
        jobs.push(serde_json::from_str::<Value>(&text).unwrap()["job_id"].as_str().unwrap().to_owned());
    }

    // wait until every job ran at least once
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = admin_json(dir.path(), &["jobs", "list"]).1;
        let remote: Vec<&Value> =
            listed["items"].as_array().unwrap().iter().filter(|j| j["kind"] == "remote_fetch").collect();
        if remote.len() == 3 && remote.iter().all(|j| j["status"] == "done" || j["last_error"].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = listed.to_string();
    assert_no_password("admin jobs list --json", &text);
    assert!(text.contains(&format!("http://alice:***@{origin_address}/photo.jpg")), "the user stays: {text}");
    assert!(text.contains("the remote server answered 404"), "{text}");
    assert_no_password("admin jobs list", &admin_text(dir.path(), &["jobs", "list"]));

    for job in &jobs {
        let status =
            client.get(format!("{}/api/upload/remote/{job}", server.address)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(status.status(), 200);
        assert_no_password("the job status API", &status.text().await.unwrap());
    }

    server.signal("TERM");
    server.wait_exit(10).expect("the server stops");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("remote"), "the log has the imports: {logged}");
    assert_no_password("the log", &logged);
}
