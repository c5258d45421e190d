//! Storage lifecycle (issue 21): in every family, deleting frees the bytes once the
//! retention and the collection grace have passed — and not before; content another item or
//! account still uses stays; a fresh upload keeps its hold for the upload expiry. Passes run
//! as if days had gone by (the lifecycle takes its clock from the caller).

use std::time::Duration;

use ferry::clock::now_ms;
use ferry::domain::{Level, Sha256Hex};
use ferry::jobs::{PassReport, StorageLifecycle, consistency};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

const DAY_MS: i64 = 86_400_000;
/// Past the default retention (30 days) and grace (1 hour).
pub(crate) const PAST_RETENTION: i64 = 31;

/// Runs lifecycle passes as if `days` had gone by, until nothing more is due.
pub(crate) async fn pass_after(app: &TestApp, days: i64) -> PassReport {
    app.state.lifecycle.pass(now_ms() + days * DAY_MS, true).await.unwrap()
}

pub(crate) async fn stored(app: &TestApp, sha256: &str) -> bool {
    app.state.store.size_of(&Sha256Hex::parse(sha256).unwrap()).await.unwrap().is_some()
}

/// What `ferry admin check` reports: every row has its bytes and every blob its row.
pub(crate) async fn assert_consistent(app: &TestApp) {
    let scope = consistency::CheckScope { deep: false, staging_age: Duration::from_secs(3600) };
    let report = consistency::check(app.catalog().as_ref(), app.state.store.as_ref(), scope).await.unwrap();
    assert!(report.blobs_without_rows.is_empty() && report.rows_without_blobs.is_empty(), "{report:?}");
    assert!(report.pending_intents.is_empty(), "{report:?}");
}

/// A session-family upload of `bytes` by `token` to the server at `base`; returns the file id.
pub(crate) async fn session_upload(base: &str, token: &str, bytes: &[u8]) -> String {
    let client = reqwest::Client::new();
    let register = client.post(format!("{base}/api/upload/id")).bearer_auth(token).json(&json!({"folder_id": "f"}));
    let session: Value = register.send().await.unwrap().json().await.unwrap();
    let form = Form::new().part("file", Part::bytes(bytes.to_vec()).file_name("a.bin"));
    let upload = client.post(session["api"]["upload"].as_str().unwrap()).bearer_auth(token).multipart(form);
    let answer: Value = upload.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["sha256"], sha256_hex(bytes), "{answer}");
    answer["file_id"].as_str().unwrap().to_owned()
}

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client.delete(app.url(path)).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_deleted_device_media_item_frees_its_bytes_after_retention_and_can_come_back() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (photo, kept) = (bytes_of(5000, 1), bytes_of(5000, 2));
    let (hash, kept_hash) = (cam.upload(&photo).await, cam.upload(&kept).await);
    let id = json_of(cam.create("/a.jpg", &hash, 5000).await).await["media_id"].as_i64().unwrap();
    json_of(cam.create("/b.jpg", &kept_hash, 5000).await).await;
    let deleted = delete(&app, &format!("/device/1/media_grant/{}/media/{id}", cam.grant), &owner.token).await;
    assert_eq!(deleted.status(), 200);

    // within the retention the tombstone keeps everything: undo works
    assert_eq!(pass_after(&app, 1).await.collected_blobs, 0);
    assert!(stored(&app, &hash).await);
    let check = cam.post_ok("upload", json!({"file_list": [{"file_hash": hash, "file_size": 5000}]})).await;
    assert_eq!(check["upload_list"][0]["skip_upload"], true, "still held while the tombstone lasts");

    let report = pass_after(&app, PAST_RETENTION).await;
    assert_eq!((report.purged_items, report.collected_blobs, report.freed_bytes), (1, 1, 5000), "{report:?}");
    assert!(!stored(&app, &hash).await, "the bytes are gone from the store");
    assert!(stored(&app, &kept_hash).await, "a live item's bytes stay");
    let check = cam.post_ok("upload", json!({"file_list": [{"file_hash": hash, "file_size": 5000}]})).await;
    assert_ne!(check["upload_list"][0]["skip_upload"], true, "the hold went with the last use");
    expect_error(cam.create("/a.jpg", &hash, 5000).await, 400, "unknown_content").await;
    assert_consistent(&app).await;

    // sent again, it is stored again and the path can use it
    assert_eq!(cam.upload(&photo).await, hash);
    assert_eq!(cam.create("/a.jpg", &hash, 5000).await.status(), 200);
    assert!(stored(&app, &hash).await);
    assert_consistent(&app).await;
}

#[tokio::test]
async fn replaced_device_content_is_freed_after_retention() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (v1, v2) = (bytes_of(3000, 3), bytes_of(3000, 4));
    let (h1, h2) = (cam.upload(&v1).await, cam.upload(&v2).await);
    let id = json_of(cam.create("/doc", &h1, 3000).await).await["media_id"].as_i64().unwrap();
    cam.post_ok(&format!("media/{id}"), json!({"file_hash": h2, "file_size": 3000, "ctime": null, "mtime": null}))
        .await;
    assert_eq!(pass_after(&app, 1).await.collected_blobs, 0, "the old version stays for the retention");
    assert!(stored(&app, &h1).await);
    pass_after(&app, PAST_RETENTION).await;
    assert!(!stored(&app, &h1).await, "the replaced version is collected");
    assert!(stored(&app, &h2).await, "the current version stays");
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_signed_put_keeps_its_hold_for_the_upload_expiry_then_goes_if_unused() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (late, unused) = (bytes_of(2000, 5), bytes_of(2000, 6));
    let (late_hash, unused_hash) = (cam.upload(&late).await, cam.upload(&unused).await);

    // the upload expiry is 24 h: half a day later nothing has gone, and a late create works
    assert_eq!(pass_after(&app, 0).await, PassReport::default());
    let half_day = app.state.lifecycle.pass(now_ms() + DAY_MS / 2, true).await.unwrap();
    assert_eq!(half_day.released_holds, 0);
    assert_eq!(cam.create("/late.jpg", &late_hash, 2000).await.status(), 200);

    let report = pass_after(&app, 2).await;
    assert_eq!((report.released_holds, report.collected_blobs), (1, 1), "{report:?}");
    assert!(!stored(&app, &unused_hash).await, "content nothing ever used goes after the expiry and grace");
    assert!(stored(&app, &late_hash).await, "content a media item uses stays");
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_deleted_gallery_event_frees_its_file_and_thumbnail() {
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read,delete").await;
    app.device(&owner, "door").await;
    let (clip, thumb) = (bytes_of(8000, 7), bytes_of(700, 8));
    let form = Form::new()
        .text("name", "motion")
        .part("event", Part::bytes(clip.clone()).file_name("clip.mp4"))
        .part("thumbnail", Part::bytes(thumb.clone()).file_name("t.jpg"));
    let url = app.url("/api/gallery/door/upload");
    let answer: Value =
        app.client.post(url).bearer_auth(&owner.token).multipart(form).send().await.unwrap().json().await.unwrap();
    let event = answer["eventId"].as_str().unwrap().to_owned();
    let deleted = delete(&app, &format!("/api/gallery/door/events/{event}"), &owner.token).await;
    assert_eq!(deleted.status(), 200);

    assert_eq!(pass_after(&app, 1).await.collected_blobs, 0);
    let report = pass_after(&app, PAST_RETENTION).await;
    assert_eq!((report.purged_items, report.collected_blobs), (1, 2), "{report:?}");
    assert!(!stored(&app, &sha256_hex(&clip)).await && !stored(&app, &sha256_hex(&thumb)).await);
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_library_file_can_be_deleted_and_its_bytes_follow() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read,delete").await;
    let mallory = app.user("mallory", Level::Uploader, "upload,read,delete").await;
    let uploader_only = app.token_for(alice.user_id, "upload").await;
    let bytes = bytes_of(6000, 9);
    let file_id = session_upload(&app.address, &alice.token, &bytes).await;
    let path = format!("/api/files/{file_id}");

    expect_error(delete(&app, &path, &mallory.token).await, 404, "not_found").await;
    expect_error(delete(&app, &path, &uploader_only).await, 403, "forbidden").await;
    let deleted = delete(&app, &path, &alice.token).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap(), json!({"status": "success"}));
    expect_error(app.client.get(app.url(&path)).bearer_auth(&alice.token).send().await.unwrap(), 404, "not_found")
        .await;
    expect_error(delete(&app, &path, &alice.token).await, 404, "not_found").await;
    assert!(app.catalog().list_files(Some(alice.user_id)).await.unwrap().is_empty());

    assert_eq!(pass_after(&app, 1).await.collected_blobs, 0, "kept for the retention");
    assert!(stored(&app, &sha256_hex(&bytes)).await);
    assert_eq!(pass_after(&app, PAST_RETENTION).await.collected_blobs, 1);
    assert!(!stored(&app, &sha256_hex(&bytes)).await);
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_multipart_file_can_be_deleted_its_id_reused_and_its_bytes_follow() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read,delete").await;
    let mallory = app.user("mallory", Level::Uploader, "upload,read,delete").await;
    let put_file = |bytes: Vec<u8>| {
        let (app, token) = (&app, alice.token.clone());
        async move {
            let asked = app.client.get(app.url("/api/users/uploads/clip")).bearer_auth(&token).send().await;
            let info: Value = asked.unwrap().json().await.unwrap();
            let put = app.client.put(info["upload_url"].as_str().unwrap()).body(bytes).send().await.unwrap();
            assert_eq!(put.status(), 200);
        }
    };
    let (first, second) = (bytes_of(4000, 10), bytes_of(4000, 11));
    put_file(first.clone()).await;

    expect_error(delete(&app, "/api/users/files/clip", &mallory.token).await, 404, "not_found").await;
    let deleted = delete(&app, "/api/users/files/clip", &alice.token).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap(), json!({}));
    let fetched = app.client.get(app.url("/api/users/files/clip")).bearer_auth(&alice.token).send().await.unwrap();
    expect_error(fetched, 404, "not_found").await;

    // the id is free again
    put_file(second.clone()).await;
    let fetched = app.client.get(app.url("/api/users/files/clip")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &second[..]);

    assert_eq!(pass_after(&app, PAST_RETENTION).await.collected_blobs, 1);
    assert!(!stored(&app, &sha256_hex(&first)).await);
    assert!(stored(&app, &sha256_hex(&second)).await, "the file now under the id stays");
    assert_consistent(&app).await;
}

#[tokio::test]
async fn content_shared_by_two_accounts_stays_until_both_let_go() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read,delete").await;
    let bob = app.user("bob", Level::Uploader, "upload,read,delete").await;
    let bytes = bytes_of(7000, 12);
    let (a, b) = (
        session_upload(&app.address, &alice.token, &bytes).await,
        session_upload(&app.address, &bob.token, &bytes).await,
    );

    assert_eq!(delete(&app, &format!("/api/files/{a}"), &alice.token).await.status(), 200);
    assert_eq!(pass_after(&app, PAST_RETENTION).await.collected_blobs, 0);
    let fetched = app.client.get(app.url(&format!("/api/files/{b}"))).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &bytes[..], "bob's file is whole");
    assert!(!app.catalog().holds(alice.user_id, &Sha256Hex::of(&bytes)).await.unwrap(), "alice let go");

    assert_eq!(delete(&app, &format!("/api/files/{b}"), &bob.token).await.status(), 200);
    assert_eq!(pass_after(&app, PAST_RETENTION).await.collected_blobs, 1);
    assert!(!stored(&app, &sha256_hex(&bytes)).await);

    // uploaded again after collection: stored whole again
    let again = session_upload(&app.address, &alice.token, &bytes).await;
    let fetched = app.client.get(app.url(&format!("/api/files/{again}"))).bearer_auth(&alice.token).send().await;
    assert_eq!(fetched.unwrap().bytes().await.unwrap().as_ref(), &bytes[..]);
    assert_consistent(&app).await;
}

#[tokio::test]
async fn content_sent_again_after_a_delete_keeps_its_upload_expiry_when_the_tombstone_goes() {
    let app = spawn_app_with(|layer| {
        layer.insert("tombstone_retention", "1h".into());
    })
    .await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let photo = bytes_of(4000, 13);
    let hash = cam.upload(&photo).await;
    let id = json_of(cam.create("/a.jpg", &hash, 4000).await).await["media_id"].as_i64().unwrap();
    assert_eq!(
        delete(&app, &format!("/device/1/media_grant/{}/media/{id}", cam.grant), &owner.token).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    // sent again after the delete (a raw signed PUT: the device API would say it is held)
    let put = app.client.put(app.signed_put(owner.user_id, None, None)).body(photo.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);

    // two hours on the tombstone is gone, but the new upload has most of its 24 h left
    let report = app.state.lifecycle.pass(now_ms() + 2 * 3_600_000, true).await.unwrap();
    assert_eq!((report.purged_items, report.collected_blobs), (1, 0), "{report:?}");
    assert!(stored(&app, &hash).await);
    assert_eq!(cam.create("/a.jpg", &hash, 4000).await.status(), 200, "the late create still works");
}

#[tokio::test]
async fn one_pass_with_no_retention_frees_a_deleted_item_at_once() {
    // the server keeps its default retention and grace, so its own runner leaves this item
    // alone; the pass runs with none, as `FERRY_TOMBSTONE_RETENTION=0s FERRY_GC_GRACE=0s
    // ferry admin collect` does beside a stopped server
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let photo = bytes_of(3000, 14);
    let hash = cam.upload(&photo).await;
    let id = json_of(cam.create("/a.jpg", &hash, 3000).await).await["media_id"].as_i64().unwrap();
    assert_eq!(
        delete(&app, &format!("/device/1/media_grant/{}/media/{id}", cam.grant), &owner.token).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut config = (*app.state.config).clone();
    (config.tombstone_retention, config.gc_grace) = (Duration::ZERO, Duration::ZERO);
    let lifecycle = StorageLifecycle::new(app.catalog().clone(), app.state.store.clone(), &config);
    // what `ferry admin collect` does: one pass at the wall clock's time
    let report = lifecycle.pass(now_ms(), true).await.unwrap();
    assert_eq!((report.purged_items, report.released_holds, report.collected_blobs), (1, 1, 1), "{report:?}");
    assert!(!stored(&app, &hash).await);
}
