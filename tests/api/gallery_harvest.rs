//! Device gallery family (API.md §4): events harvested from a device's pull source get
//! their bytes on demand.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::gallery::{Gallery, expect_gallery_error};
use crate::helpers::*;

/// A device's pull source: index.json plus files (one listed file is missing).
async fn pull_source() -> String {
    let index = json!([
        {"name": "a.jpg", "size": 5000, "media_type": "image", "created": "2026-11-01T10:00:00Z"},
        {"name": "b.mp4", "size": 7000, "created": 1_790_000_000},
        {"name": "lost.jpg", "size": 10}
    ]);
    let app = Router::new()
        .route("/cam/index.json", get(move || async move { axum::Json(index.clone()) }))
        .route("/cam/a.jpg", get(|| async { bytes_of(5000, 11) }))
        .route("/cam/b.mp4", get(|| async { bytes_of(7000, 12) }))
        .route("/cam/lost.jpg", get(|| async { StatusCode::NOT_FOUND.into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/cam", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn harvest_then_pull_on_demand() {
    let source = pull_source().await;
    let app = spawn_app().await; // no remote allow-list: the device's own source is allowed
    let g = Gallery::new(&app, "alice").await;
    expect_gallery_error(
        app.client.post(g.url("harvest")).bearer_auth(&g.token).send().await.unwrap(),
        409,
        "no_pull_source",
    )
    .await;
    let device = app.catalog().list_devices().await.unwrap().remove(0);
    app.catalog().set_pull_url(device.device_id, Some(&source)).await.unwrap();

    let harvested: Value =
        app.client.post(g.url("harvest")).bearer_auth(&g.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(harvested["created"], 3);
    let again: Value =
        app.client.post(g.url("harvest")).bearer_auth(&g.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["created"], 0, "harvesting is idempotent");
    let events = g.get_json("events").await;
    assert!(events.as_array().unwrap().iter().all(|e| e["pulled"] == false));
    let stats = g.get_json("stats").await;
    assert_eq!(stats["total_events"], 3, "stats count events not pulled yet");
    assert_eq!(stats["by_type"]["video"]["count"], 1);
    let find = |name: &str| {
        events.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
    };

    let a = find("a.jpg");
    expect_gallery_error(g.get(&format!("events/{a}/file")).await, 404, "not_pulled").await;
    let pulled = app.client.post(g.url(&format!("pull/{a}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.json::<Value>().await.unwrap(), json!({"success": true, "eventId": a}));
    assert_eq!(g.get(&format!("events/{a}/file")).await.bytes().await.unwrap().as_ref(), &bytes_of(5000, 11)[..]);
    let at_once = app.client.post(g.url(&format!("pull/{a}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(at_once.status(), 200, "already pulled");

    let lost = find("lost.jpg");
    let gone = app.client.post(g.url(&format!("pull/{lost}"))).bearer_auth(&g.token).send().await.unwrap();
    expect_gallery_error(gone, 404, "gone_from_device").await;
    assert_eq!(g.get_json("events").await.as_array().unwrap().len(), 3, "the event is kept");
}

#[test]
fn pull_source_is_set_with_the_admin_cli() {
    let dir = tempfile::tempdir().unwrap();
    admin_json(dir.path(), &["user", "add", "alice", "--level", "uploader"]);
    admin_json(dir.path(), &["device", "add", "--user", "alice", "--name", "cam"]);
    let (code, device) =
        admin_json(dir.path(), &["device", "pull-source", "--device", "cam", "--url", "http://192.0.2.7/dcim/"]);
    assert_eq!(code, 0);
    assert_eq!(device["pull_url"], "http://192.0.2.7/dcim");
    let (code, err) = admin_json(dir.path(), &["device", "pull-source", "--device", "cam", "--url", "ftp://x"]);
    assert_eq!((code, err["error"].as_str().unwrap()), (1, "invalid_argument"));
    assert_eq!(
        admin_json(dir.path(), &["device", "pull-source", "--device", "cam", "--url", "none"]).1["pull_url"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_pull_that_outlasts_the_wait_answers_202_and_finishes_in_the_background() {
    let source = pull_source().await;
    let app = spawn_app_with(|layer| {
        layer.insert("pull_wait", "0s".into());
    })
    .await;
    let g = Gallery::new(&app, "alice").await;
    let device = app.catalog().list_devices().await.unwrap().remove(0);
    app.catalog().set_pull_url(device.device_id, Some(&source)).await.unwrap();
    app.client.post(g.url("harvest")).bearer_auth(&g.token).send().await.unwrap();
    let events = g.get_json("events").await;
    let b =
        events.as_array().unwrap().iter().find(|e| e["name"] == "b.mp4").unwrap()["id"].as_str().unwrap().to_owned();
    let running = app.client.post(g.url(&format!("pull/{b}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(running.status(), 202);
    assert_eq!(running.json::<Value>().await.unwrap(), json!({"success": true, "eventId": b, "status": "running"}));
    let mut pulled = false;
    for _ in 0..100 {
        let event =
            g.get_json("events").await.as_array().unwrap().iter().find(|e| e["id"] == b.as_str()).cloned().unwrap();
        if event["pulled"] == true {
            pulled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pulled, "the pull finished in the background");
    assert_eq!(g.get(&format!("events/{b}/file")).await.bytes().await.unwrap().as_ref(), &bytes_of(7000, 12)[..]);
}
