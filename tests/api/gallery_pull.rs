//! Gallery pull (API.md §4): `index.json` names resolve strictly under the registered base
//! URL, and the private-address allowance of a device's source covers only that base.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use ferry::domain::Level;
use serde_json::{Value, json};

use crate::helpers::*;

/// Paths requested from a test server outside the part it is meant to serve.
type Hits = Arc<Mutex<Vec<String>>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A server that must never be reached: it records every request.
async fn elsewhere() -> (String, Hits) {
    let hits = Hits::default();
    let seen = hits.clone();
    let app = Router::new().fallback(move |uri: Uri| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(uri.to_string());
            "secret"
        }
    });
    (serve(app).await, hits)
}

fn content(name: &str) -> Vec<u8> {
    bytes_of(1000 + name.len(), name.len() as u64)
}

const GOOD: [&str; 4] = ["IMG 0001.jpg", "été/café ☕.jpg", "100%.jpg", "inside.jpg"];

/// A device's pull source under `/dcim/` whose index lists `names`; anything requested
/// outside `/dcim/` is recorded. `inside.jpg` redirects within the base, `jump.jpg` to the
/// same host outside it and `hop.jpg` to `other` (another port).
async fn source(names: Vec<String>, other: &str) -> (String, Hits) {
    let hits = Hits::default();
    let seen = hits.clone();
    let index: Value = names.iter().map(|n| json!({"name": n, "size": 1000})).collect();
    let other = other.to_owned();
    let file = move |Path(name): Path<String>| {
        let other = other.clone();
        async move {
            match name.as_str() {
                "inside.jpg" => Redirect::temporary("/dcim/IMG%200001.jpg").into_response(),
                "jump.jpg" => Redirect::temporary("/escaped").into_response(),
                "hop.jpg" => Redirect::temporary(&format!("{other}/secret")).into_response(),
                name if GOOD.contains(&name) => content(name).into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    };
    let app = Router::new()
        .route("/dcim/index.json", get(move || async move { axum::Json(index.clone()) }))
        .route("/dcim/{*name}", get(file))
        .fallback(move |uri: Uri| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.to_string());
                "escaped"
            }
        });
    (format!("{}/dcim", serve(app).await), hits)
}

struct Camera<'a> {
    app: &'a TestApp,
    token: String,
}

impl Camera<'_> {
    fn url(&self, op: &str) -> String {
        self.app.url(&format!("/api/gallery/cam/{op}"))
    }

    async fn post(&self, op: &str) -> reqwest::Response {
        self.app.client.post(self.url(op)).bearer_auth(&self.token).send().await.unwrap()
    }

    async fn events(&self) -> Vec<Value> {
        let response = self.app.client.get(self.url("events?limit=200")).bearer_auth(&self.token).send().await;
        response.unwrap().json::<Vec<Value>>().await.unwrap()
    }

    async fn id_of(&self, name: &str) -> String {
        let events = self.events().await;
        let event = events.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("no event {name}"));
        event["id"].as_str().unwrap().to_owned()
    }
}

async fn camera<'a>(app: &'a TestApp, source: Option<&str>) -> Camera<'a> {
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    let device = app.device(&owner, "cam").await;
    if let Some(source) = source {
        app.catalog().set_pull_url(ferry::domain::DeviceId(device.device_id), Some(source)).await.unwrap();
    }
    Camera { app, token: owner.token }
}

#[tokio::test]
async fn names_outside_the_base_are_never_harvested_nor_fetched() {
    let (other, other_hits) = elsewhere().await;
    let port = other.rsplit(':').next().unwrap().to_owned();
    let escaping = [
        format!("{other}/secret"),
        format!("//127.0.0.1:{port}/secret"),
        "http:secret".into(),
        "%2e%2e/escaped".into(),
        "%2E%2E/escaped".into(),
        "../escaped".into(),
        "..%2fescaped".into(),
        "sub/../../escaped".into(),
        "%252e%252e/escaped".into(),
        "..\\escaped".into(),
        ".%2e/escaped".into(),
        "/escaped".into(),
        "./a/../../escaped".into(),
        "a\u{0}b.jpg".into(),
        "line\nbreak.jpg".into(),
        "".into(),
    ];
    let mut names: Vec<String> = GOOD.iter().map(|n| n.to_string()).collect();
    names.extend(escaping.iter().cloned());
    let (base, escaped) = source(names, &other).await;
    let app = spawn_app().await;
    let cam = camera(&app, Some(&base)).await;

    cam.post("harvest").await;
    // pull whatever was harvested: nothing may reach outside the base
    for event in cam.events().await {
        cam.post(&format!("pull/{}", event["id"].as_str().unwrap())).await;
    }
    assert_eq!(escaped.lock().unwrap().clone(), Vec::<String>::new(), "requests outside the base");
    assert_eq!(other_hits.lock().unwrap().clone(), Vec::<String>::new(), "requests to another port");
    let mut listed: Vec<String> = cam.events().await.iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    listed.sort();
    let mut good: Vec<String> = GOOD.iter().map(|n| n.to_string()).collect();
    good.sort();
    assert_eq!(listed, good, "only names under the base are harvested");

    // names with spaces, unicode and a literal % still pull; a redirect inside the base too
    for event in cam.events().await {
        assert_eq!(event["pulled"], true, "{event}");
    }
    let id = cam.id_of("été/café ☕.jpg").await;
    let file = app.client.get(cam.url(&format!("events/{id}/file"))).bearer_auth(&cam.token).send().await.unwrap();
    assert_eq!(file.bytes().await.unwrap().as_ref(), &content("été/café ☕.jpg")[..]);
    let id = cam.id_of("inside.jpg").await;
    let file = app.client.get(cam.url(&format!("events/{id}/file"))).bearer_auth(&cam.token).send().await.unwrap();
    assert_eq!(file.bytes().await.unwrap().as_ref(), &content("IMG 0001.jpg")[..]);
}

#[tokio::test]
async fn a_pull_job_refuses_a_name_outside_the_base_with_a_clear_reason() {
    let (other, other_hits) = elsewhere().await;
    let (base, escaped) = source(GOOD.iter().map(|n| n.to_string()).collect(), &other).await;
    let app = spawn_app().await;
    let cam = camera(&app, Some(&base)).await;
    // events recorded before names were checked at harvest (or by another version)
    let device = app.catalog().list_devices().await.unwrap().remove(0);
    for (i, name) in [format!("{other}/secret"), "%2e%2e/escaped".into(), "..%2Fescaped".into()].iter().enumerate() {
        let event = ferry::catalog::NewEvent {
            id: format!("evt_{i:026}"),
            user_id: device.user_id,
            device_id: device.device_id,
            name: format!("old{i}"),
            media_type: ferry::domain::MediaType::Other,
            content_type: "application/octet-stream".into(),
            blob: None,
            size: 10,
            thumbnail: None,
            metadata: None,
            source_name: Some(name.clone()),
            watch_key: None,
            created_ms: 1,
        };
        app.catalog().add_event(&event).await.unwrap();
        let refused = cam.post(&format!("pull/evt_{i:026}")).await;
        let body = expect_error(refused, 502, "pull_failed").await;
        assert_eq!(body["success"], false);
        assert!(body["message"].as_str().unwrap().contains("pull source"), "{body}");
    }
    assert!(escaped.lock().unwrap().is_empty() && other_hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_pull_never_shows_the_password_of_its_source() {
    let (other, _) = elsewhere().await;
    let (base, _) = source(GOOD.iter().map(|n| n.to_string()).collect(), &other).await;
    let with_password = base.replacen("http://", "http://cam:pw-s3cret@", 1);
    let app = spawn_app().await;
    let cam = camera(&app, Some(&with_password)).await;
    assert_eq!(cam.post("harvest").await.json::<Value>().await.unwrap()["created"], GOOD.len());
    let device = app.catalog().list_devices().await.unwrap().remove(0);
    let event = ferry::catalog::NewEvent {
        id: "evt_00000000000000000000000000".into(),
        user_id: device.user_id,
        device_id: device.device_id,
        name: "old".into(),
        media_type: ferry::domain::MediaType::Other,
        content_type: "application/octet-stream".into(),
        blob: None,
        size: 10,
        thumbnail: None,
        metadata: None,
        source_name: Some("../escaped".into()),
        watch_key: None,
        created_ms: 1,
    };
    app.catalog().add_event(&event).await.unwrap();
    let body = expect_error(cam.post(&format!("pull/{}", event.id)).await, 502, "pull_failed").await;
    assert!(!body.to_string().contains("pw-s3cret"), "{body}");
    // the source's credentials still reach it
    assert_eq!(cam.post(&format!("pull/{}", cam.id_of("IMG 0001.jpg").await)).await.status(), 200);
}

#[tokio::test]
async fn a_redirect_out_of_the_base_is_refused_even_to_the_same_private_host() {
    let (other, other_hits) = elsewhere().await;
    let (base, escaped) = source(vec!["jump.jpg".into(), "hop.jpg".into()], &other).await;
    let app = spawn_app().await;
    let cam = camera(&app, Some(&base)).await;
    assert_eq!(cam.post("harvest").await.json::<Value>().await.unwrap()["created"], 2);
    for name in ["jump.jpg", "hop.jpg"] {
        let refused = cam.post(&format!("pull/{}", cam.id_of(name).await)).await;
        let body = expect_error(refused, 502, "pull_failed").await;
        assert_eq!(body["success"], false);
    }
    assert!(cam.events().await.iter().all(|e| e["pulled"] == false), "nothing was attached");
    assert_eq!(escaped.lock().unwrap().clone(), Vec::<String>::new(), "the same host outside the base");
    assert_eq!(other_hits.lock().unwrap().clone(), Vec::<String>::new(), "another port of the same host");
}

#[tokio::test]
async fn pulling_on_a_device_without_a_source_is_409_even_when_the_event_has_bytes() {
    let app = spawn_app().await;
    let cam = camera(&app, None).await;
    let event = reqwest::multipart::Part::bytes(bytes_of(100, 1));
    let form = reqwest::multipart::Form::new().text("name", "ring").part("event", event);
    let uploaded = app.client.post(cam.url("upload")).bearer_auth(&cam.token).multipart(form).send().await.unwrap();
    let id = uploaded.json::<Value>().await.unwrap()["eventId"].as_str().unwrap().to_owned();
    let body = expect_error(cam.post(&format!("pull/{id}")).await, 409, "no_pull_source").await;
    assert_eq!(body["success"], false);
    let body = expect_error(cam.post("pull/evt_unknown").await, 409, "no_pull_source").await;
    assert_eq!(body["success"], false);
}
