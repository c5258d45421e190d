//! Device family: media create/update/delete, conflicts, download and the change feed.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status} {body}");
    body
}

#[tokio::test]
async fn create_is_idempotent_conflicts_show_the_current_state_and_delete_revive_works() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (one, two) = (bytes_of(1000, 1), bytes_of(2000, 2));
    let (h1, h2) = (cam.upload(&one).await, cam.upload(&two).await);

    let created = json_of(cam.create("/DCIM/a.jpg", &h1, 1000).await).await;
    let id = created["media_id"].as_i64().expect("media_id is an integer");
    let again = json_of(cam.create("/DCIM/a.jpg", &h1, 1000).await).await;
    assert_eq!(again["media_id"], id, "same path, same content: the existing id");

    let conflict = expect_error(cam.create("/DCIM/a.jpg", &h2, 2000).await, 409, "path_conflict").await;
    assert_eq!(conflict["media_id"], id);
    assert_eq!(conflict["media_path"], "/DCIM/a.jpg");
    assert_eq!(conflict["file_hash"], h1);
    assert_eq!(conflict["file_size"], 1000);
    assert_eq!(conflict["ctime"], "2026-01-02T03:04:05.000Z");
    assert_eq!(conflict["last_updated_user_id"], owner.user_id.0);
    assert!(conflict["last_updated_device_id"].is_i64());
    assert!(conflict["last_updated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(conflict["is_deleted"], false);

    let delete = app
        .client
        .delete(format!("{}?device_session_key={}", cam.url(&format!("media/{id}")), cam.key))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(delete).await, json!({}));
    let revived = json_of(cam.create("/DCIM/a.jpg", &h2, 2000).await).await;
    assert_eq!(revived["media_id"], id, "creating over a deleted path revives it");

    let stale = cam
        .post(
            &format!("media/{id}"),
            json!({"file_hash": h1, "file_size": 1000, "ctime": null, "mtime": null,
                                                         "expected_last_updated": "2001-01-01T00:00:00Z"}),
        )
        .await;
    let current = expect_error(stale, 409, "stale_update").await;
    assert_eq!(current["file_hash"], h2);
    let last = current["last_updated"].as_str().unwrap().to_owned();
    let updated = cam
        .post(
            &format!("media/{id}"),
            json!({"file_hash": h1, "file_size": 1000, "ctime": 1767323045, "mtime": null,
                                                           "expected_last_updated": last}),
        )
        .await;
    assert_eq!(json_of(updated).await, json!({}));
}

#[tokio::test]
async fn update_undeletes_and_delete_takes_the_owners_token() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(500, 3);
    let hash = cam.upload(&data).await;
    let id = json_of(cam.create("/x.bin", &hash, 500).await).await["media_id"].as_i64().unwrap();

    let by_token = app.client.delete(cam.url(&format!("media/{id}"))).bearer_auth(&owner.token).send().await.unwrap();
    assert_eq!(by_token.status(), 200);
    let by_user_key = app
        .client
        .delete(format!("{}?user_session_key={}", cam.url(&format!("media/{id}")), owner.token))
        .send()
        .await
        .unwrap();
    assert_eq!(by_user_key.status(), 200, "deleting twice is fine");
    let (feed, _) = cam.feed_from(String::new(), 100).await;
    assert_eq!(feed[0]["is_deleted"], true);

    let undeleted = cam.post(&format!("media/{id}"), json!({"file_hash": hash, "file_size": 500})).await;
    assert_eq!(undeleted.status(), 200);
    let (feed, _) = cam.feed_from(String::new(), 100).await;
    assert_eq!(feed[0]["is_deleted"], false);

    let stranger = app.user("eve", ferry::domain::Level::Admin, "upload,read,delete,admin").await;
    let other = app.client.delete(cam.url(&format!("media/{id}"))).bearer_auth(&stranger.token).send().await.unwrap();
    expect_error(other, 404, "no_such_grant").await;
    let no_scope_token = app.token_for(owner.user_id, "read").await;
    let no_scope =
        app.client.delete(cam.url(&format!("media/{id}"))).bearer_auth(&no_scope_token).send().await.unwrap();
    expect_error(no_scope, 403, "forbidden").await;
    let missing =
        app.client.delete(format!("{}?device_session_key={}", cam.url("media/99999"), cam.key)).send().await.unwrap();
    expect_error(missing, 404, "no_such_media").await;
}

#[tokio::test]
async fn paths_are_checked_against_the_rules_and_the_prefix() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/DCIM").await;
    let data = bytes_of(100, 4);
    let hash = cam.upload(&data).await;
    for bad in ["DCIM/a", "/DCIM//a", "/DCIM/a/", "/DCIM/./a", "/DCIM/../a", "/DCIM/a\u{0}b", "/DCIM/a\nb", "/"] {
        expect_error(cam.create(bad, &hash, 100).await, 400, "invalid_path").await;
    }
    for outside in ["/Other/a.jpg", "/DCIMX/a.jpg"] {
        expect_error(cam.create(outside, &hash, 100).await, 403, "outside_grant").await;
    }
    assert_eq!(cam.create("/DCIM/2026/a.jpg", &hash, 100).await.status(), 200);
    expect_error(cam.create("/DCIM/b.jpg", &hash, 101).await, 400, "unknown_content").await;
    let bad_time = cam
        .post("media", json!({"media_path": "/DCIM/c.jpg", "file_hash": hash, "file_size": 100, "ctime": "yesterday"}))
        .await;
    expect_error(bad_time, 400, "invalid_time").await;
}

#[tokio::test]
async fn concurrent_creates_of_one_path() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (one, two) = (bytes_of(700, 5), bytes_of(800, 6));
    let (h1, h2) = (cam.upload(&one).await, cam.upload(&two).await);

    let (a, b) = tokio::join!(cam.create("/same.jpg", &h1, 700), cam.create("/same.jpg", &h1, 700));
    let (a, b) = (json_of(a).await, json_of(b).await);
    assert_eq!(a["media_id"], b["media_id"], "same content: both succeed with one media_id");

    let (a, b) = tokio::join!(cam.create("/race.jpg", &h1, 700), cam.create("/race.jpg", &h2, 800));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let (winner, loser) = if a.status() == 200 { (a, b) } else { (b, a) };
    let winner: Value = winner.json().await.unwrap();
    let loser: Value = loser.json().await.unwrap();
    assert_eq!(loser["media_id"], winner["media_id"], "the 409 shows the winner's state");
}

#[tokio::test]
async fn download_gives_signed_range_urls_for_this_volume_only() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(100_000, 7);
    let hash = cam.upload(&data).await;
    let unused = cam.upload(&bytes_of(10, 8)).await; // held but in no media item
    let id = json_of(cam.create("/v.mp4", &hash, data.len()).await).await["media_id"].as_i64().unwrap();

    let answer = cam.post_ok("download", json!({"hash_list": [hash, unused]})).await;
    let entry = &answer["download_list"][0];
    assert_eq!(entry["file_size"], 100_000);
    assert_eq!(entry["chunk_size"], 0);
    assert_eq!(entry["is_deleted"], false);
    let url = entry["url"].as_str().unwrap();
    let part = app.client.get(url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[10..20]);
    assert_eq!(answer["download_list"][1]["url"], Value::Null, "content in no item of the volume");

    app.client
        .delete(format!("{}?device_session_key={}", cam.url(&format!("media/{id}")), cam.key))
        .send()
        .await
        .unwrap();
    let after = cam.post_ok("download", json!({"hash_list": [hash]})).await;
    assert_eq!(after["download_list"][0]["is_deleted"], true);
    expect_error(cam.post("download", json!({"hash_list": ["nope"]})).await, 400, "invalid_hash").await;
}

#[tokio::test]
async fn the_change_feed_pages_every_change_once_under_concurrent_writers() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let data = bytes_of(64, 9);
    let hash = cam.upload(&data).await;

    let empty = cam.post_ok("media_list", json!({})).await;
    assert_eq!(empty, json!({"media_list": [], "next_cursor": "0", "has_more": false}));

    // writers create 4 × 30 items while a reader pages the feed
    let writers = async {
        let tasks = (0..4).map(|w| {
            let cam = &cam;
            let hash = &hash;
            async move {
                for i in 0..30 {
                    assert_eq!(cam.create(&format!("/w{w}/{i}.jpg"), hash, 64).await.status(), 200);
                }
            }
        });
        futures_util::future::join_all(tasks).await;
    };
    let reader = async {
        let mut cursor = String::new();
        let mut seen = Vec::new();
        for _ in 0..200 {
            let (items, next) = cam.feed_from(cursor.clone(), 7).await;
            seen.extend(items);
            cursor = next;
            tokio::task::yield_now().await;
        }
        (seen, cursor)
    };
    let ((), (mut seen, cursor)) = tokio::join!(writers, reader);
    let (rest, _) = cam.feed_from(cursor, 7).await;
    seen.extend(rest);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for item in &seen {
        *counts.entry(item["media_path"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(counts.len(), 120, "every create seen");
    assert!(counts.values().all(|n| *n == 1), "each create seen exactly once");

    // updates and deletes appear after the point a synced client reached
    let (_, synced) = cam.feed_from(String::new(), 1000).await;
    let first_id = seen[0]["media_id"].as_i64().unwrap();
    app.client
        .delete(format!("{}?device_session_key={}", cam.url(&format!("media/{first_id}")), cam.key))
        .send()
        .await
        .unwrap();
    let (changes, _) = cam.feed_from(synced, 1000).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["media_id"], first_id);
    assert_eq!(changes[0]["is_deleted"], true, "tombstones are in the feed");

    for (body, code) in [
        (json!({"limit": 0}), "invalid_limit"),
        (json!({"limit": 1001}), "invalid_limit"),
        (json!({"cursor": "abc"}), "invalid_cursor"),
    ] {
        expect_error(cam.post("media_list", body).await, 400, code).await;
    }
}

#[tokio::test]
async fn tombstones_past_retention_release_their_bytes() {
    let app = spawn_app_with(|layer| {
        layer.insert("tombstone_retention", "0s".into());
        layer.insert("gc_grace", "0s".into());
    })
    .await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (gone, kept) = (bytes_of(300, 10), bytes_of(300, 11));
    let (hg, hk) = (cam.upload(&gone).await, cam.upload(&kept).await);
    let id = json_of(cam.create("/gone", &hg, 300).await).await["media_id"].as_i64().unwrap();
    json_of(cam.create("/kept", &hk, 300).await).await;
    app.client
        .delete(format!("{}?device_session_key={}", cam.url(&format!("media/{id}")), cam.key))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    app.state.jobs.run_until_idle().await.unwrap();
    let (feed, _) = cam.feed_from(String::new(), 100).await;
    assert_eq!(feed.len(), 1, "the tombstone is purged from the feed");
    let files = app.blob_files();
    assert_eq!(files.len(), 1, "the deleted item's bytes are collected, the live one's kept");
    assert_eq!(std::fs::read(&files[0]).unwrap(), kept);
    let check = cam.post_ok("upload", json!({"file_list": [{"file_hash": hg, "file_size": 300}]})).await;
    assert_ne!(check["upload_list"][0]["skip_upload"], true, "the hold went with the tombstone");
}
