//! The connection level: a client that never finishes its request headers is disconnected
//! (`header_timeout`) while others are served, and signed GET URLs also answer HEAD
//! (API.md §5); every log line of a request names its request id and caller.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_with(|layer| {
        layer.insert("header_timeout", "1s".into());
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    // nothing at all, half the HTTP/2 preface, half a request line, headers without their end
    for partial in ["", "PRI * HTTP/2.0\r\n", "GET /heal", "GET /healthz HTTP/1.1\r\nHost: x\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(partial.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    // others are served meanwhile
    for _ in 0..3 {
        assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut stream in slow {
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "the connection is still open after {:?}", started.elapsed());
        assert!(!String::from_utf8_lossy(&answer).contains(" 200 "), "no request was served");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_signed_get_url_also_answers_head() {
    let app = spawn_app().await;
    let alice = app.user("alice", ferry::domain::Level::Uploader, "upload").await;
    let data = bytes_of(12_345, 1);
    let hash = sha256_hex(&data);
    let put = app.client.put(app.signed_put(alice.user_id, None, None)).body(data.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let url = app.signed_get(&hash);

    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let headers = head.headers().clone();
    assert_eq!(headers["content-length"], "12345");
    assert_eq!(headers["etag"], format!("\"{hash}\""));
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");
    let get = app.client.get(&url).send().await.unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), &data[..]);

    // the signature still binds everything else
    let tampered = url.replacen("expires=", "expires=1", 1);
    assert_eq!(app.client.head(&tampered).send().await.unwrap().status(), 403);
    let put_url = app.signed_put(alice.user_id, None, None);
    assert_ne!(app.client.head(&put_url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_requests_log_lines_carry_its_request_id_and_caller() {
    let dir = tempfile::tempdir().unwrap();
    admin_json(dir.path(), &["user", "add", "alice", "--level", "uploader"]);
    let (_, token) = admin_json(dir.path(), &["token", "add", "--user", "alice", "--scopes", "upload"]);
    let (token, user_id) = (token["token"].as_str().unwrap().to_owned(), token["user_id"].as_i64().unwrap());
    let log = dir.path().join("server.log");
    let mut server = FerryProcess::start_logging(dir.path(), &[], &log);
    let started = reqwest::Client::new()
        .get(format!("{}/api/users/multipart_upload_start/traced?part_count=1", server.address))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-7")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    assert_eq!(started.headers()["x-request-id"], "trace-me-7", "the id is answered back");
    server.signal("TERM");
    server.wait_exit(10).expect("the server stops");
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("request done") && l.contains("trace-me-7"))
        .unwrap_or_else(|| panic!("no line for the request: {logged}"));
    assert!(line.contains(&format!("user={user_id}")), "the caller is named: {line}");
    assert!(line.contains("path=/api/users/multipart_upload_start/traced"), "{line}");
}
