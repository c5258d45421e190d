//! Session family: a `folder_id` appended to the direct upload URL, outside its signature,
//! as MediaLab's PHP SDK does per file in batch mode (API.md §3); the token route takes
//! the same query parameter.

use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.client.post(app.url("/api/upload/id")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn file(title: &str, seed: u64) -> Form {
    Form::new().text("title", title.to_owned()).part("file", Part::bytes(bytes_of(3000, seed)).file_name("a.jpg"))
}

async fn post(app: &TestApp, url: &str, form: Form, token: Option<&str>) -> reqwest::Response {
    let request = app.client.post(url).multipart(form);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn expect_session_error(response: reqwest::Response, status: u16, code: &str) {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["user_message"].is_string(), "{body}");
}

/// Folder of each file of the session, by title.
async fn folders(app: &TestApp, ulid: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> =
        app.catalog().finish_session(ulid).await.unwrap().into_iter().map(|f| (f.title, f.folder_key)).collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_folder_id_appended_to_the_direct_url_files_each_upload_there() {
    let app = spawn_app().await;
    let token = app.user("alice", Level::Uploader, "upload").await.token;
    let session = register(&app, &token, json!({"folder_id": "inbox", "autofinish": 0})).await;
    let direct = session["url_upload_direct"].as_str().unwrap();

    for (title, folder) in [("one", "trip-2026"), ("two", "trip_2027")] {
        let response = post(&app, &format!("{direct}&folder_id={folder}"), file(title, 1), None).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    // the form field still wins over the query parameter
    let both = file("three", 2).text("folder_id", "from-form");
    assert_eq!(post(&app, &format!("{direct}&folder_id=from-query"), both, None).await.status(), 200);
    // the URL as issued keeps the session's folder
    assert_eq!(post(&app, direct, file("four", 3), None).await.status(), 200);

    let expected = [("four", "inbox"), ("one", "trip-2026"), ("three", "from-form"), ("two", "trip_2027")];
    let expected: Vec<(String, String)> = expected.iter().map(|(t, f)| (t.to_string(), f.to_string())).collect();
    assert_eq!(folders(&app, session["ulid"].as_str().unwrap()).await, expected);
}

#[tokio::test]
async fn every_other_change_to_the_direct_url_is_still_refused() {
    let app = spawn_app().await;
    let token = app.user("alice", Level::Uploader, "upload").await.token;
    let session = register(&app, &token, json!({"folder_id": "inbox", "autofinish": 0})).await;
    let direct = session["url_upload_direct"].as_str().unwrap();
    let tampered = [
        format!("{direct}&title=x"),
        format!("{direct}&user=2"),
        format!("{direct}&folder_id=a&folder_id=b"),
        format!("{direct}&folder_id=a&"),
        format!("{direct}&"),
        format!("{direct}folder_id=a"),
        format!("{direct}&sig=00"),
        direct.replacen("&sig=", "&folder_id=a&sig=", 1),
        direct.replacen("?", "?folder_id=a&", 1),
    ];
    for url in &tampered {
        expect_session_error(post(&app, url, file("x", 4), None).await, 403, "invalid_signature").await;
    }
    // a folder_id outside the signature is validated like the form field
    for bad in ["a%2Fb", "x".repeat(65).as_str(), "caf%C3%A9", "a+b"] {
        let response = post(&app, &format!("{direct}&folder_id={bad}"), file("x", 5), None).await;
        expect_session_error(response, 400, "invalid_folder_id").await;
    }
    assert!(app.blob_files().is_empty() && app.staging_files().is_empty(), "refused uploads keep nothing");
    assert!(folders(&app, session["ulid"].as_str().unwrap()).await.is_empty());
}

#[tokio::test]
async fn the_token_route_takes_folder_id_in_its_query_too() {
    let app = spawn_app().await;
    let token = app.user("alice", Level::Uploader, "upload").await.token;
    let session = register(&app, &token, json!({"folder_id": "inbox", "autofinish": 0})).await;
    let api = session["api"]["upload"].as_str().unwrap();
    assert_eq!(post(&app, &format!("{api}?folder_id=by-query"), file("one", 6), Some(&token)).await.status(), 200);
    let both = file("two", 7).text("folder_id", "by-form");
    assert_eq!(post(&app, &format!("{api}?folder_id=by-query"), both, Some(&token)).await.status(), 200);
    let bad = post(&app, &format!("{api}?folder_id=no/slash"), file("x", 8), Some(&token)).await;
    expect_session_error(bad, 400, "invalid_folder_id").await;
    let expected = vec![("one".to_owned(), "by-query".to_owned()), ("two".to_owned(), "by-form".to_owned())];
    assert_eq!(folders(&app, session["ulid"].as_str().unwrap()).await, expected);
}
