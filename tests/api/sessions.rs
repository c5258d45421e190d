//! Upload-session family (API.md §3): registration, direct and token uploads, limits under
//! concurrency, finish, expiry.

use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

struct Sessions<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Sessions<'a> {
    async fn new(app: &'a TestApp, name: &str) -> Self {
        Sessions { app, token: app.user(name, Level::Uploader, "upload").await.token }
    }

    async fn register(&self, body: Value) -> Value {
        let response = self
            .app
            .client
            .post(self.app.url("/api/upload/id"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn post_file(&self, url: &str, form: Form, with_token: bool) -> reqwest::Response {
        let request = self.app.client.post(url).multipart(form);
        let request = if with_token { request.bearer_auth(&self.token) } else { request };
        request.send().await.unwrap()
    }
}

fn file_form(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()).mime_str("image/jpeg").unwrap())
}

/// A session-family error: its status, code, and the family's `status`/`user_message`.
async fn expect_session_error(response: reqwest::Response, status: u16, code: &str) {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["user_message"].is_string(), "{body}");
}

#[tokio::test]
async fn registration_from_a_form_or_json_answers_the_documented_shape() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let form = app
        .client
        .post(app.url("/api/upload/id"))
        .bearer_auth(&s.token)
        .form(&[("folder_id", "holiday"), ("max_files", "3"), ("autofinish", "0"), ("file_extensions", "JPG,png")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let answer: Value = form.json().await.unwrap();
    let ulid = answer["ulid"].as_str().unwrap();
    assert_eq!(ulid.len(), 26);
    let expires_in = answer["expires_in"].as_i64().unwrap();
    assert_eq!(expires_in, 86_400);
    assert!((answer["expires"].as_i64().unwrap() - ferry::clock::now_secs() - expires_in).abs() <= 2);
    assert!(answer["url_upload_direct"].as_str().unwrap().starts_with(&app.state.upload_url));
    assert_eq!(answer["api"]["rel"], format!("upload/id/{ulid}"));
    assert_eq!(answer["api"]["upload"], format!("{}/api/file/{ulid}", app.address));
    assert_eq!(answer["api"]["finish"], format!("{}/api/upload/id/{ulid}", app.address));

    let json_numbers = s.register(json!({"folder_id": 2026, "autofinish": true, "max_filesize": 1000})).await;
    assert!(json_numbers["ulid"].is_string());
    let without_prefix = app
        .client
        .post(app.url("/upload/id"))
        .bearer_auth(&s.token)
        .json(&json!({"folder_id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_prefix.status(), 200, "also reachable without /api");

    let register = |body: Value| app.client.post(app.url("/api/upload/id")).bearer_auth(&s.token).json(&body).send();
    expect_session_error(register(json!({})).await.unwrap(), 400, "missing_folder_id").await;
    expect_session_error(register(json!({"folder_id": "a/b"})).await.unwrap(), 400, "invalid_folder_id").await;
    expect_session_error(
        register(json!({"folder_id": "a", "autofinish": "maybe"})).await.unwrap(),
        400,
        "invalid_option",
    )
    .await;
    expect_session_error(register(json!({"folder_id": "a", "max_files": -2})).await.unwrap(), 400, "invalid_option")
        .await;
    let anonymous = app.client.post(app.url("/api/upload/id")).json(&json!({"folder_id": "a"})).send().await.unwrap();
    expect_session_error(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_direct_url_needs_no_credential_and_refuses_tampering() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let session = s.register(json!({"folder_id": "cam", "autofinish": 0})).await;
    let direct = session["url_upload_direct"].as_str().unwrap();
    let data = bytes_of(40_000, 1);
    let response = s.post_file(direct, file_form("IMG_1.JPG", data.clone()), false).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["title"], "IMG_1.JPG");
    assert_eq!(answer["size"], 40_000);
    assert_eq!(answer["sha256"], sha256_hex(&data));
    assert!(answer["file_id"].is_string());

    let tampered = direct.replacen("user=", "user=9", 1);
    expect_session_error(
        s.post_file(&tampered, file_form("x.jpg", data.clone()), false).await,
        403,
        "invalid_signature",
    )
    .await;
    let token_route = session["api"]["upload"].as_str().unwrap();
    expect_session_error(s.post_file(token_route, file_form("x.jpg", data), false).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn fields_after_the_file_and_hide_response() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let session = s.register(json!({"folder_id": "inbox", "autofinish": 0, "hide_response": 1})).await;
    let form = file_form("a.jpg", bytes_of(1000, 2)).text("folder_id", "sorted").text("title", "Sunset");
    let answer: Value = s.post_file(session["api"]["upload"].as_str().unwrap(), form, true).await.json().await.unwrap();
    assert_eq!(answer["title"], "Sunset", "a title sent after the file applies");
    assert!(answer.get("file_id").is_none(), "hide_response omits file_id");
    let files = app.catalog().finish_session(session["ulid"].as_str().unwrap()).await.unwrap();
    assert_eq!(files[0].folder_key, "sorted", "a folder_id sent after the file applies");
}

#[tokio::test]
async fn limits_refuse_with_413_and_415_and_keep_nothing() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let session = s
        .register(json!({"folder_id": "f", "autofinish": 0, "max_filesize": 50_000, "max_files": 2, "max_size": 70_000, "file_extensions": "jpg,png"}))
        .await;
    let url = session["api"]["upload"].as_str().unwrap();
    expect_session_error(s.post_file(url, file_form("big.jpg", bytes_of(60_000, 3)), true).await, 413, "too_large")
        .await;
    expect_session_error(
        s.post_file(url, file_form("doc.pdf", bytes_of(10, 4)), true).await,
        415,
        "extension_not_allowed",
    )
    .await;
    expect_session_error(s.post_file(url, Form::new().text("title", "no file"), true).await, 400, "missing_file").await;
    assert!(app.blob_files().is_empty() && app.staging_files().is_empty(), "refused uploads keep nothing");

    assert_eq!(s.post_file(url, file_form("a.JPG", bytes_of(40_000, 5)), true).await.status(), 200);
    expect_session_error(s.post_file(url, file_form("b.png", bytes_of(40_000, 6)), true).await, 413, "too_large").await;
    assert_eq!(s.post_file(url, file_form("c.png", bytes_of(30_000, 7)), true).await.status(), 200);
    expect_session_error(s.post_file(url, file_form("d.png", bytes_of(10, 8)), true).await, 413, "too_many_files")
        .await;
    assert_eq!(app.blob_files().len(), 2);
}

#[tokio::test]
async fn limits_hold_under_concurrent_uploads() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let by_count = s.register(json!({"folder_id": "f", "autofinish": 0, "max_files": 3})).await;
    let by_size = s.register(json!({"folder_id": "f", "autofinish": 0, "max_size": 250_000})).await;
    for (session, expected) in [(&by_count, 3), (&by_size, 2)] {
        let url = session["api"]["upload"].as_str().unwrap().to_owned();
        let uploads = (0..8).map(|i| s.post_file(&url, file_form("x.jpg", bytes_of(100_000, 100 + i)), true));
        let statuses: Vec<u16> =
            futures_util::future::join_all(uploads).await.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), expected, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 413), "{statuses:?}");
        let files = app.catalog().finish_session(session["ulid"].as_str().unwrap()).await.unwrap();
        assert_eq!(files.len(), expected);
    }
}

#[tokio::test]
async fn finish_lists_files_is_repeatable_and_closes_the_session() {
    let app = spawn_app().await;
    let s = Sessions::new(&app, "alice").await;
    let session = s.register(json!({"folder_id": "f", "autofinish": "false"})).await;
    let ulid = session["ulid"].as_str().unwrap();
    let url = session["api"]["upload"].as_str().unwrap();
    let data = bytes_of(5000, 9);
    s.post_file(url, file_form("one.jpg", data.clone()), true).await;
    s.post_file(url, file_form("two.jpg", bytes_of(10, 10)), true).await;

    let finish =
        app.client.delete(session["api"]["finish"].as_str().unwrap()).bearer_auth(&s.token).send().await.unwrap();
    let finished: Value = finish.json().await.unwrap();
    assert_eq!(finished["status"], "finished");
    let files = finished["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["title"], "one.jpg");
    let fetched =
        app.client.get(files[0]["urls"]["file"].as_str().unwrap()).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &data[..]);

    let again =
        app.client.delete(app.url(&format!("/api/upload/id?ulid={ulid}"))).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap(), finished, "finish is repeatable");
    expect_session_error(
        s.post_file(url, file_form("late.jpg", bytes_of(10, 11)), true).await,
        410,
        "session_finished",
    )
    .await;

    let other = Sessions::new(&app, "bob").await;
    let theirs =
        app.client.delete(session["api"]["finish"].as_str().unwrap()).bearer_auth(&other.token).send().await.unwrap();
    expect_session_error(theirs, 404, "no_such_session").await;
    let peek =
        app.client.get(files[0]["urls"]["file"].as_str().unwrap()).bearer_auth(&other.token).send().await.unwrap();
    assert_eq!(peek.status(), 404);
}

#[tokio::test]
async fn autofinish_finishes_after_the_first_file_and_sessions_expire() {
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "1s".into());
    })
    .await;
    let s = Sessions::new(&app, "alice").await;
    let auto = s.register(json!({"folder_id": "f"})).await;
    let url = auto["url_upload_direct"].as_str().unwrap();
    assert_eq!(s.post_file(url, file_form("a.jpg", bytes_of(10, 12)), false).await.status(), 200);
    expect_session_error(s.post_file(url, file_form("b.jpg", bytes_of(10, 13)), false).await, 410, "session_finished")
        .await;

    let later = s.register(json!({"folder_id": "f", "autofinish": 0})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let late = s.post_file(later["api"]["upload"].as_str().unwrap(), file_form("c.jpg", bytes_of(10, 14)), true).await;
    expect_session_error(late, 410, "session_expired").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    app.state.jobs.run_until_idle().await.unwrap();
    assert!(
        app.catalog().session(later["ulid"].as_str().unwrap()).await.unwrap().is_none(),
        "expired sessions are cleaned up"
    );
}

#[test]
fn a_bash_batch_upload_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = FerryProcess::start(&data, &[]);
    admin_json(&data, &["user", "add", "alice", "--level", "uploader"]);
    let token = admin_json(&data, &["token", "add", "--user", "alice", "--scopes", "upload"]).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for i in 0..3 {
        std::fs::write(photos.join(format!("p{i}.jpg")), bytes_of(20_000, i)).unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/session_batch.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(&server.address)
        .arg(&token)
        .arg("trip")
        .args((0..3).map(|i| photos.join(format!("p{i}.jpg"))))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let finished: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(finished["status"], "finished");
    assert_eq!(finished["files"].as_array().unwrap().len(), 3);
}
