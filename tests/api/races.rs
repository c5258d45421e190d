//! State changes two requests can race (issue 27), each run many times (a bounded loop) with
//! the invariant checked every round: an acknowledged upload is never lost, the final state
//! is one a sequential order could have produced, and no row is left without its bytes.
//! (Completion against abort or completion, and a session finish against an upload, are in
//! upload_races.rs.)

use std::future::Future;

use ferry::domain::Level;
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::lifecycle::{PAST_RETENTION, assert_consistent, pass_after, session_upload, stored};
use crate::tus::{OCTETS, Tus};

const ROUNDS: usize = 24;

/// Runs `first` and `second` at once, one of them started a little later: the other one on
/// odd rounds, by a delay that grows with the round (0 to 11 steps of `step`; tokio's timer
/// rounds up to whole milliseconds), so that across the rounds each lands before, inside and
/// after the other.
pub(crate) async fn staggered<A: Future, B: Future>(round: usize, first: A, second: B) -> (A::Output, B::Output) {
    staggered_by(std::time::Duration::from_micros(250), round, first, second).await
}

async fn staggered_by<A: Future, B: Future>(
    step: std::time::Duration,
    round: usize,
    first: A,
    second: B,
) -> (A::Output, B::Output) {
    let delay = step * (round / 2 % 12) as u32;
    let (first_waits, second_waits) = match round.is_multiple_of(2) {
        true => (std::time::Duration::ZERO, delay),
        false => (delay, std::time::Duration::ZERO),
    };
    tokio::join!(
        async {
            tokio::time::sleep(first_waits).await;
            first.await
        },
        async {
            tokio::time::sleep(second_waits).await;
            second.await
        }
    )
}

/// The item at `path` in the device's change feed.
async fn item_at(cam: &DeviceClient<'_>, path: &str) -> Value {
    let (items, _) = cam.feed_from(String::new(), 500).await;
    let mut found = items.into_iter().filter(|i| i["media_path"] == path).collect::<Vec<_>>();
    found.pop().unwrap_or_else(|| panic!("{path} is not in the feed"))
}

#[tokio::test]
async fn a_media_create_racing_a_delete_at_the_same_path_ends_as_one_order_would() {
    let app = spawn_app().await;
    let (_alice, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (mut revived, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let path = format!("/race-{round}.jpg");
        let first = bytes_of(1000 + round, round as u64);
        let first_hash = cam.upload(&first).await;
        let created: Value = cam.create(&path, &first_hash, first.len()).await.json().await.unwrap();
        let media_id = created["media_id"].clone();
        let second = bytes_of(3000 + round, 100 + round as u64);
        let second_hash = cam.upload(&second).await;

        let delete_url = format!("{}?device_session_key={}", cam.url(&format!("media/{media_id}")), cam.key);
        let delete = app.client.delete(&delete_url).send();
        let create = cam.create(&path, &second_hash, second.len());
        let (created, deleted) = staggered(round, create, delete).await;
        assert_eq!(deleted.unwrap().status(), 200, "round {round}: the delete");
        let item = item_at(&cam, &path).await;
        match created.status().as_u16() {
            // only over the deleted path: the delete came first and the create revived it
            200 => {
                revived += 1;
                assert_eq!(item["is_deleted"], false, "round {round}: {item}");
                assert_eq!(item["file_hash"], second_hash.as_str(), "round {round}: {item}");
                let answer = cam.post_ok("download", json!({"hash_list": [second_hash]})).await;
                let url = answer["download_list"][0]["url"].as_str().unwrap().to_owned();
                assert_eq!(app.client.get(url).send().await.unwrap().bytes().await.unwrap(), second);
            }
            // the path held the first content: the create was refused, then the delete went through
            409 => {
                refused += 1;
                assert_eq!(item["is_deleted"], true, "round {round}: {item}");
                assert_eq!(item["file_hash"], first_hash.as_str(), "round {round}: {item}");
            }
            other => panic!("round {round}: the create answered {other}: {}", created.text().await.unwrap()),
        }
    }
    assert_eq!(revived + refused, ROUNDS);
    eprintln!("create after delete: {revived} rounds, create refused before delete: {refused} rounds");
    assert!(revived > 0 && refused > 0, "both orders happen");
    assert_consistent(&app).await;
}

#[tokio::test]
async fn a_tus_patch_racing_its_termination_keeps_what_it_acknowledged_and_leaves_no_staging() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..ROUNDS {
        let body = bytes_of(64 * 1024 + round, round as u64);
        let url = tus.create(body.len(), "").await;
        let patch = tus
            .request(reqwest::Method::PATCH, &url)
            .header("upload-offset", "0")
            .header("content-type", OCTETS)
            .body(body.clone())
            .send();
        let terminate = tus.request(reqwest::Method::DELETE, &url).send();
        let (patched, terminated) = staggered(round, patch, terminate).await;
        let (patched, terminated) = (patched.unwrap(), terminated.unwrap());
        let (patch_status, end_status) = (patched.status().as_u16(), terminated.status().as_u16());
        *outcomes.entry((patch_status, end_status)).or_insert(0) += 1;
        let stored = patched.headers().get("ferry-location").map(|l| l.to_str().unwrap().to_owned());
        let patch_text = patched.text().await.unwrap();
        assert!(
            [204, 404, 409, 410, 423].contains(&patch_status) && [204, 404, 423].contains(&end_status),
            "round {round}: PATCH {patch_status} {patch_text}, DELETE {end_status}"
        );
        if end_status == 204 {
            let head = tus.request(reqwest::Method::HEAD, &url).send().await.unwrap();
            assert!([404, 410].contains(&head.status().as_u16()), "round {round}: terminated, HEAD {}", head.status());
        }
        // an upload whose last byte was acknowledged is a stored file, whatever happened to the upload
        if let Some(location) = stored {
            assert_eq!(patch_status, 204);
            let file = app.client.get(location).bearer_auth(&tus.token).send().await.unwrap();
            assert_eq!(file.bytes().await.unwrap(), body, "round {round}: the acknowledged file");
        }
    }
    assert!(app.staging_left_behind().await.is_empty(), "staging left: {:?}", app.staging_files());
    // a terminated upload's staging goes with it; a completed one's became its file
    assert!(app.upload_staging_files().is_empty(), "upload staging left: {:?}", app.upload_staging_files());
    assert_consistent(&app).await;
    eprintln!("PATCH/DELETE outcomes (statuses: rounds): {outcomes:?}");
    assert!(outcomes.len() >= 2, "both orders happen: {outcomes:?}");
}

#[tokio::test]
async fn a_collection_racing_an_upload_of_the_same_content_never_loses_the_upload() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read,delete").await;
    let mut collected_first = std::collections::BTreeMap::new();
    for round in 0..ROUNDS {
        let content = bytes_of(5000 + round, 7000 + round as u64);
        // stored, deleted: its content waits to be collected
        let old = session_upload(&app.address, &alice.token, &content).await;
        let deleted = app.client.delete(app.url(&format!("/api/files/{old}"))).bearer_auth(&alice.token).send();
        assert_eq!(deleted.await.unwrap().status(), 200);
        // the item's tombstone and the account's hold go; the blob is left a collection candidate
        let later = ferry::clock::now_ms() + PAST_RETENTION * 86_400_000;
        app.state.lifecycle.pass(later, false).await.unwrap();
        assert!(stored(&app, &sha256_hex(&content)).await, "round {round}: still stored before the race");

        // at once: the collection and a new upload of the same content (a multipart-family
        // single PUT: a session would itself expire in the pass's simulated month)
        let name = format!("again-{round}");
        let target = app.client.get(app.url(&format!("/api/users/uploads/{name}"))).bearer_auth(&alice.token).send();
        let target: Value = target.await.unwrap().json().await.unwrap();
        let upload = app.client.put(target["upload_url"].as_str().unwrap()).body(content.clone()).send();
        let upload = async { upload.await.unwrap() };
        // an upload takes longer than a collection step: wider steps, so it also comes first
        let step = std::time::Duration::from_millis(2);
        // The racing pass runs as if two hours had gone by: past the old content's collection
        // grace (1 h), within the new upload's hold (24 h). A simulated month would also expire
        // the hold of an upload still between its commit and its file row, which no real
        // upload lasts (it takes milliseconds there), and its file would then refer to nothing.
        let collection = app.state.lifecycle.pass(ferry::clock::now_ms() + 2 * 3_600_000, true);
        let collection = async { collection.await.unwrap() };
        let (uploaded, pass) = staggered_by(step, round, upload, collection).await;
        *collected_first.entry(pass.collected_blobs).or_insert(0) += 1;
        assert_eq!(uploaded.status(), 200, "round {round}: {}", uploaded.text().await.unwrap());
        // whatever the order, the acknowledged upload's bytes are there, now and after more passes
        pass_after(&app, 0).await;
        let file = app.client.get(app.url(&format!("/api/users/files/{name}"))).bearer_auth(&alice.token).send();
        let file = file.await.unwrap();
        assert_eq!(file.status(), 200, "round {round}");
        assert_eq!(file.bytes().await.unwrap(), content, "round {round}: the acknowledged upload");
    }
    assert_consistent(&app).await;
    // rounds where the pass collected the old blob before the upload stored it again (1), and
    // where the upload's hold came first and kept it (0): both orders were tried
    eprintln!("blobs the racing pass collected: rounds by count {collected_first:?}");
    assert!(collected_first.len() == 2, "both orders happen: {collected_first:?}");
}

#[tokio::test]
async fn a_termination_while_a_patch_is_writing_is_refused_and_the_patch_completes() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(4000, 9);
    let url = tus.create(body.len(), "").await;
    let patch = tus.request(reqwest::Method::PATCH, &url).header("upload-offset", "0").header("content-type", OCTETS);
    let (feed, answer) = crate::in_flight::in_flight(patch, body[..1000].to_vec()).await;
    let refused = tus.request(reqwest::Method::DELETE, &url).send().await.unwrap();
    expect_error(refused, 423, "upload_locked").await;
    feed.send(Ok(body[1000..].to_vec())).await.unwrap();
    drop(feed);
    let patched = answer.await.unwrap().unwrap();
    assert_eq!(patched.status(), 204);
    let location = patched.headers()["ferry-location"].to_str().unwrap().to_owned();
    let file = app.client.get(location).bearer_auth(&tus.token).send().await.unwrap();
    assert_eq!(file.bytes().await.unwrap(), body, "the PATCH the DELETE waited for is stored whole");
    // once it has ended, the upload can be terminated
    assert_eq!(tus.request(reqwest::Method::DELETE, &url).send().await.unwrap().status(), 204);
    assert!(app.staging_left_behind().await.is_empty() && app.upload_staging_files().is_empty());
}

#[tokio::test]
async fn removing_a_user_while_a_patch_writes_is_a_conflict_that_changes_nothing() {
    use ferry::accounts::{RemovalError, Remover};
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(4000, 21);
    let url = tus.create(body.len(), "").await;
    let patch = tus.request(reqwest::Method::PATCH, &url).header("upload-offset", "0").header("content-type", OCTETS);
    let (feed, answer) = crate::in_flight::in_flight(patch, body[..1000].to_vec()).await;
    let remover = Remover { catalog: app.catalog().as_ref(), uploads: &app.state.uploads, tus: &app.state.tus };
    let refused = remover.remove(ferry::catalog::Removed::User(tus.user), tus.user).await;
    assert!(matches!(refused, Err(RemovalError::Writing(_))), "{:?}", refused.map(|r| r.report));
    // nothing was removed: the PATCH completes and its file is there
    feed.send(Ok(body[1000..].to_vec())).await.unwrap();
    drop(feed);
    let patched = answer.await.unwrap().unwrap();
    assert_eq!(patched.status(), 204);
    let location = patched.headers()["ferry-location"].to_str().unwrap().to_owned();
    let file = app.client.get(location).bearer_auth(&tus.token).send().await.unwrap();
    assert_eq!(file.bytes().await.unwrap(), body);
    // and once it has ended, the removal goes through
    assert!(remover.remove(ferry::catalog::Removed::User(tus.user), tus.user).await.is_ok());
}
