//! The ingest pipeline through the signed upload host: dedup, verification, limits,
//! chunked top-hash, disconnects, holds and GC.

use std::time::Duration;

use ferry::domain::Level;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

async fn put(app: &TestApp, url: &str, body: Vec<u8>) -> reqwest::Response {
    app.client.put(url).body(body).send().await.unwrap()
}

#[tokio::test]
async fn the_same_bytes_are_stored_once_and_both_uploaders_hold_them() {
    let app = spawn_app().await;
    let (a, b) = (app.user("a", Level::Uploader, "upload").await, app.user("b", Level::Uploader, "upload").await);
    let data = bytes_of(300_000, 1);
    let first: Value = put(&app, &app.signed_put(a.user_id, None, None), data.clone()).await.json().await.unwrap();
    assert_eq!(first["sha256"], sha256_hex(&data));
    assert_eq!(first["size"], 300_000);
    assert_eq!(first["deduplicated"], false);
    let second: Value = put(&app, &app.signed_put(b.user_id, None, None), data.clone()).await.json().await.unwrap();
    assert_eq!(second["deduplicated"], true);

    assert_eq!(app.blob_files().len(), 1, "one blob file for the same bytes");
    assert_eq!(std::fs::read(&app.blob_files()[0]).unwrap(), data);
    let hash = ferry::domain::Sha256Hex::parse(&sha256_hex(&data)).unwrap();
    assert!(app.catalog().holds(a.user_id, &hash).await.unwrap());
    assert!(app.catalog().holds(b.user_id, &hash).await.unwrap());
    assert!(app.staging_files().is_empty(), "no staging left behind");
}

#[tokio::test]
async fn bytes_that_differ_from_the_bound_hash_or_size_are_refused_and_nothing_is_kept() {
    let app = spawn_app().await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let data = bytes_of(50_000, 2);
    let good_hash = sha256_hex(&data);
    let wrong = bytes_of(50_000, 3);

    let refused = put(&app, &app.signed_put(a.user_id, Some(50_000), Some(&good_hash)), wrong.clone()).await;
    expect_error(refused, 400, "hash_mismatch").await;
    let too_long = put(&app, &app.signed_put(a.user_id, Some(49_999), None), data.clone()).await;
    expect_error(too_long, 400, "hash_mismatch").await;
    let too_short = put(&app, &app.signed_put(a.user_id, Some(50_001), None), data.clone()).await;
    expect_error(too_short, 400, "hash_mismatch").await;

    // without Content-Length the pipeline itself must notice the extra byte
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(data.clone()), Ok(vec![0u8])]);
    let streamed = app
        .client
        .put(app.signed_put(a.user_id, Some(50_000), None))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_error(streamed, 400, "hash_mismatch").await;

    assert!(app.blob_files().is_empty(), "no blob kept");
    assert!(app.staging_files().is_empty(), "staging removed");
    assert!(app.catalog().all_blob_hashes().await.unwrap().is_empty(), "no catalog row");
    let wrong_hash = ferry::domain::Sha256Hex::parse(&sha256_hex(&wrong)).unwrap();
    assert!(!app.catalog().holds(a.user_id, &wrong_hash).await.unwrap(), "no hold");

    let accepted = put(&app, &app.signed_put(a.user_id, Some(50_000), Some(&good_hash)), data).await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_413_announced_or_not() {
    let app = spawn_app_with(|layer| {
        layer.insert("max_upload_size", "1MiB".into());
    })
    .await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let announced = put(&app, &app.signed_put(a.user_id, None, None), bytes_of(3 << 20, 4)).await;
    expect_error(announced, 413, "too_large").await;

    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = (0..48).map(|i| Ok(bytes_of(64 * 1024, i))).collect();
    let streamed = app
        .client
        .put(app.signed_put(a.user_id, None, None))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)))
        .send()
        .await;
    // the server answers as soon as the limit is crossed; the client may see the answer or
    // a reset connection, but never a success
    if let Ok(response) = streamed {
        expect_error(response, 413, "too_large").await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.blob_files().is_empty() && app.staging_files().is_empty());

    let exactly = put(&app, &app.signed_put(a.user_id, None, None), bytes_of(1 << 20, 5)).await;
    assert_eq!(exactly.status(), 200, "the limit itself is allowed");
}

/// API.md test content: byte i = i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn large_uploads_get_their_chunked_file_hash_with_or_without_a_length() {
    let app = spawn_app().await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let data = pattern(41_955_385);
    let expected = "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862";

    // no device bound a file hash: the upload hashes the SHA-256 alone (one hash per byte),
    // and the device_hash job computes the top-hash afterwards (API.md §5)
    let announced: Value = put(&app, &app.signed_put(a.user_id, None, None), data.clone()).await.json().await.unwrap();
    assert_eq!(announced["sha256"], sha256_hex(&data));
    assert!(announced.get("file_hash").is_none(), "{announced}");

    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(3 << 20).map(|c| Ok(c.to_vec())).collect();
    let streamed: Value = app
        .client
        .put(app.signed_put(a.user_id, None, None))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(streamed["sha256"], sha256_hex(&data));
    assert_eq!(streamed["deduplicated"], true);

    let sha256 = ferry::domain::Sha256Hex::parse(&sha256_hex(&data)).unwrap();
    let top = recorded_top_hash(&app, &sha256).await;
    assert_eq!(top.as_ref().map(|t| t.as_str()), Some(expected), "findable by its chunked hash");

    let small: Value = put(&app, &app.signed_put(a.user_id, None, None), pattern(5)).await.json().await.unwrap();
    assert_eq!(small["file_hash"], "08bb5e5d6eaac1049ede0893d30ed022b1a4d9b5b48db414871f51c9cb35283d");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let app = spawn_app().await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let url = app.signed_put(a.user_id, None, None);
    let target = url.strip_prefix("http://").unwrap();
    let (host, path) = target.split_once('/').unwrap();
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!("PUT /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 10000000\r\n\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&bytes_of(3_000_000, 9)).await.unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);

    let mut clean = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app.staging_files().is_empty() {
            clean = true;
            break;
        }
    }
    assert!(clean, "the partial staging file is removed: {:?}", app.staging_files());
    assert!(app.blob_files().is_empty());
    assert!(app.catalog().all_blob_hashes().await.unwrap().is_empty());
}

#[tokio::test]
async fn gc_never_collects_held_blobs_and_collects_released_ones_after_the_grace_period() {
    let app = spawn_app_with(|layer| {
        layer.insert("gc_grace", "0s".into());
    })
    .await;
    let a = app.user("a", Level::Uploader, "upload").await;
    let (kept, released) = (bytes_of(10_000, 10), bytes_of(10_000, 11));
    put(&app, &app.signed_put(a.user_id, None, None), kept.clone()).await;
    put(&app, &app.signed_put(a.user_id, None, None), released.clone()).await;

    app.state.jobs.run_until_idle().await.unwrap();
    assert_eq!(app.blob_files().len(), 2, "held blobs survive GC");

    let released_hash = ferry::domain::Sha256Hex::parse(&sha256_hex(&released)).unwrap();
    app.catalog().release_hold(a.user_id, &released_hash).await.unwrap();
    // the server's own runner may collect it first; either way it goes
    app.state.jobs.run_until_idle().await.unwrap();
    let files = app.blob_files();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), kept);
    assert!(app.catalog().blob(&released_hash).await.unwrap().is_none());
}

#[tokio::test]
async fn gc_waits_for_the_grace_period() {
    let app = spawn_app().await; // default grace: 1h
    let a = app.user("a", Level::Uploader, "upload").await;
    let data = bytes_of(1000, 12);
    put(&app, &app.signed_put(a.user_id, None, None), data.clone()).await;
    app.catalog().release_hold(a.user_id, &ferry::domain::Sha256Hex::parse(&sha256_hex(&data)).unwrap()).await.unwrap();
    app.state.jobs.run_until_idle().await.unwrap();
    assert_eq!(app.blob_files().len(), 1, "recently released bytes stay for the grace period");
}
