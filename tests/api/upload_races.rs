//! State changes two requests can race, each run many times: an acknowledged upload is never
//! lost, a refused body is never kept, every caller of a repeated request gets one answer.

use std::time::Duration;

use ferry::domain::{Level, Sha256Hex};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

const MIB: usize = 1024 * 1024;

/// A started multipart-family upload with both parts sent: `(upload_id, complete body)`.
async fn two_parts_sent(app: &TestApp, token: &str, file_id: &str, seed: u64) -> (String, Value, Vec<u8>) {
    let start: Value = app
        .client
        .get(app.url(&format!("/api/users/multipart_upload_start/{file_id}?part_count=2")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pieces = [bytes_of(5 * MIB, seed), bytes_of(1000, seed + 1)];
    let mut parts = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        let url = start["presigned_urls"][n].as_str().unwrap();
        let put = app.client.put(url).body(piece.clone()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        parts.push(json!({"part_number": n + 1, "etag": put.headers()["etag"].to_str().unwrap()}));
    }
    let upload_id = start["upload_id"].as_str().unwrap().to_owned();
    (upload_id.clone(), json!({"upload_id": upload_id, "parts": parts}), pieces.concat())
}

#[tokio::test]
async fn a_completion_racing_an_abort_either_wins_whole_or_loses_whole() {
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    let (mut completed, mut aborted) = (0, 0);
    for round in 0..24 {
        let file_id = format!("race-{round}");
        let (upload_id, body, whole) = two_parts_sent(&app, &user.token, &file_id, round * 10).await;
        let complete = app
            .client
            .post(app.url(&format!("/api/users/multipart_upload_complete/{file_id}")))
            .bearer_auth(&user.token)
            .json(&body)
            .send();
        let abort = app
            .client
            .delete(app.url(&format!("/api/users/multipart_upload/{file_id}?upload_id={upload_id}")))
            .bearer_auth(&user.token)
            .send();
        let (complete, abort) = crate::races::staggered(round as usize, complete, abort).await;
        let (complete, abort) = (complete.unwrap(), abort.unwrap());
        let file = app.client.get(app.url(&format!("/api/users/files/{file_id}"))).bearer_auth(&user.token);
        let outcome = (complete.status().as_u16(), abort.status().as_u16());
        match outcome {
            (200, 409) => {
                let answer: Value = complete.json().await.unwrap();
                assert_eq!(answer["checksum"], sha256_hex(&whole));
                let fetched = file.send().await.unwrap();
                assert_eq!(fetched.status(), 200, "an acknowledged completion keeps its file");
                assert_eq!(fetched.bytes().await.unwrap().as_ref(), &whole[..]);
                completed += 1;
            }
            (404, 204) => {
                expect_error(complete, 404, "no_such_upload").await;
                assert_eq!(file.send().await.unwrap().status(), 404, "the aborted file does not exist");
                aborted += 1;
            }
            other => panic!("round {round}: complete and abort both answered as winners or losers: {other:?}"),
        }
        let left = app.upload_staging_files();
        assert!(left.is_empty(), "round {round} {outcome:?}: no parts left behind: {left:?}");
    }
    assert_eq!(completed + aborted, 24);
    eprintln!("completed first: {completed} rounds, aborted first: {aborted} rounds");
    assert!(completed > 0 && aborted > 0, "both orders happen");
}

#[tokio::test]
async fn identical_completions_at_once_all_get_the_same_answer() {
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    for round in 0..3 {
        let file_id = format!("clip-{round}");
        let (_, body, whole) = two_parts_sent(&app, &user.token, &file_id, 100 + round).await;
        let url = app.url(&format!("/api/users/multipart_upload_complete/{file_id}"));
        let requests = (0..10).map(|_| app.client.post(&url).bearer_auth(&user.token).json(&body).send());
        let answers = futures_util::future::join_all(requests).await;
        let mut bodies = Vec::new();
        for answer in answers {
            let answer = answer.unwrap();
            assert_eq!(answer.status(), 200, "round {round}");
            bodies.push(answer.json::<Value>().await.unwrap());
        }
        assert!(bodies.iter().all(|b| *b == bodies[0]), "round {round}: one answer for all: {bodies:?}");
        assert_eq!(bodies[0]["checksum"], sha256_hex(&whole));
        assert!(app.upload_staging_files().is_empty());
    }
}

#[tokio::test]
async fn device_multipart_completions_at_once_all_succeed() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let size = 16 * MIB + 5;
    let data = bytes_of(size, 77);
    let chunk = 8 * MIB;
    let digests: Vec<String> = data.chunks(chunk).map(sha256_hex).collect();
    let file_hash = {
        let raw: Vec<u8> = digests.iter().flat_map(|d| hex::decode(d).unwrap()).collect();
        sha256_hex(&raw)
    };
    let plan: Vec<Value> = data
        .chunks(chunk)
        .zip(&digests)
        .enumerate()
        .map(|(i, (c, d))| json!({"part_num": i + 1, "part_size": c.len(), "part_hash": d}))
        .collect();
    let started = cam.post_ok("multipart", json!({"file_size": size, "file_hash": file_hash, "part_list": plan})).await;
    let mut parts = Vec::new();
    for (i, piece) in data.chunks(chunk).enumerate() {
        let url = started["signed_url_list"][i]["url"].as_str().unwrap();
        let put = app.client.put(url).body(piece.to_vec()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        parts.push(json!({"part_num": i + 1, "etag": put.headers()["etag"].to_str().unwrap()}));
    }
    let body = json!({"file_size": size, "file_hash": file_hash, "s3_bucket_id": 1,
                      "upload_id": started["upload_id"], "part_list": parts});
    let requests = (0..8).map(|_| cam.post("multipart_complete", body.clone()));
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.status(), 201);
    }
    let check = cam.post_ok("upload", json!({"file_list": [{"file_hash": file_hash, "file_size": size}]})).await;
    assert_eq!(check["upload_list"][0]["skip_upload"], true, "the account holds the content: {check}");
}

#[tokio::test]
async fn a_finish_while_a_file_streams_in_refuses_that_file_with_410() {
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    let session: Value = app
        .client
        .post(app.url("/api/upload/id"))
        .bearer_auth(&user.token)
        .form(&[("folder_id", "late"), ("autofinish", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ulid = session["ulid"].as_str().unwrap().to_owned();
    let boundary = "ferry-test-boundary";
    let head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    );
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    send.send(Ok(head.into_bytes())).await.unwrap();
    send.send(Ok(bytes_of(100_000, 5))).await.unwrap();
    let body = futures_util::stream::unfold(receive, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let upload = tokio::spawn(
        app.client
            .post(app.url(&format!("/api/file/{ulid}")))
            .bearer_auth(&user.token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let finish =
        |app: &TestApp| app.client.delete(app.url(&format!("/api/upload/id/{ulid}"))).bearer_auth(&user.token).send();
    let finished: Value = finish(&app).await.unwrap().json().await.unwrap();
    assert_eq!(finished["files"], json!([]), "{finished}");
    send.send(Ok(format!("\r\n--{boundary}--\r\n").into_bytes())).await.unwrap();
    drop(send);
    let refused = upload.await.unwrap().unwrap();
    assert_eq!(refused.status(), 410);
    let body: Value = refused.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["status"].as_str()), (Some("session_finished"), Some("error")));
    let again: Value = finish(&app).await.unwrap().json().await.unwrap();
    assert_eq!(again["files"], json!([]), "the refused file was never added: {again}");
}

#[tokio::test]
async fn a_used_gallery_upload_url_refuses_every_replay_and_keeps_none_of_them() {
    let app = spawn_app().await;
    let owner = app.user("alice", Level::Uploader, "upload,read").await;
    app.device(&owner, "cam").await;
    let urls: Value = app
        .client
        .get(app.url("/api/gallery/cam/upload-url?filename=door.jpg&thumbnail=true"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_url = urls["upload_url"].as_str().unwrap();
    let bodies: Vec<Vec<u8>> = (0..10).map(|i| bytes_of(200_000, 300 + i)).collect();
    let puts = bodies.iter().map(|body| app.client.put(upload_url).body(body.clone()).send());
    let mut accepted = 0;
    for answer in futures_util::future::join_all(puts).await {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => accepted += 1,
            _ => {
                let body = expect_error(answer, 409, "already_uploaded").await;
                assert_eq!(body["success"], false);
            }
        }
    }
    assert_eq!(accepted, 1, "one body through one URL");
    let mut kept = 0;
    for body in &bodies {
        kept += app.catalog().blob(&Sha256Hex::parse(&sha256_hex(body)).unwrap()).await.unwrap().is_some() as usize;
    }
    assert_eq!(kept, 1, "the refused bodies were never stored");
    let replay = app.client.put(upload_url).body(bytes_of(10, 1)).send().await.unwrap();
    expect_error(replay, 409, "already_uploaded").await;

    let thumbnail_url = urls["thumbnail_upload_url"].as_str().unwrap();
    let first = app.client.put(thumbnail_url).body(bytes_of(5_000, 1)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let replayed = bytes_of(5_000, 2);
    let again = app.client.put(thumbnail_url).body(replayed.clone()).send().await.unwrap();
    expect_error(again, 409, "already_uploaded").await;
    let hash = Sha256Hex::parse(&sha256_hex(&replayed)).unwrap();
    assert!(app.catalog().blob(&hash).await.unwrap().is_none(), "a replayed thumbnail is not kept");
    assert!(app.staging_files().is_empty());
}
