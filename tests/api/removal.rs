//! Removing users, devices and volumes (issue 30): their credentials stop working at once,
//! their media go with them and the content follows the storage rules (kept for the retention
//! where the account stays, collected when nobody holds it), uploads in flight end without
//! leaving staged bytes, and their names can be used again.

use ferry::accounts::{Removal, Remover};
use ferry::catalog::Removed;
use ferry::domain::{DeviceId, Level, UserId};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::device_multipart::{CHUNK, FILE_HASH, SIZE, file_and_plan};
use crate::helpers::*;
use crate::lifecycle::{PAST_RETENTION, assert_consistent, pass_after, session_upload, stored};
use crate::tus::Tus;

async fn remove(app: &TestApp, what: Removed, owner: UserId) -> Removal {
    let remover = Remover { catalog: app.catalog().as_ref(), uploads: &app.state.uploads, tus: &app.state.tus };
    remover.remove(what, owner).await.unwrap()
}

/// A gallery event with a thumbnail for `device`; (event id, its file, its thumbnail).
async fn gallery_event(app: &TestApp, token: &str, device: &str, seed: u64) -> (String, Vec<u8>, Vec<u8>) {
    let (clip, thumb) = (bytes_of(8000, seed), bytes_of(700, seed + 1));
    let form = Form::new()
        .text("name", "motion")
        .part("event", Part::bytes(clip.clone()).file_name("clip.mp4"))
        .part("thumbnail", Part::bytes(thumb.clone()).file_name("t.jpg"));
    let url = app.url(&format!("/api/gallery/{device}/upload"));
    let answer: Value =
        app.client.post(url).bearer_auth(token).multipart(form).send().await.unwrap().json().await.unwrap();
    (answer["eventId"].as_str().unwrap().to_owned(), clip, thumb)
}

async fn device_id(app: &TestApp, key: &str) -> DeviceId {
    let hash = ferry::auth::secrets::hash(key);
    app.catalog().device_by_key_hash(&hash).await.unwrap().unwrap().0.device_id
}

#[tokio::test]
async fn a_removed_device_loses_its_key_events_and_uploads_in_flight_but_its_volume_keeps_its_media() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let photo = bytes_of(5000, 31);
    let photo_hash = cam.upload(&photo).await;
    assert_eq!(cam.create("/a.jpg", &photo_hash, 5000).await.status(), 200);
    let (_, clip, thumb) = gallery_event(&app, &owner.token, "cam", 32).await;
    // a large file half sent through the device family's parts
    let (data, plan) = file_and_plan();
    let started = cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
    let first = started["signed_url_list"][0]["url"].as_str().unwrap();
    let put = app.client.put(first).body(data[..CHUNK].to_vec()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(app.upload_staging_files().len(), 1);

    let removal = remove(&app, Removed::Device(device_id(&app, &cam.key).await), owner.user_id).await;
    let report = &removal.report;
    assert_eq!((report.devices, report.grants, report.media_items, report.volumes), (1, 1, 1, 0), "{report:?}");
    assert_eq!(removal.ended_uploads, 1);
    assert!(app.upload_staging_files().is_empty(), "the half-sent upload's parts are gone");

    // a server caches who a credential is for under a second (auth::cache)
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL).await;
    let check = cam.post("upload", json!({"file_list": [{"file_hash": photo_hash, "file_size": 5000}]})).await;
    expect_error(check, 403, "unauthorized").await; // the device family's answer to a bad key
    let events = app.client.get(app.url("/api/gallery/cam/events")).bearer_auth(&owner.token);
    expect_error(events.send().await.unwrap(), 404, "no_such_device").await;

    // the volume and its media stay: another device mounting it sees the photo
    let phone = app.device(&owner, "phone").await;
    let grant = app.grant(&owner, &phone, "photos", "/").await;
    let phone = DeviceClient { app: &app, key: phone.key, grant };
    let listed = phone.post_ok("media_list", json!({"cursor": "", "limit": 10})).await;
    assert_eq!(listed["media_list"][0]["media_path"], "/a.jpg", "{listed}");

    // the event's content follows the retention of every delete, then goes
    // (a client's thumbnail is nobody's hold: it goes with its event, after the grace)
    assert_eq!(pass_after(&app, 1).await.collected_blobs, 1);
    assert!(stored(&app, &sha256_hex(&clip)).await && !stored(&app, &sha256_hex(&thumb)).await);
    pass_after(&app, PAST_RETENTION).await;
    assert!(!stored(&app, &sha256_hex(&clip)).await && !stored(&app, &sha256_hex(&thumb)).await);
    assert!(stored(&app, &photo_hash).await, "the volume's photo stays");
    app.device(&owner, "cam").await; // the name is free again
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_removed_volume_takes_its_media_and_grants_and_content_used_elsewhere_stays() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (shared, only_here, tombstoned) = (bytes_of(3000, 41), bytes_of(3000, 42), bytes_of(3000, 43));
    let hashes: Vec<String> = [&shared, &only_here, &tombstoned].iter().map(|b| sha256_hex(b)).collect();
    for (n, bytes) in [&shared, &only_here, &tombstoned].iter().enumerate() {
        cam.upload(bytes).await;
        assert_eq!(cam.create(&format!("/{n}.jpg"), &hashes[n], 3000).await.status(), 200);
    }
    let listed = cam.post_ok("media_list", json!({"cursor": "", "limit": 10})).await;
    let gone = listed["media_list"].as_array().unwrap().iter().find(|m| m["media_path"] == "/2.jpg").unwrap().clone();
    let url = app.url(&format!("/device/1/media_grant/{}/media/{}", cam.grant, gone["media_id"]));
    assert_eq!(app.client.delete(url).bearer_auth(&owner.token).send().await.unwrap().status(), 200);
    // another volume of the account uses the shared content too
    let archive = app.device(&owner, "archive").await;
    let archive_grant = app.grant(&owner, &archive, "docs", "/").await;
    let archive = DeviceClient { app: &app, key: archive.key, grant: archive_grant };
    assert_eq!(archive.create("/copy.jpg", &hashes[0], 3000).await.status(), 200);

    let photos = app.catalog().volume_by_name(owner.user_id, "photos").await.unwrap().unwrap();
    let report = remove(&app, Removed::Volume(photos.volume_id), owner.user_id).await.report;
    assert_eq!((report.media_items, report.grants, report.volumes, report.devices), (2, 1, 1, 0), "{report:?}");
    expect_error(cam.post("media_list", json!({"cursor": "", "limit": 10})).await, 404, "no_such_grant").await;

    pass_after(&app, PAST_RETENTION).await;
    assert!(stored(&app, &hashes[0]).await, "content another volume uses stays");
    assert!(!stored(&app, &hashes[1]).await && !stored(&app, &hashes[2]).await);
    let usage = app.catalog().usage(Some(owner.user_id)).await.unwrap().pop().unwrap();
    assert_eq!((usage.media_items, usage.held_bytes), (1, 3000), "{usage:?}");
    let later = app.device(&owner, "later").await;
    app.grant(&owner, &later, "photos", "/").await; // the name is free again
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_removed_user_loses_everything_and_content_only_it_held_is_collected() {
    let app = spawn_app().await;
    let (alice, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let photo = bytes_of(4000, 51);
    let photo_hash = cam.upload(&photo).await;
    assert_eq!(cam.create("/a.jpg", &photo_hash, 4000).await.status(), 200);
    let (shared, only_alice) = (bytes_of(6000, 52), bytes_of(6000, 53));
    session_upload(&app.address, &alice.token, &shared).await;
    session_upload(&app.address, &alice.token, &only_alice).await;
    let (_, clip, _) = gallery_event(&app, &alice.token, "cam", 54).await;
    let bob = app.user("bob", Level::Uploader, "upload,read").await;
    session_upload(&app.address, &bob.token, &shared).await;
    // a tus upload half sent
    let tus = Tus { app: &app, token: alice.token.clone(), user: alice.user_id };
    let location = tus.create(10_000, "").await;
    assert_eq!(tus.patch(&location, 0, bytes_of(4000, 55)).await.status(), 204);
    assert!(!app.upload_staging_files().is_empty());
    // a pass a day later has looked at everything fresh once (the thumbnail, nobody's hold,
    // was kept for its event): only the removal can make it go
    pass_after(&app, 1).await;

    let removal = remove(&app, Removed::User(alice.user_id), alice.user_id).await;
    let report = &removal.report;
    assert_eq!((report.devices, report.volumes, report.grants), (1, 1, 1), "{report:?}");
    assert_eq!(report.media_items, 4, "a photo, two library files, a gallery event: {report:?}");
    assert_eq!((report.tokens, removal.ended_uploads), (1, 1), "{report:?}");
    assert!(app.upload_staging_files().is_empty(), "the tus upload's bytes are gone");

    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL).await;
    let me = app.client.get(app.url("/api/usage")).bearer_auth(&alice.token).send().await.unwrap();
    expect_error(me, 401, "unauthorized").await;
    let check = cam.post("upload", json!({"file_list": [{"file_hash": photo_hash, "file_size": 4000}]})).await;
    expect_error(check, 403, "unauthorized").await;

    // nobody holds alice's own content any more: collected after the grace, not the retention
    let report = pass_after(&app, 1).await;
    assert_eq!(report.collected_blobs, 4, "photo, her own file, the event's file and thumbnail: {report:?}");
    assert!(!stored(&app, &photo_hash).await && !stored(&app, &sha256_hex(&only_alice)).await);
    assert!(!stored(&app, &sha256_hex(&clip)).await);
    assert!(stored(&app, &sha256_hex(&shared)).await, "bob still holds the shared file");

    // the name is free again, and the new alice starts from nothing
    let again = app.user("alice", Level::Uploader, "upload,read").await;
    let usage = app.catalog().usage(Some(again.user_id)).await.unwrap().pop().unwrap();
    assert_eq!((usage.media_items, usage.held_bytes), (0, 0), "{usage:?}");
    assert_consistent(&app).await;
}

#[test]
fn admin_removes_only_when_told_and_renames_with_json_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["alice", "bob"] {
        assert_eq!(admin_json(d, &["user", "add", name, "--level", "uploader"]).0, 0);
    }
    assert_eq!(admin_json(d, &["device", "add", "--user", "alice", "--name", "cam"]).0, 0);
    assert_eq!(admin_json(d, &["volume", "add", "photos", "--user", "alice"]).0, 0);

    let (code, taken) = admin_json(d, &["user", "rename", "alice", "bob"]);
    assert_eq!((code, taken["error"].as_str()), (1, Some("conflict")), "{taken}");
    let (code, renamed) = admin_json(d, &["user", "rename", "alice", "carol"]);
    assert_eq!((code, &renamed["name"]), (0, &json!("carol")), "{renamed}");
    let (code, renamed) = admin_json(d, &["device", "rename", "carol/cam", "door"]);
    assert_eq!((code, &renamed["device_name"]), (0, &json!("door")), "{renamed}");
    let (code, renamed) = admin_json(d, &["volume", "rename", "photos", "pics", "--user", "carol"]);
    assert_eq!((code, &renamed["name"]), (0, &json!("pics")), "{renamed}");
    let (code, bad) = admin_json(d, &["volume", "rename", "pics", "no/slash", "--user", "carol"]);
    assert_eq!((code, bad["error"].as_str()), (1, Some("invalid_argument")), "{bad}");

    let (code, unconfirmed) = admin_json(d, &["user", "remove", "carol"]);
    assert_eq!((code, unconfirmed["error"].as_str()), (1, Some("invalid_argument")), "{unconfirmed}");
    assert!(unconfirmed["message"].as_str().unwrap().contains("--yes"), "{unconfirmed}");
    assert_eq!(admin_json(d, &["user", "list"]).1["items"].as_array().unwrap().len(), 2, "nothing removed");

    let incoming = d.join("gallery/1/1/incoming"); // what `paths` made for carol's door
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(incoming.join("late.jpg"), b"dropped").unwrap();
    let (code, removed) = admin_json(d, &["user", "remove", "carol", "--yes"]);
    assert_eq!(code, 0, "{removed}");
    for (key, value) in [("name", json!("carol")), ("devices", json!(1)), ("volumes", json!(1)), ("tokens", json!(0))] {
        assert_eq!(removed[key], value, "{key} in {removed}");
    }
    let (code, gone) = admin_json(d, &["user", "remove", "carol", "--yes"]);
    assert_eq!((code, gone["error"].as_str()), (1, Some("not_found")), "{gone}");
    assert!(!d.join("gallery/1").exists(), "the account's gallery folders went with it");
    assert_eq!(admin_json(d, &["device", "list"]).1["items"], json!([]));
    assert_eq!(admin_json(d, &["volume", "list"]).1["items"], json!([]));
}
