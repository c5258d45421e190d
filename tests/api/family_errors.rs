//! Error responses in each family's shape (API.md Conventions), whoever built them: a
//! handler (keeping its headers, e.g. a 416's `Content-Range`), the router (405) or one of
//! axum's own extractors.

use ferry::domain::Level;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

async fn expect_gallery_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["success"], false, "gallery family shape: {body}");
    body
}

async fn expect_session_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["status"], "error", "session family shape: {body}");
    assert_eq!(body["user_message"], body["message"], "session family shape: {body}");
    body
}

fn unsatisfiable(response: &reqwest::Response, size: usize) {
    let range = response.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(range.as_deref(), Some(format!("bytes */{size}").as_str()), "{:?}", response.headers());
}

#[tokio::test]
async fn a_416_keeps_its_content_range_in_the_gallery_and_session_shapes() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&alice, "cam").await;
    let form = Form::new().text("name", "ring").part("event", Part::bytes(bytes_of(1000, 1)));
    let uploaded =
        app.client.post(app.url("/api/gallery/cam/upload")).bearer_auth(&alice.token).multipart(form).send().await;
    let id = uploaded.unwrap().json::<Value>().await.unwrap()["eventId"].as_str().unwrap().to_owned();
    let event_file = app
        .client
        .get(app.url(&format!("/api/gallery/cam/events/{id}/file")))
        .bearer_auth(&alice.token)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    unsatisfiable(&event_file, 1000);
    expect_gallery_error(event_file, 416, "range_not_satisfiable").await;

    let session = app
        .client
        .post(app.url("/api/upload/id"))
        .bearer_auth(&alice.token)
        .json(&json!({"folder_id": "f"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let form = Form::new().part("file", Part::bytes(bytes_of(700, 2)).file_name("a.bin"));
    let stored = app.client.post(session["api"]["upload"].as_str().unwrap()).bearer_auth(&alice.token).multipart(form);
    let file_id = stored.send().await.unwrap().json::<Value>().await.unwrap()["file_id"].as_str().unwrap().to_owned();
    let library_file = app
        .client
        .get(app.url(&format!("/api/files/{file_id}")))
        .bearer_auth(&alice.token)
        .header("range", "bytes=700-800")
        .send()
        .await
        .unwrap();
    unsatisfiable(&library_file, 700);
    expect_session_error(library_file, 416, "range_not_satisfiable").await;
}

#[tokio::test]
async fn a_405_comes_in_the_family_shape() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let send = |method: Method, path: &str| app.client.request(method, app.url(path)).bearer_auth(&alice.token).send();
    for (method, path) in [
        (Method::PUT, "/api/gallery/cam/events"),
        (Method::GET, "/api/gallery/cam/upload"),
        (Method::DELETE, "/api/gallery/cam/pull/evt_1"),
        (Method::GET, "/signed/gallery"),
    ] {
        let response = send(method, path).await.unwrap();
        expect_gallery_error(response, 405, "method_not_allowed").await;
    }
    for (method, path) in [
        (Method::GET, "/api/upload/id"),
        (Method::PUT, "/upload/id"),
        (Method::PATCH, "/api/file/01J0000000000000000000000"),
        (Method::GET, "/signed/session/01J0000000000000000000000"),
        (Method::POST, "/api/upload/remote/7"),
    ] {
        let response = send(method, path).await.unwrap();
        expect_session_error(response, 405, "method_not_allowed").await;
    }
    // other routes keep the plain shape
    let plain = send(Method::GET, "/device/1/current").await.unwrap();
    let body = expect_error(plain, 405, "method_not_allowed").await;
    assert!(body.get("success").is_none() && body.get("status").is_none(), "{body}");
}

#[tokio::test]
async fn axum_rejections_are_json_in_the_family_shape() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let send = |method: Method, path: &str| app.client.request(method, app.url(path)).bearer_auth(&alice.token).send();
    // a path segment that is not UTF-8 once percent-decoded: axum's Path extractor refuses it
    let gallery = send(Method::GET, "/api/gallery/%FF/events").await.unwrap();
    expect_gallery_error(gallery, 400, "invalid_request").await;
    let session = send(Method::DELETE, "/api/upload/id/%FF").await.unwrap();
    expect_session_error(session, 400, "invalid_request").await;
    let device = send(Method::POST, "/device/1/media_grant/%FF/upload").await.unwrap();
    expect_error(device, 400, "invalid_request").await;
}
