//! API.md's JSON types are the contract: values of another kind are a 400 in the family's
//! shape, never taken as their text.

use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

async fn expect_session_error(response: reqwest::Response, status: u16, code: &str) {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["status"], "error", "{body}");
}

#[tokio::test]
async fn session_registration_checks_the_json_kind_of_every_option() {
    let app = spawn_app().await;
    let token = app.user("alice", Level::Uploader, "upload").await.token;
    let register = |body: Value| app.client.post(app.url("/api/upload/id")).bearer_auth(&token).json(&body).send();
    let refused = [
        (json!({"folder_id": true}), "invalid_folder_id"),
        (json!({"folder_id": false}), "invalid_folder_id"),
        (json!({"folder_id": ["a"]}), "invalid_folder_id"),
        (json!({"folder_id": {"a": 1}}), "invalid_folder_id"),
        (json!({"folder_id": 1.5}), "invalid_folder_id"),
        (json!({"folder_id": "a", "file_extensions": 5}), "invalid_option"),
        (json!({"folder_id": "a", "file_extensions": ["jpg"]}), "invalid_option"),
        (json!({"folder_id": "a", "file_extensions": true}), "invalid_option"),
        (json!({"folder_id": "a", "autofinish": 2}), "invalid_option"),
        (json!({"folder_id": "a", "autofinish": "yes"}), "invalid_option"),
        (json!({"folder_id": "a", "no_transcode": [true]}), "invalid_option"),
        (json!({"folder_id": "a", "hide_response": {"on": true}}), "invalid_option"),
        (json!({"folder_id": "a", "hide_response": 0.5}), "invalid_option"),
        (json!({"folder_id": "a", "max_files": true}), "invalid_option"),
        (json!({"folder_id": "a", "max_files": 1.5}), "invalid_option"),
        (json!({"folder_id": "a", "max_files": "1e3"}), "invalid_option"),
        (json!({"folder_id": "a", "max_size": [100]}), "invalid_option"),
        (json!({"folder_id": "a", "max_filesize": {"bytes": 1}}), "invalid_option"),
    ];
    for (body, code) in refused {
        let response = register(body.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        expect_session_error(response, 400, code).await;
    }
    let accepted = [
        json!({"folder_id": 7}),
        json!({"folder_id": "a", "autofinish": false, "no_transcode": 1, "hide_response": "true"}),
        json!({"folder_id": "a", "autofinish": 0, "no_transcode": "0", "hide_response": "FALSE"}),
        json!({"folder_id": "a", "max_files": "12", "max_size": 1000, "max_filesize": null}),
        json!({"folder_id": "a", "file_extensions": "jpg, PNG"}),
    ];
    for body in accepted {
        let response = register(body.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{body}: {}", response.text().await.unwrap());
    }
    // a JSON number is its decimal string
    let answer: Value = register(json!({"folder_id": 2026})).await.unwrap().json().await.unwrap();
    let session = app.catalog().session(answer["ulid"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(session.folder.key, "2026");
}

#[tokio::test]
async fn gallery_upload_refuses_bad_flags_and_names_and_keeps_nothing() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&alice, "cam").await;
    let upload = |form: Form| {
        app.client.post(app.url("/api/gallery/cam/upload")).bearer_auth(&alice.token).multipart(form).send()
    };
    let event = || Part::bytes(bytes_of(500, 1)).file_name("e.jpg");
    for flag in ["maybe", "yes", "2", "on"] {
        let form = Form::new().part("event", event()).text("name", "ring").text("has_thumbnail", flag.to_owned());
        let response = upload(form).await.unwrap();
        assert_eq!(response.status(), 400, "has_thumbnail={flag}");
        let body = expect_error(response, 400, "invalid_has_thumbnail").await;
        assert_eq!(body["success"], false, "{body}");
    }
    for name in ["a\u{0}b", "line\nbreak", "tab\there", "bell\u{7}", "del\u{7f}", "c1\u{85}x"] {
        let form = Form::new().part("event", event()).text("name", name.to_owned()).text("has_thumbnail", "true");
        let response = upload(form).await.unwrap();
        assert_eq!(response.status(), 400, "name {name:?}");
        let body = expect_error(response, 400, "invalid_name").await;
        assert_eq!(body["success"], false, "{body}");
    }
    assert!(app.blob_files().is_empty(), "refused uploads store nothing");
    assert!(app.staging_left_behind().await.is_empty(), "refused uploads leave no staging file");
    let listed = app.client.get(app.url("/api/gallery/cam/events")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([]));

    let url = app.url("/api/gallery/cam/upload-url?filename=a%00b.jpg");
    let body = expect_error(app.client.get(url).bearer_auth(&alice.token).send().await.unwrap(), 400, "invalid_name");
    assert_eq!(body.await["success"], false);

    for flag in ["true", "false", "1", "0", "TRUE"] {
        let form = Form::new().part("event", event()).text("name", "ring").text("has_thumbnail", flag.to_owned());
        assert_eq!(upload(form).await.unwrap().status(), 200, "has_thumbnail={flag}");
    }
    let unicode = Form::new().part("event", event()).text("name", "Haustür — café ☕");
    assert_eq!(upload(unicode).await.unwrap().status(), 200);
}
