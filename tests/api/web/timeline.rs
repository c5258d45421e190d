//! `/api/timeline`: the account's items of every family in one newest-first list, paged by a
//! cursor, filtered, with content, thumbnails and deletes — by token and by the page's cookie.

use std::collections::BTreeSet;
use std::time::Duration;

use image::ImageFormat;
use serde_json::{Value, json};

use super::*;
use crate::device_client::DeviceClient;
use crate::media::files::{encode, picture};

/// One item of each family for `owner` (uploaded in this order, a few ms apart so the
/// newest-first order is certain): (timeline ids newest first).
async fn one_of_each(app: &TestApp, owner: &TestUser, cam: &DeviceClient<'_>) -> Vec<String> {
    let jpeg = encode(&picture(64, 48), ImageFormat::Jpeg);
    let png = encode(&picture(40, 30), ImageFormat::Png);
    let pause = || tokio::time::sleep(Duration::from_millis(5));
    // device media at a path of the volume
    let hash = cam.upload(&jpeg).await;
    let created = cam.create("/dcim/one.jpg", &hash, jpeg.len()).await;
    assert!(created.status().is_success());
    pause().await;
    // a gallery event
    let event = gallery_upload(app, &owner.token, "door.png", &png).await;
    pause().await;
    // a library file through an upload session
    let session: Value = app
        .client
        .post(app.url("/api/upload/id"))
        .bearer_auth(&owner.token)
        .form(&[("folder_id", "trip"), ("autofinish", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let part = reqwest::multipart::Part::bytes(bytes_of(3000, 7)).file_name("notes.bin");
    let ulid = session["ulid"].as_str().unwrap();
    let stored: Value = app
        .client
        .post(app.url(&format!("/api/file/{ulid}")))
        .bearer_auth(&owner.token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    pause().await;
    // a multipart-family file, with the family's single PUT
    let put: Value = app
        .client
        .get(app.url("/api/users/uploads/clip-1"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = app.client.put(put["upload_url"].as_str().unwrap()).body(bytes_of(2000, 9)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let uploads: Value = app
        .client
        .get(app.url("/api/timeline?source=multipart"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let multipart = uploads["items"][0]["id"].as_str().expect("the multipart file is listed").to_owned();
    let query = ferry::catalog::TimelineQuery { limit: 100, ..Default::default() };
    let items = app.catalog().timeline(owner.user_id, &query).await.unwrap();
    let media = items.iter().find(|i| i.kind == ferry::catalog::ItemKind::Media).unwrap();
    vec![
        multipart,
        format!("f.{}", stored["file_id"].as_str().unwrap()),
        format!("e.{event}"),
        format!("m.{}", media.id),
    ]
}

async fn timeline(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.client.get(app.url(&format!("/api/timeline{query}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn every_family_shows_in_one_timeline_newest_first_paged_and_filtered() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "ann", "/").await;
    let expected = one_of_each(&app, &owner, &cam).await;

    let all = timeline(&app, &owner.token, "").await;
    assert_eq!(ids(&all), expected, "{all}");
    assert_eq!(all["next"], Value::Null);
    let families: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["family"].as_str().unwrap()).collect();
    assert_eq!(families, ["multipart", "file", "event", "media"]);
    let sources: Vec<Value> = all["items"].as_array().unwrap().iter().map(|i| i["source"].clone()).collect();
    assert_eq!(sources[1], json!({"kind": "folder", "name": "trip"}));
    assert_eq!(sources[2], json!({"kind": "device", "name": "cam"}));
    assert_eq!(sources[3], json!({"kind": "volume", "name": "photos"}));
    let media = &all["items"][3];
    assert_eq!((media["name"].as_str(), media["content_type"].as_str()), (Some("/dcim/one.jpg"), Some("image/jpeg")));

    // pages of one follow each other with no item twice or missed
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    for _ in 0..10 {
        let page = timeline(&app, &owner.token, &query).await;
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // the sources the filter offers: every device, volume and folder, and multipart files
    let sources: Value =
        app.client.get(app.url("/api/sources")).bearer_auth(&owner.token).send().await.unwrap().json().await.unwrap();
    let filters: Vec<&str> =
        sources["sources"].as_array().unwrap().iter().map(|s| s["filter"].as_str().unwrap()).collect();
    assert_eq!(filters, ["device:cam", "folder:trip", "multipart", "volume:photos"], "{sources}");

    // filters: by source, and by type once media processing has classed the content
    assert_eq!(ids(&timeline(&app, &owner.token, "?source=device:cam").await), [expected[2].clone()]);
    assert_eq!(ids(&timeline(&app, &owner.token, "?source=folder:trip").await), [expected[1].clone()]);
    assert_eq!(ids(&timeline(&app, &owner.token, "?source=volume:photos").await), [expected[3].clone()]);
    app.state.jobs.run_until_idle().await.unwrap();
    let images: BTreeSet<String> = ids(&timeline(&app, &owner.token, "?type=image").await).into_iter().collect();
    assert_eq!(images, BTreeSet::from([expected[2].clone(), expected[3].clone()]));
    assert_eq!(ids(&timeline(&app, &owner.token, "?type=video").await), Vec::<String>::new());
    for bad in ["?cursor=nonsense", "?limit=0", "?limit=501", "?source=bucket:x", "?type=movie"] {
        let response =
            app.client.get(app.url(&format!("/api/timeline{bad}"))).bearer_auth(&owner.token).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }

    // another account sees none of it, by id either
    let bob = app.user("bob", ferry::domain::Level::Uploader, "read,delete").await;
    assert_eq!(timeline(&app, &bob.token, "").await["items"], json!([]));
    for id in &expected {
        let content = app
            .client
            .get(app.url(&format!("/api/timeline/{id}/original")))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        expect_error(content, 404, "not_found").await;
    }
}

#[tokio::test]
async fn an_items_content_thumbnail_and_deletion_follow_its_family() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "ann", "/").await;
    let expected = one_of_each(&app, &owner, &cam).await;
    app.state.jobs.run_until_idle().await.unwrap();
    let all = timeline(&app, &owner.token, "").await;

    // the original, with Range: what seeking in a video needs
    let event = &all["items"][2];
    let url = event["urls"]["original"].as_str().unwrap();
    let ranged =
        app.client.get(app.url(url)).bearer_auth(&owner.token).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-type"], "image/png");
    // what an uploader declared is never run as a page of Ferry's origin (the session's)
    assert_eq!(ranged.headers()["content-security-policy"], "sandbox");
    assert_eq!(ranged.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ranged.bytes().await.unwrap().len(), 10);
    // a thumbnail once media processing made one; none for a file that is no picture
    let thumbnail = app
        .client
        .get(app.url(event["urls"]["thumbnail"].as_str().unwrap()))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let notes = &all["items"][1];
    assert_eq!(notes["urls"]["thumbnail"], Value::Null, "{notes}");
    let none = app
        .client
        .get(app.url(&format!("/api/timeline/{}/thumbnail", expected[1])))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    expect_error(none, 404, "no_thumbnail").await;
    let nothing = app
        .client
        .get(app.url(&format!("/api/timeline/{}/poster", expected[1])))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    expect_error(nothing, 404, "not_found").await;

    // deleting needs the delete scope, and each family's delete happens
    let reader = app.token_for(owner.user_id, "read").await;
    let refused = app
        .client
        .delete(app.url(&format!("/api/timeline/{}", expected[0])))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    expect_error(refused, 403, "forbidden").await;
    for id in &expected {
        let deleted =
            app.client.delete(app.url(&format!("/api/timeline/{id}"))).bearer_auth(&owner.token).send().await.unwrap();
        assert_eq!(deleted.status(), 200, "{id}");
        let again =
            app.client.delete(app.url(&format!("/api/timeline/{id}"))).bearer_auth(&owner.token).send().await.unwrap();
        expect_error(again, 404, "not_found").await;
    }
    assert_eq!(timeline(&app, &owner.token, "").await["items"], json!([]));
    // the device's media is a tombstone its sync clients see, as a device delete leaves it
    let (items, _) = cam.feed_from(String::new(), 100).await;
    assert!(items.iter().any(|m| m["is_deleted"] == true), "{items:?}");
    let events: Vec<Value> = app
        .client
        .get(app.url("/api/gallery/cam/events"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(events.is_empty(), "the gallery family sees its event gone");
}

#[tokio::test]
async fn the_page_reads_the_timeline_with_its_cookie_and_deletes_with_its_csrf_token() {
    let app = spawn_app().await;
    let (owner, cam) = DeviceClient::setup(&app, "ann", "/").await;
    let expected = one_of_each(&app, &owner, &cam).await;
    let page = sign_in(&app, "link", &link(&app, owner.user_id, 60_000).await).await;
    let listed: Value = browser()
        .get(app.url("/api/timeline"))
        .header("cookie", page.cookie())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&listed), expected);
    let delete = format!("/api/timeline/{}", expected[0]);
    let forged = browser().delete(app.url(&delete)).header("cookie", page.cookie()).send().await.unwrap();
    expect_error(forged, 403, "csrf_refused").await;
    let deleted = browser()
        .delete(app.url(&delete))
        .header("cookie", page.cookie())
        .header("x-csrf-token", &page.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
}

#[tokio::test]
async fn a_full_page_of_the_largest_size_still_says_where_the_next_one_starts() {
    let app = spawn_app().await;
    let owner = app.user("ann", ferry::domain::Level::Uploader, "upload,read").await;
    app.device(&owner, "cam").await;
    for i in 0..501 {
        gallery_upload(&app, &owner.token, &format!("n{i}.bin"), format!("item {i}").as_bytes()).await;
    }
    let first = timeline(&app, &owner.token, "?limit=500").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 500);
    let next = first["next"].as_str().expect("a next page after 500 of 501");
    let last = timeline(&app, &owner.token, &format!("?limit=500&cursor={next}")).await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);
}
