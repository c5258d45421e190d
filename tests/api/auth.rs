//! Credentials in every spelling resolve to one principal; the permission table refuses
//! with the statuses of API.md.

use ferry::catalog::DeviceFlag;
use ferry::domain::Level;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_token_works_in_every_header_spelling_and_as_user_session_key() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "read").await;
    for scheme in ["Bearer", "bearer", "BEARER", "Token", "token", "Private-Token", "PRIVATE-TOKEN"] {
        let response = app
            .client
            .get(app.url("/api/me"))
            .header("authorization", format!("{scheme} {}", alice.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["name"], "alice");
        assert_eq!(me["scopes"], serde_json::json!(["read"]));
    }
    let response = app.client.get(app.url(&format!("/api/me?user_session_key={}", alice.token))).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn missing_unknown_and_revoked_tokens_are_401() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "read").await;
    expect_error(app.client.get(app.url("/api/me")).send().await.unwrap(), 401, "unauthorized").await;
    let wrong = app.client.get(app.url("/api/me")).bearer_auth("fry_t_nope").send().await.unwrap();
    expect_error(wrong, 401, "unauthorized").await;
    let basic = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", format!("Basic {}", alice.token))
        .send()
        .await
        .unwrap();
    expect_error(basic, 401, "unauthorized").await;

    let tokens = app.catalog().list_tokens().await.unwrap();
    app.catalog().revoke_token(tokens[0].token_id).await.unwrap();
    let revoked = app.client.get(app.url("/api/me")).bearer_auth(&alice.token).send().await.unwrap();
    expect_error(revoked, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_revoked_token_and_a_disabled_device_are_refused_within_a_second_while_their_answers_are_cached() {
    let app = spawn_app().await;
    let (alice, cam) = crate::device_client::DeviceClient::setup(&app, "alice", "/").await;
    let me = || app.client.get(app.url("/api/me")).bearer_auth(&alice.token).send();
    let batch = json!({"file_list": [{"file_hash": sha256_hex(b"x"), "file_size": 1}]});
    let check = || cam.post("upload", batch.clone());
    for _ in 0..20 {
        // a burst with each credential: from now on they are answered from memory
        assert_eq!(me().await.unwrap().status(), 200);
        assert_eq!(check().await.status(), 200);
    }
    let token = app.catalog().list_tokens().await.unwrap().into_iter().find(|t| t.user_id == alice.user_id).unwrap();
    app.catalog().revoke_token(token.token_id).await.unwrap();
    refused_within_a_second(|| async { me().await.unwrap() }, 401, "unauthorized").await;

    let device = app.catalog().device_by_key_hash(&ferry::auth::secrets::hash(&cam.key)).await.unwrap().unwrap().0;
    app.catalog().set_device_flag(device.device_id, DeviceFlag::Disabled, true).await.unwrap();
    refused_within_a_second(check, 412, "device_disabled").await;
    app.catalog().set_device_flag(device.device_id, DeviceFlag::Disabled, false).await.unwrap();
    let back = std::time::Instant::now();
    while check().await.status() != 200 {
        assert!(back.elapsed() < std::time::Duration::from_secs(1), "enabled again within a second");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_device_key_works_in_query_and_body() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let cam = app.device(&alice, "cam").await;
    let by_query: Value = app
        .client
        .post(app.url(&format!("/device/1/current?device_session_key={}", cam.key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_query["device_name"], "cam");
    assert_eq!(by_query["user_name"], "alice");
    assert_eq!(by_query["device_id"], cam.device_id);
    let by_body = app
        .client
        .post(app.url("/device/1/current"))
        .json(&serde_json::json!({"device_session_key": cam.key}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_body.status(), 200);
    let body_no_content_type = app
        .client
        .post(app.url("/device/1/current"))
        .body(format!("{{\"device_session_key\":\"{}\"}}", cam.key))
        .send()
        .await
        .unwrap();
    assert_eq!(body_no_content_type.status(), 200);
}

#[tokio::test]
async fn the_device_family_answers_bad_keys_with_403_and_tokens_are_not_device_keys() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Admin, "upload,read,admin").await;
    let no_key = app.client.post(app.url("/device/1/current")).send().await.unwrap();
    expect_error(no_key, 403, "unauthorized").await;
    let bad_key = app.client.post(app.url("/device/1/current?device_session_key=fry_d_bad")).send().await.unwrap();
    expect_error(bad_key, 403, "unauthorized").await;
    let token = app.client.post(app.url("/device/1/current")).bearer_auth(&alice.token).send().await.unwrap();
    expect_error(token, 403, "unauthorized").await;
    // and a device key is not an API token
    let cam = app.device(&alice, "cam").await;
    let me = app.client.get(app.url(&format!("/api/me?device_session_key={}", cam.key))).send().await.unwrap();
    expect_error(me, 403, "forbidden").await;
}

#[tokio::test]
async fn a_disabled_device_still_sees_its_status_and_grants() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let cam = app.device(&alice, "cam").await;
    let grant = app.grant(&alice, &cam, "photos", "/dcim").await;
    app.catalog()
        .set_device_flag(ferry::domain::DeviceId(cam.device_id), ferry::catalog::DeviceFlag::Disabled, true)
        .await
        .unwrap();

    let current: Value = app
        .client
        .post(app.url(&format!("/device/1/current?device_session_key={}", cam.key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["is_disabled"], true);
    let grants: Value = app
        .client
        .post(app.url(&format!("/device/1/media_grant?device_session_key={}", cam.key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grants["is_device_disabled"], true);
    let listed = &grants["media_grant_list"][0];
    assert_eq!(listed["media_grant_id"], grant, "ids are strings");
    assert_eq!(listed["prefix_path"], "/dcim");
    assert_eq!(listed["grant_name"], "photos");
    assert!(listed["volume_id"].is_i64());
    assert_eq!(listed["volume_encryption_key"], Value::Null);
}

#[tokio::test]
async fn a_device_sees_only_its_own_grants() {
    let app = spawn_app().await;
    let alice = app.user("alice", Level::Uploader, "upload").await;
    let (cam, phone) = (app.device(&alice, "cam").await, app.device(&alice, "phone").await);
    app.grant(&alice, &cam, "photos", "/").await;
    let grants: Value = app
        .client
        .post(app.url(&format!("/device/1/media_grant?device_session_key={}", phone.key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grants["media_grant_list"], serde_json::json!([]));
}
