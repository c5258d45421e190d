//! Presigned multipart family (API.md §2).

use ferry::domain::Level;
use serde_json::{Value, json};

use crate::helpers::*;

const MIB: usize = 1024 * 1024;

struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

impl Client<'_> {
    async fn start(&self, file_id: &str, query: &str) -> reqwest::Response {
        let url = self.app.url(&format!("/api/users/multipart_upload_start/{file_id}?{query}"));
        self.app
            .client
            .get(url)
            .bearer_auth(&self.token)
            .header("accept", "application/json; version=1")
            .send()
            .await
            .unwrap()
    }

    async fn complete(&self, file_id: &str, body: Value) -> reqwest::Response {
        let url = self.app.url(&format!("/api/users/multipart_upload_complete/{file_id}"));
        self.app.client.post(url).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    async fn put_part(&self, url: &str, bytes: Vec<u8>) -> String {
        let response = self.app.client.put(url).body(bytes).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.headers()["etag"].to_str().unwrap().to_owned()
    }
}

async fn client<'a>(app: &'a TestApp, name: &str) -> Client<'a> {
    let user = app.user(name, Level::Uploader, "upload").await;
    Client { app, token: user.token }
}

fn parts_of(etags: &[String]) -> Value {
    json!(etags.iter().enumerate().map(|(i, e)| json!({"part_number": i + 1, "etag": e})).collect::<Vec<_>>())
}

#[tokio::test]
async fn parts_in_reverse_order_with_a_retry_complete_idempotently() {
    let app = spawn_app().await;
    let c = client(&app, "alice").await;
    let pieces = [bytes_of(5 * MIB, 1), bytes_of(5 * MIB, 2), bytes_of(1000, 3)];
    let whole: Vec<u8> = pieces.concat();

    let start: Value = c
        .start("0F8FAD5B-D9CB-469F-A165-70867728950E", "part_count=3&content_type=VIDEO/MP4")
        .await
        .json()
        .await
        .unwrap();
    let file_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert_eq!(start["id"], file_id, "UUIDs are normalised to lowercase");
    let user_id = app.catalog().user_by_name("alice").await.unwrap().unwrap().user_id;
    assert_eq!(start["key"], format!("users/{user_id}/{file_id}"));
    let urls: Vec<String> =
        start["presigned_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
    assert_eq!(urls.len(), 3);
    let upload_id = start["upload_id"].as_str().unwrap().to_owned();

    let mut etags = vec![String::new(); 3];
    for i in (0..3).rev() {
        etags[i] = c.put_part(&urls[i], pieces[i].clone()).await;
    }
    assert_eq!(c.put_part(&urls[1], pieces[1].clone()).await, etags[1], "a retried part keeps its ETag");
    assert!(etags.iter().all(|e| e.starts_with('"') && e.ends_with('"')));

    let body = json!({"upload_id": upload_id, "parts": parts_of(&etags)});
    let done: Value = c.complete(file_id, body.clone()).await.json().await.unwrap();
    assert_eq!(done["id"], file_id);
    assert_eq!(done["filesize"], whole.len());
    assert_eq!(done["checksum"], sha256_hex(&whole));
    assert!(done["etag"].as_str().unwrap().ends_with("-3\""), "{}", done["etag"]);
    let again: Value = c.complete(file_id, body).await.json().await.unwrap();
    assert_eq!(again, done, "repeating complete returns the same answer");

    let fetched = app.client.get(done["location"].as_str().unwrap()).bearer_auth(&c.token).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "video/mp4");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &whole[..]);
    assert!(app.upload_staging_files().is_empty(), "parts freed");

    let restart = c.start(file_id, "part_count=3").await;
    expect_error(restart, 409, "conflict").await;
}

#[tokio::test]
async fn validation_errors_are_json_400s() {
    let app = spawn_app().await;
    let c = client(&app, "alice").await;
    for query in ["part_count=0", "part_count=21", "part_count=abc", "part_count=1.5", "", "part_count=-1"] {
        expect_error(c.start("clip", query).await, 400, "invalid_part_count").await;
    }
    expect_error(c.start("clip", "part_count=2&content_type=text/html").await, 400, "invalid_content_type").await;
    for bad in ["a.b", "x%20y", &"a".repeat(65)] {
        expect_error(c.start(bad, "part_count=2").await, 400, "invalid_file_id").await;
    }
    let ok: Value = c.start("clip_1-A", "part_count=2&content_type=image/HEIC").await.json().await.unwrap();
    assert_eq!(ok["presigned_urls"].as_array().unwrap().len(), 2);
    let malformed = app
        .client
        .post(app.url("/api/users/multipart_upload_complete/clip_1-A"))
        .bearer_auth(&c.token)
        .body("{oops")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, "invalid_json").await;
}

#[tokio::test]
async fn wrong_missing_and_small_parts_are_refused() {
    let app = spawn_app().await;
    let c = client(&app, "alice").await;
    let start: Value = c.start("video", "part_count=3").await.json().await.unwrap();
    let upload_id = start["upload_id"].as_str().unwrap().to_owned();
    let urls: Vec<&str> = start["presigned_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    let e1 = c.put_part(urls[0], bytes_of(5 * MIB, 1)).await;
    let e2 = c.put_part(urls[1], bytes_of(MIB, 2)).await; // too small for a middle part
    let body = |parts: Value| json!({"upload_id": upload_id, "parts": parts});

    let missing = c.complete("video", body(parts_of(&[e1.clone(), e2.clone(), "\"abc\"".into()]))).await;
    expect_error(missing, 400, "missing_part").await;
    let e3 = c.put_part(urls[2], bytes_of(10, 3)).await;
    let wrong = c.complete("video", body(parts_of(&[e1.clone(), "\"0123\"".into(), e3.clone()]))).await;
    expect_error(wrong, 400, "etag_mismatch").await;
    let gap = c.complete("video", body(json!([{"part_number": 1, "etag": e1}, {"part_number": 3, "etag": e3}]))).await;
    expect_error(gap, 400, "invalid_parts").await;
    let small = c.complete("video", body(parts_of(&[e1.clone(), e2.clone(), e3.clone()]))).await;
    expect_error(small, 400, "part_too_small").await;

    // the part can be sent again, bigger, and the upload completes
    let e2 = c.put_part(urls[1], bytes_of(5 * MIB, 4)).await;
    assert_eq!(c.complete("video", body(parts_of(&[e1, e2, e3]))).await.status(), 200);
}

#[tokio::test]
async fn restart_resumes_abort_frees_and_expiry_cleans() {
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "1s".into());
    })
    .await;
    let c = client(&app, "alice").await;
    let first: Value = c.start("movie", "part_count=2").await.json().await.unwrap();
    let second: Value = c.start("movie", "part_count=2").await.json().await.unwrap();
    assert_eq!(first["upload_id"], second["upload_id"], "a repeated start resumes the same upload");
    expect_error(c.start("movie", "part_count=3").await, 409, "conflict").await;

    c.put_part(second["presigned_urls"][0].as_str().unwrap(), bytes_of(1000, 1)).await;
    let staging = || app.upload_staging_files().len();
    assert_eq!(staging(), 1);
    let abort_url =
        |id: &Value| app.url(&format!("/api/users/multipart_upload/movie?upload_id={}", id.as_str().unwrap()));
    let aborted = app.client.delete(abort_url(&first["upload_id"])).bearer_auth(&c.token).send().await.unwrap();
    assert_eq!(aborted.status(), 204);
    assert_eq!(staging(), 0, "abort frees the parts");
    let again = app.client.delete(abort_url(&first["upload_id"])).bearer_auth(&c.token).send().await.unwrap();
    expect_error(again, 404, "no_such_upload").await;

    let third: Value = c.start("movie", "part_count=2").await.json().await.unwrap();
    assert_ne!(third["upload_id"], first["upload_id"]);
    c.put_part(third["presigned_urls"][1].as_str().unwrap(), bytes_of(1000, 2)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.state.jobs.run_until_idle().await.unwrap();
    assert_eq!(staging(), 0, "expired parts are removed");
    let late = c.complete("movie", json!({"upload_id": third["upload_id"], "parts": []})).await;
    expect_error(late, 404, "no_such_upload").await;
}

#[tokio::test]
async fn another_users_file_is_invisible_and_the_table_refuses_by_scope_and_level() {
    let app = spawn_app().await;
    let alice = client(&app, "alice").await;
    let bob = client(&app, "bob").await;
    let start: Value = alice.start("shared-name", "part_count=1").await.json().await.unwrap();
    let etag = alice.put_part(start["presigned_urls"][0].as_str().unwrap(), bytes_of(100, 1)).await;
    let body = json!({"upload_id": start["upload_id"], "parts": [{"part_number": 1, "etag": etag}]});
    expect_error(bob.complete("shared-name", body.clone()).await, 404, "no_such_upload").await;
    let done: Value = alice.complete("shared-name", body).await.json().await.unwrap();
    let peek = app.client.get(done["location"].as_str().unwrap()).bearer_auth(&bob.token).send().await.unwrap();
    expect_error(peek, 404, "not_found").await;
    let bobs_own: Value = bob.start("shared-name", "part_count=1").await.json().await.unwrap();
    assert_ne!(bobs_own["upload_id"], start["upload_id"], "file ids are per user");

    expect_error(
        app.client.get(app.url("/api/users/multipart_upload_start/x?part_count=1")).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let reader = app.user("reader", Level::Uploader, "read").await;
    let no_scope = app
        .client
        .get(app.url("/api/users/multipart_upload_start/x?part_count=1"))
        .bearer_auth(&reader.token)
        .send()
        .await
        .unwrap();
    expect_error(no_scope, 403, "forbidden").await;
    let viewer = app.user("viewer", Level::Viewer, "upload").await;
    let low = app
        .client
        .get(app.url("/api/users/multipart_upload_start/x?part_count=1"))
        .bearer_auth(&viewer.token)
        .send()
        .await
        .unwrap();
    expect_error(low, 403, "forbidden").await;
}

#[tokio::test]
async fn a_single_put_url_stores_a_file_under_its_id() {
    let app = spawn_app().await;
    let c = client(&app, "alice").await;
    let info: Value = app
        .client
        .get(app.url("/api/users/uploads/photo1"))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], "photo1");
    assert!(info.get("type").is_none(), "no type before the file exists");
    let data = bytes_of(3000, 9);
    let put = app
        .client
        .put(info["upload_url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let info: Value = app
        .client
        .get(app.url("/api/users/uploads/photo1"))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["type"], "image/png");
    assert_eq!(info["size"], 3000);
    let fetched = app.client.get(app.url("/api/users/files/photo1")).bearer_auth(&c.token).send().await.unwrap();
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &data[..]);
    let tampered = info["upload_url"].as_str().unwrap().replace("file=photo1", "file=photo2");
    expect_error(app.client.put(tampered).body(data).send().await.unwrap(), 403, "invalid_signature").await;
}

#[tokio::test]
async fn a_100_mib_video_in_20_parallel_parts() {
    let app = spawn_app().await;
    let c = client(&app, "alice").await;
    let video = bytes_of(100 * MIB, 42);
    let start: Value = c.start("holiday-video", "part_count=20&content_type=video/mp4").await.json().await.unwrap();
    let urls: Vec<String> =
        start["presigned_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
    let puts = urls.iter().zip(video.chunks(5 * MIB)).map(|(url, chunk)| c.put_part(url, chunk.to_vec()));
    let etags: Vec<String> = futures_util::future::join_all(puts).await;
    let done: Value = c
        .complete("holiday-video", json!({"upload_id": start["upload_id"], "parts": parts_of(&etags)}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["checksum"], sha256_hex(&video));
    assert_eq!(done["filesize"], 100 * MIB);
}

#[test]
fn a_python_client_from_api_md_uploads_100_mib_in_20_parallel_parts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = FerryProcess::start(&data, &[]);
    admin_json(&data, &["user", "add", "alice", "--level", "uploader"]);
    let token = admin_json(&data, &["token", "add", "--user", "alice", "--scopes", "upload"]).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let video = dir.path().join("holiday.mp4");
    std::fs::write(&video, bytes_of(100 * MIB, 7)).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/multipart_upload.py"))
        .args(["--server", &server.address, "--token", &token, "--parts", "20"])
        .arg("--file")
        .arg(&video)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["checksum"], sha256_hex(&bytes_of(100 * MIB, 7)));
    assert!(answer["etag"].as_str().unwrap().ends_with("-20\""));
}
