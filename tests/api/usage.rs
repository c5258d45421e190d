//! Usage and quotas (issue 22): what each account stores through every family, what dedup
//! saves, and a quota that holds under concurrent uploads, refused in each family's shape.

use ferry::clock::now_ms;
use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::lifecycle::session_upload;

async fn usage_of(app: &TestApp, token: &str) -> Value {
    let response = app.client.get(app.url("/api/usage")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn usage(items: i64, logical: i64, held: i64, pending: i64, quota: Option<i64>) -> Value {
    json!({"media_items": items, "logical_bytes": logical, "held_bytes": held,
           "deleted_bytes_pending": pending, "quota_bytes": quota})
}

/// A session of the session family.
async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let registered = app.client.post(app.url("/api/upload/id")).bearer_auth(token).json(&body).send().await;
    registered.unwrap().json().await.unwrap()
}

async fn post_form(app: &TestApp, url: &str, token: &str, form: Form) -> reqwest::Response {
    app.client.post(url).bearer_auth(token).multipart(form).send().await.unwrap()
}

/// A single PUT of the multipart family under `file_id`.
async fn put_file(app: &TestApp, token: &str, file_id: &str, bytes: Vec<u8>) -> reqwest::Response {
    let asked = app.client.get(app.url(&format!("/api/users/uploads/{file_id}"))).bearer_auth(token).send().await;
    let info: Value = asked.unwrap().json().await.unwrap();
    app.client.put(info["upload_url"].as_str().unwrap()).body(bytes).send().await.unwrap()
}

#[tokio::test]
async fn usage_counts_every_family_what_dedup_saves_and_what_deletes_free() {
    let app = spawn_app().await;
    let (alice, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (a, b, c) = (bytes_of(1000, 1), bytes_of(2000, 2), bytes_of(3000, 3));
    let hash = cam.upload(&a).await;
    let created: Value = cam.create("/a", &hash, 1000).await.json().await.unwrap();
    let id = created["media_id"].as_i64().unwrap();
    session_upload(&app.address, &alice.token, &b).await;
    assert_eq!(put_file(&app, &alice.token, "c", c.clone()).await.status(), 200);
    assert_eq!(usage_of(&app, &alice.token).await, usage(3, 6000, 6000, 0, None));
    assert_eq!(app.catalog().server_usage().await.unwrap().dedup_saved_bytes, 0);

    // the device's file again, as a library file: one more item, nothing more held
    let again = session_upload(&app.address, &alice.token, &a).await;
    assert_eq!(usage_of(&app, &alice.token).await, usage(4, 7000, 6000, 0, None));
    let server = app.catalog().server_usage().await.unwrap();
    assert_eq!((server.blobs, server.physical_bytes, server.dedup_saved_bytes), (3, 6000, 1000));

    // deleted: the items go at once; content only deleted items use is pending until collected
    assert_eq!(
        app.client
            .delete(app.url(&format!("/api/files/{again}")))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let media = app.url(&format!("/device/1/media_grant/{}/media/{id}", cam.grant));
    assert_eq!(app.client.delete(media).bearer_auth(&alice.token).send().await.unwrap().status(), 200);
    assert_eq!(usage_of(&app, &alice.token).await, usage(2, 5000, 6000, 1000, None));
    app.state.lifecycle.pass(now_ms() + 31 * 86_400_000, true).await.unwrap();
    assert_eq!(usage_of(&app, &alice.token).await, usage(2, 5000, 5000, 0, None));
    assert_eq!(app.catalog().server_usage().await.unwrap().physical_bytes, 5000);

    let viewer = app.token_for(alice.user_id, "upload").await;
    let refused = app.client.get(app.url("/api/usage")).bearer_auth(&viewer).send().await.unwrap();
    expect_error(refused, 403, "forbidden").await;
}

#[tokio::test]
async fn a_quota_holds_under_20_concurrent_uploads_and_held_content_costs_nothing() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    app.catalog().set_quota(alice.user_id, Some(50_000)).await.unwrap();
    let session = register(&app, &alice.token, json!({"folder_id": "f", "autofinish": false})).await;
    let url = session["api"]["upload"].as_str().unwrap().to_owned();
    let uploads = (0..20u64).map(|n| {
        let (client, url, token) = (app.client.clone(), url.clone(), alice.token.clone());
        tokio::spawn(async move {
            let form = Form::new().part("file", Part::bytes(bytes_of(5000, 100 + n)).file_name("x.bin"));
            let response = client.post(url).bearer_auth(token).multipart(form).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        })
    });
    let mut stored = Vec::new();
    for upload in uploads {
        let (status, body) = upload.await.unwrap();
        match status {
            200 => stored.push(body["sha256"].as_str().unwrap().to_owned()),
            413 => {
                assert_eq!((&body["error"], &body["status"]), (&json!("quota_exceeded"), &json!("error")), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(stored.len(), 10, "exactly what the quota has room for");
    assert_eq!(usage_of(&app, &alice.token).await, usage(10, 50_000, 50_000, 0, Some(50_000)));
    assert_eq!(app.catalog().pending_intents().await.unwrap(), vec![], "nothing was placed for a refused upload");
    assert_eq!(app.catalog().all_blob_hashes().await.unwrap().len(), 10);

    // content the account holds costs nothing, even at its quota
    let form = Form::new().part("file", Part::bytes(bytes_of(5000, 100)).file_name("again.bin"));
    let again = app.client.post(&url).bearer_auth(&alice.token).multipart(form).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn every_family_refuses_over_quota_in_its_own_shape() {
    let app = spawn_app().await;
    let (alice, cam) = DeviceClient::setup(&app, "alice", "/").await;
    app.device(&alice, "door").await;
    app.catalog().set_quota(alice.user_id, Some(3000)).await.unwrap();
    let held = bytes_of(2000, 7);
    let held_hash = cam.upload(&held).await;
    let big = bytes_of(2000, 8);

    // device: the entry carries the refusal and no signed_opts; the rest of the batch is served
    let answer = cam
        .post_ok(
            "upload",
            json!({"file_list": [
            {"file_hash": sha256_hex(&big), "file_size": 2000},
            {"file_hash": held_hash, "file_size": 2000},
            {"file_hash": sha256_hex(&bytes_of(500, 9)), "file_size": 500}]}),
        )
        .await;
    let list = &answer["upload_list"];
    assert_eq!(list[0]["error"], "quota_exceeded", "{answer}");
    assert!(list[0].get("signed_opts").is_none());
    assert_eq!(list[1]["skip_upload"], true);
    assert!(list[2]["signed_opts"].is_object(), "what fits is offered: {answer}");

    // session family
    let form = Form::new().part("file", Part::bytes(big.clone()).file_name("big.bin"));
    let session = register(&app, &alice.token, json!({"folder_id": "f"})).await;
    let body = expect_error(
        post_form(&app, session["api"]["upload"].as_str().unwrap(), &alice.token, form).await,
        413,
        "quota_exceeded",
    )
    .await;
    assert_eq!(body["status"], "error");

    // multipart family (a single PUT)
    expect_error(put_file(&app, &alice.token, "big", big.clone()).await, 413, "quota_exceeded").await;

    // gallery family
    let form = Form::new().text("name", "motion").part("event", Part::bytes(big.clone()).file_name("m.mp4"));
    let refused = post_form(&app, &app.url("/api/gallery/door/upload"), &alice.token, form).await;
    let body = expect_error(refused, 413, "quota_exceeded").await;
    assert_eq!(body["success"], false);

    // tus: refused at creation, before a byte is sent
    let created = app
        .client
        .post(app.url("/files/"))
        .bearer_auth(&alice.token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "2000")
        .send()
        .await
        .unwrap();
    expect_error(created, 413, "quota_exceeded").await;

    // nothing of it was kept
    assert_eq!(usage_of(&app, &alice.token).await["held_bytes"], 2000);
    assert_eq!(app.catalog().all_blob_hashes().await.unwrap().len(), 1);
}

#[test]
fn admin_sets_quotas_and_reports_usage_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    admin_json(d, &["user", "add", "alice", "--level", "uploader"]);
    let (code, set) = admin_json(d, &["user", "set-quota", "alice", "1MiB"]);
    assert_eq!((code, set), (0, json!({"user_id": 1, "name": "alice", "quota_bytes": 1_048_576})));
    let (code, report) = admin_json(d, &["usage", "--user", "alice"]);
    assert_eq!(code, 0);
    let alice = json!({"user_id": 1, "name": "alice", "media_items": 0, "logical_bytes": 0, "held_bytes": 0,
                       "deleted_bytes_pending": 0, "quota_bytes": 1_048_576});
    assert_eq!(report["users"], json!([alice]));
    assert_eq!(
        report["server"],
        json!({"blobs": 0, "physical_bytes": 0, "dedup_saved_bytes": 0, "rendition_bytes": 0})
    );
    let (_, none) = admin_json(d, &["user", "set-quota", "alice", "none"]);
    assert_eq!(none["quota_bytes"], Value::Null);
    let (code, bad) = admin_json(d, &["user", "set-quota", "alice", "lots"]);
    assert_eq!((code, &bad["error"]), (1, &json!("invalid_argument")));
    let (code, missing) = admin_json(d, &["usage", "--user", "bob"]);
    assert_eq!((code, &missing["error"]), (1, &json!("not_found")));
}

#[tokio::test]
async fn a_catalog_from_before_usage_is_counted_once_when_it_opens() {
    let app = spawn_app().await;
    let url = app.state.config.database_url.clone();
    let Some(path) = url.strip_prefix("sqlite://") else { return }; // the upgrade is the same SQL on both
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    session_upload(&app.address, &alice.token, &bytes_of(4000, 30)).await;
    let counted = usage_of(&app, &alice.token).await;
    assert_eq!(counted, usage(1, 4000, 4000, 0, None));
    // as a catalog migrated from before the counters: zero, with the count due
    let conn = rusqlite::Connection::open(path.split('?').next().unwrap()).unwrap();
    conn.execute_batch(
        "update users set held_bytes = 0, media_items = 0, logical_bytes = 0;
         insert into settings (key, value) values ('usage_recount_due', x'01');",
    )
    .unwrap();
    let reopened = ferry::catalog::SqlCatalog::open(&url).await.unwrap();
    let account = ferry::catalog::Usage::usage(&reopened, Some(alice.user_id)).await.unwrap().pop().unwrap();
    assert_eq!((account.media_items, account.logical_bytes, account.held_bytes), (1, 4000, 4000));
}

#[tokio::test]
async fn a_gallery_thumbnail_must_stay_a_thumbnail() {
    // a client's thumbnail is kept by its event, not held by the account: it counts towards no
    // quota, so it cannot be a way around one
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&alice, "door").await;
    let form = Form::new()
        .text("name", "motion")
        .part("event", Part::bytes(bytes_of(1000, 40)).file_name("m.mp4"))
        .part("thumbnail", Part::bytes(bytes_of(9 * 1024 * 1024, 41)).file_name("t.jpg"));
    let refused = post_form(&app, &app.url("/api/gallery/door/upload"), &alice.token, form).await;
    let body = expect_error(refused, 413, "too_large").await;
    assert_eq!(body["success"], false);
    assert!(app.catalog().all_blob_hashes().await.unwrap().is_empty(), "nothing kept");
}
