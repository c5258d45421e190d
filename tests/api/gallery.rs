//! Device gallery family (API.md §4).

use std::time::Duration;

use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];

pub(crate) struct Gallery<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) token: String,
    pub(crate) device: String,
}

impl<'a> Gallery<'a> {
    pub(crate) async fn new(app: &'a TestApp, user: &str) -> Gallery<'a> {
        let owner = app.user(user, Level::Uploader, "upload,read,delete").await;
        app.device(&owner, "Front Door").await;
        Gallery { app, token: owner.token, device: "Front Door".into() }
    }

    pub(crate) fn url(&self, op: &str) -> String {
        self.app.url(&format!("/api/gallery/{}/{op}", self.device.replace(' ', "%20")))
    }

    pub(crate) async fn get(&self, op: &str) -> reqwest::Response {
        self.app.client.get(self.url(op)).bearer_auth(&self.token).send().await.unwrap()
    }

    pub(crate) async fn get_json(&self, op: &str) -> Value {
        let response = self.get(op).await;
        assert_eq!(response.status(), 200, "{op}");
        response.json().await.unwrap()
    }

    pub(crate) async fn upload(&self, form: Form) -> reqwest::Response {
        self.app.client.post(self.url("upload")).bearer_auth(&self.token).multipart(form).send().await.unwrap()
    }

    pub(crate) async fn upload_ok(&self, name: &str, bytes: Vec<u8>) -> String {
        let response = self.upload(Form::new().text("name", name.to_owned()).part("event", Part::bytes(bytes))).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], true, "{body}");
        body["eventId"].as_str().unwrap().to_owned()
    }
}

pub(crate) async fn expect_gallery_error(response: reqwest::Response, status: u16, code: &str) {
    let body = expect_error(response, status, code).await;
    assert_eq!(body["success"], false, "gallery family shape: {body}");
}

#[tokio::test]
async fn upload_with_fields_after_the_file_thumbnail_and_metadata() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let mut photo = PNG.to_vec();
    photo.extend(bytes_of(2000, 1));
    let form = Form::new()
        .part("event", Part::bytes(photo.clone()).file_name("door.png"))
        .part("thumbnail", Part::bytes(PNG.to_vec()).file_name("t.png"))
        .text("name", "doorbell ring")
        .text("metadata", r#"{"motion": true, "zone": 2}"#)
        .text("has_thumbnail", "true");
    let answer: Value = g.upload(form).await.json().await.unwrap();
    assert_eq!(answer["success"], true);
    let id = answer["eventId"].as_str().unwrap();
    assert!(id.starts_with("evt_") && id.len() == 30, "{id}");

    let events = g.get_json("events").await;
    let event = &events[0];
    assert_eq!(event["id"], id);
    assert_eq!(event["name"], "doorbell ring");
    assert_eq!(event["media_type"], "image", "sniffed from the bytes");
    assert_eq!(event["size"], photo.len());
    assert_eq!(event["has_thumbnail"], true);
    assert!(event["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event["metadata"]["zone"], 2);

    let file = g.get(&format!("events/{id}/file")).await;
    assert_eq!(file.headers()["content-type"], "image/png");
    assert_eq!(file.bytes().await.unwrap().as_ref(), &photo[..]);
    let range = g
        .app
        .client
        .get(g.url(&format!("events/{id}/file")))
        .bearer_auth(&g.token)
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap().as_ref(), &photo[..4]);
    let thumb = g.get(&format!("events/{id}/thumbnail")).await;
    assert_eq!(thumb.headers()["content-type"], "image/png");
    assert_eq!(thumb.bytes().await.unwrap().as_ref(), PNG);

    let declared = g
        .upload(
            Form::new().text("media_type", "video").text("name", "clip").part("event", Part::bytes(bytes_of(100, 2))),
        )
        .await;
    assert_eq!(declared.status(), 200);
    assert_eq!(g.get_json("events?media_type=video").await[0]["name"], "clip");
}

#[tokio::test]
async fn upload_errors() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let event = || Part::bytes(bytes_of(10, 3));
    expect_gallery_error(g.upload(Form::new().part("event", event())).await, 400, "missing_name").await;
    expect_gallery_error(g.upload(Form::new().text("name", "x")).await, 400, "missing_event").await;
    expect_gallery_error(
        g.upload(Form::new().text("name", "x").text("metadata", "{nope").part("event", event())).await,
        400,
        "invalid_metadata",
    )
    .await;
    expect_gallery_error(
        g.upload(Form::new().text("name", "x").text("media_type", "hologram").part("event", event())).await,
        400,
        "invalid_media_type",
    )
    .await;
    assert!(app.blob_files().is_empty() && app.staging_left_behind().await.is_empty(), "refused uploads keep nothing");
    let reader = app.user("reader", Level::Uploader, "read").await;
    let forbidden = app
        .client
        .post(g.url("upload"))
        .bearer_auth(&reader.token)
        .multipart(Form::new().text("name", "x"))
        .send()
        .await
        .unwrap();
    expect_gallery_error(forbidden, 403, "forbidden").await;
}

#[tokio::test]
async fn listing_pages_filters_and_clamps() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(g.upload_ok(&format!("e{i}"), bytes_of(10 + i, i as u64)).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let all = g.get_json("events").await;
    let listed: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(g.get_json("events?limit=2&offset=1").await.as_array().unwrap().len(), 2);
    assert_eq!(g.get_json("events?limit=2&offset=1").await[0]["id"], ids[3]);
    for bad in ["limit=-1", "limit=abc", "offset=-5", "offset=x"] {
        expect_gallery_error(g.get(&format!("events?{bad}")).await, 400, "invalid_query").await;
    }
    expect_gallery_error(g.get("events?media_type=hologram").await, 400, "invalid_media_type").await;
    assert_eq!(g.get_json("events?media_type=audio").await, json!([]));
    // past every event, even past what an SQL integer holds: an empty page (schemathesis found a 500)
    for far in [u64::MAX / 2 + 1, u64::MAX] {
        assert_eq!(g.get_json(&format!("events?offset={far}")).await, json!([]));
        assert_eq!(g.get_json(&format!("events?offset={far}&media_type=image")).await, json!([]));
    }

    // limit is clamped to 200
    let device = app.catalog().list_devices().await.unwrap().remove(0);
    for i in 0..205 {
        let event = ferry::catalog::NewEvent {
            id: format!("evt_{i:026}"),
            user_id: device.user_id,
            device_id: device.device_id,
            name: format!("bulk{i}"),
            media_type: ferry::domain::MediaType::Other,
            content_type: "application/octet-stream".into(),
            blob: None,
            size: 1,
            thumbnail: None,
            metadata: None,
            source_name: None,
            watch_key: None,
            created_ms: 1,
        };
        app.catalog().add_event(&event).await.unwrap();
    }
    assert_eq!(g.get_json("events?limit=500").await.as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn paging_while_uploads_arrive_never_skips_an_event() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let mut before = Vec::new();
    for i in 0..30 {
        before.push(g.upload_ok(&format!("old{i}"), bytes_of(8, 100 + i)).await);
    }
    let uploader = async {
        for i in 0..15 {
            g.upload_ok(&format!("new{i}"), bytes_of(8, 200 + i)).await;
        }
    };
    let pager = async {
        let mut seen = Vec::new();
        for page in 0..20 {
            let items = g.get_json(&format!("events?limit=4&offset={}", page * 4)).await;
            seen.extend(items.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            tokio::task::yield_now().await;
        }
        seen
    };
    let ((), seen) = tokio::join!(uploader, pager);
    for id in &before {
        assert!(seen.contains(id), "event {id} that existed before paging was skipped");
    }
}

#[tokio::test]
async fn upload_urls_for_file_and_thumbnail() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let urls = g.get_json("upload-url?filename=garage.jpg&thumbnail=true").await;
    assert_eq!(urls["success"], true);
    let (file_url, thumb_url) = (urls["upload_url"].as_str().unwrap(), urls["thumbnail_upload_url"].as_str().unwrap());
    let early = app.client.put(thumb_url).body(PNG.to_vec()).send().await.unwrap();
    expect_gallery_error(early, 409, "event_not_uploaded").await;
    let put: Value = app.client.put(file_url).body(bytes_of(3000, 4)).send().await.unwrap().json().await.unwrap();
    let id = put["eventId"].as_str().unwrap().to_owned();
    assert_eq!(app.client.put(thumb_url).body(PNG.to_vec()).send().await.unwrap().status(), 200);
    let event = &g.get_json("events").await[0];
    assert_eq!((event["id"].as_str().unwrap(), event["name"].as_str().unwrap()), (id.as_str(), "garage.jpg"));
    assert_eq!(event["has_thumbnail"], true);
    expect_gallery_error(app.client.put(file_url).body(bytes_of(5, 5)).send().await.unwrap(), 409, "already_uploaded")
        .await;
    let no_thumb = g.get_json("upload-url?filename=a.jpg").await;
    assert!(no_thumb.get("thumbnail_upload_url").is_none());
    expect_gallery_error(g.get("upload-url").await, 400, "missing_filename").await;
    let tampered = file_url.replace("garage", "garagf");
    expect_gallery_error(app.client.put(tampered).body(bytes_of(5, 6)).send().await.unwrap(), 403, "invalid_signature")
        .await;
}

#[tokio::test]
async fn stats_count_by_type_and_deletes_are_excluded() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let empty = g.get_json("stats").await;
    assert_eq!((&empty["total_events"], &empty["total_size"]), (&json!(0), &json!(0)), "{empty}");
    assert_eq!(empty["by_type"]["image"], json!({"count": 0, "size": 0}));
    let unknown = app.client.get(app.url("/api/gallery/Back%20Door/stats")).bearer_auth(&g.token).send().await;
    expect_gallery_error(unknown.unwrap(), 404, "no_such_device").await;
    let mut png = PNG.to_vec();
    png.extend(bytes_of(84, 7));
    let image = g.upload_ok("p", png).await;
    g.upload_ok("p2", PNG.to_vec()).await;
    g.upload_ok("blob", bytes_of(50, 8)).await;
    let stats = g.get_json("stats").await;
    assert_eq!(stats["total_events"], 3);
    assert_eq!(stats["total_size"], 100 + 16 + 50);
    assert_eq!(stats["by_type"]["image"], json!({"count": 2, "size": 116}));
    assert_eq!(stats["by_type"]["other"], json!({"count": 1, "size": 50}));

    let deleted = app.client.delete(g.url(&format!("events/{image}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(deleted.json::<Value>().await.unwrap(), json!({"success": true}));
    assert_eq!(g.get_json("stats").await["by_type"]["image"], json!({"count": 1, "size": 16}));
    // by id, as the listing, and nobody else's
    let device_id = app.catalog().list_devices().await.unwrap()[0].device_id;
    let by_id = app.client.get(app.url(&format!("/api/gallery/{device_id}/stats"))).bearer_auth(&g.token);
    assert_eq!(by_id.send().await.unwrap().json::<Value>().await.unwrap()["total_events"], 2);
    let bob = app.user("bob", Level::Uploader, "read").await;
    let theirs = app.client.get(g.url("stats")).bearer_auth(&bob.token).send().await.unwrap();
    expect_gallery_error(theirs, 404, "no_such_device").await;
    let again = app.client.delete(g.url(&format!("events/{image}"))).bearer_auth(&g.token).send().await.unwrap();
    expect_gallery_error(again, 404, "no_such_event").await;
    expect_gallery_error(g.get(&format!("events/{image}/file")).await, 404, "no_such_event").await;
}

#[tokio::test]
async fn devices_resolve_by_name_or_id_and_other_accounts_see_nothing() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let id = g.upload_ok("mine", bytes_of(10, 9)).await;
    let device_id = app.catalog().list_devices().await.unwrap()[0].device_id;
    let by_id = app
        .client
        .get(app.url(&format!("/api/gallery/{device_id}/events")))
        .bearer_auth(&g.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.json::<Value>().await.unwrap()[0]["id"], id);
    // an unknown device is the first thing wrong with a listing, before its query
    for query in ["", "?limit=abc", "?media_type=hologram", "?offset=1"] {
        let url = app.url(&format!("/api/gallery/Back%20Door/events{query}"));
        expect_gallery_error(g.app.client.get(url).bearer_auth(&g.token).send().await.unwrap(), 404, "no_such_device")
            .await;
    }

    let eve = app.user("eve", Level::Admin, "upload,read,delete").await;
    for path in [
        "/api/gallery/Front%20Door/events".to_string(),
        format!("/api/gallery/{device_id}/events"),
        format!("/api/gallery/{device_id}/stats"),
        format!("/api/gallery/{device_id}/events/{id}/file"),
    ] {
        let response = app.client.get(app.url(&path)).bearer_auth(&eve.token).send().await.unwrap();
        expect_gallery_error(response, 404, "no_such_device").await;
    }
    let delete = app
        .client
        .delete(app.url(&format!("/api/gallery/{device_id}/events/{id}")))
        .bearer_auth(&eve.token)
        .send()
        .await
        .unwrap();
    expect_gallery_error(delete, 404, "no_such_device").await;
    assert_eq!(g.get_json("events").await.as_array().unwrap().len(), 1, "nothing deleted");

    // "+N" is a name (ids are digits only): the device of that name, not device N
    let alice = app.catalog().user_by_name("alice").await.unwrap().unwrap();
    let plus = ferry::catalog::NewDevice {
        user_id: alice.user_id,
        name: ferry::domain::Name::parse(&format!("+{device_id}")).unwrap(),
        key_hash: ferry::auth::secrets::hash("fry_d_unused"),
    };
    app.catalog().create_device(plus).await.unwrap();
    for _ in 0..5 {
        let url = app.url(&format!("/api/gallery/%2B{device_id}/events"));
        let listed = app.client.get(url).bearer_auth(&g.token).send().await.unwrap();
        assert_eq!(listed.json::<Value>().await.unwrap(), json!([]), "the device named +{device_id}, with no events");
    }
    assert_eq!(g.get_json("events").await.as_array().unwrap().len(), 1, "and by its own name the first one");
}

#[tokio::test]
async fn files_dropped_into_incoming_become_events_with_their_thumbnail() {
    let app = spawn_app_with(|layer| {
        layer.insert("watch_settle_ms", "100".into());
    })
    .await;
    let g = Gallery::new(&app, "alice").await;
    let paths = g.get_json("paths").await;
    assert_eq!(paths["success"], true);
    let incoming = std::path::PathBuf::from(paths["paths"]["incoming"].as_str().unwrap());
    let thumbnails = std::path::PathBuf::from(paths["paths"]["thumbnails"].as_str().unwrap());
    assert!(incoming.is_dir() && thumbnails.is_dir());
    std::fs::write(thumbnails.join("porch.mp4.jpg"), PNG).unwrap();
    std::fs::write(incoming.join("porch.mp4"), bytes_of(4000, 10)).unwrap();
    // the event is recorded first, the file moved after (so a crash never loses it)
    let mut events = json!([]);
    for _ in 0..100 {
        events = g.get_json("events").await;
        if !events.as_array().unwrap().is_empty() && incoming.join("done/porch.mp4").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events[0]["name"], "porch.mp4");
    assert_eq!(events[0]["has_thumbnail"], true);
    assert!(incoming.join("done/porch.mp4").exists());
    assert!(!incoming.join("porch.mp4").exists());
}

#[tokio::test]
async fn the_part_file_name_or_type_decides_when_the_bytes_say_nothing() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let by_name =
        Form::new().text("name", "doorbell").part("event", Part::bytes(b"not magic".to_vec()).file_name("porch.MOV"));
    assert_eq!(g.upload(by_name).await.status(), 200);
    let by_type = Form::new()
        .text("name", "memo")
        .part("event", Part::bytes(b"still not magic".to_vec()).mime_str("audio/ogg").unwrap());
    assert_eq!(g.upload(by_type).await.status(), 200);
    let events = g.get_json("events").await;
    let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["media_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["audio", "video"]);
}
