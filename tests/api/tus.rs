//! tus 1.0.0 at `/files/` (API.md §5), spoken with reqwest: every status the protocol and
//! Ferry's rules give, and where finished uploads land. Real clients are in `tus_clients`,
//! two replicas in `replicas`.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use ferry::domain::{Level, UserId};
use serde_json::Value;
use sha2::Digest;

use crate::helpers::*;

const MIB: usize = 1024 * 1024;
const OCTETS: &str = "application/offset+octet-stream";

pub struct Tus<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub user: UserId,
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl<'a> Tus<'a> {
    pub async fn new(app: &'a TestApp, name: &str) -> Self {
        let user = app.user(name, Level::Uploader, "upload,read").await;
        Self { app, token: user.token, user: user.user_id }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, url).bearer_auth(&self.token).header("tus-resumable", "1.0.0")
    }

    /// POST /files/ with these headers; returns the response.
    pub async fn post(&self, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.request(reqwest::Method::POST, &self.app.url("/files/"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Creates an upload of `length` bytes with `metadata` (already encoded); its URL.
    pub async fn create(&self, length: usize, metadata: &str) -> String {
        let length = length.to_string();
        let mut headers = vec![("upload-length", length.as_str())];
        if !metadata.is_empty() {
            headers.push(("upload-metadata", metadata));
        }
        let created = self.post(&headers).await;
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
        assert!(created.headers().contains_key("upload-expires"));
        created.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn patch_with(
        &self,
        url: &str,
        offset: usize,
        bytes: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .request(reqwest::Method::PATCH, url)
            .header("content-type", OCTETS)
            .header("upload-offset", offset.to_string())
            .body(bytes);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn patch(&self, url: &str, offset: usize, bytes: Vec<u8>) -> reqwest::Response {
        self.patch_with(url, offset, bytes, &[]).await
    }

    pub async fn head(&self, url: &str) -> reqwest::Response {
        self.request(reqwest::Method::HEAD, url).send().await.unwrap()
    }

    pub async fn offset(&self, url: &str) -> u64 {
        let head = self.head(url).await;
        assert_eq!(head.status(), 200);
        head.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
    }

    /// The user's library files.
    pub async fn files(&self) -> Vec<ferry::catalog::LibraryFile> {
        self.app.catalog().list_files(Some(self.user)).await.unwrap()
    }

    /// Downloads a library file with the uploader's token.
    pub async fn download(&self, file_id: &str) -> Vec<u8> {
        let url = self.app.url(&format!("/api/files/{file_id}"));
        let response = self.app.client.get(url).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }
}

fn sha1_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
}

fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn options_announce_version_extensions_limits_and_checksums() {
    let app = spawn_app_with(|layer| {
        layer.insert("max_upload_size", "1GiB".into());
    })
    .await;
    let response = app.client.request(reqwest::Method::OPTIONS, app.url("/files/")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("tus-version"), "1.0.0");
    assert_eq!(header("tus-resumable"), "1.0.0");
    assert_eq!(header("tus-max-size"), (1u64 << 30).to_string());
    assert_eq!(header("tus-checksum-algorithm"), "sha1,sha256");
    for extension in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    ] {
        assert!(header("tus-extension").split(',').any(|e| e == extension), "{extension}");
    }
}

#[tokio::test]
async fn an_upload_in_three_patches_is_a_library_file_before_the_last_answer() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(3 * MIB + 17, 1);
    let metadata = format!("filename {},folder_id {},filetype {}", b64("beach.bin"), b64("holiday"), b64("video/mp4"));
    let url = tus.create(body.len(), &metadata).await;
    assert!(url.starts_with(&app.address), "{url}");

    let head = tus.head(&url).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["upload-offset"], "0");
    assert_eq!(head.headers()["upload-length"], body.len().to_string().as_str());
    assert_eq!(head.headers()["upload-metadata"], metadata.as_str(), "returned unchanged");
    assert_eq!(head.headers()["cache-control"], "no-store");

    let cuts = [0, MIB + 5, 2 * MIB + 100_000, body.len()];
    let mut location = None;
    for window in cuts.windows(2) {
        assert!(tus.files().await.is_empty(), "nothing is filed before the last byte");
        let patched = tus.patch(&url, window[0], body[window[0]..window[1]].to_vec()).await;
        assert_eq!(patched.status(), 204, "{:?}", patched.text().await);
        assert_eq!(patched.headers()["upload-offset"], window[1].to_string().as_str());
        assert_eq!(patched.headers()["tus-resumable"], "1.0.0");
        location = patched.headers().get("ferry-location").map(|l| l.to_str().unwrap().to_owned());
    }
    let files = tus.files().await;
    assert_eq!(files.len(), 1, "filed when the completing PATCH answered");
    let file = &files[0];
    assert_eq!((file.folder_key.as_str(), file.title.as_str()), ("holiday", "beach.bin"));
    assert_eq!(file.content_type, "video/mp4");
    assert_eq!(file.sha256.as_str(), sha256_hex(&body));
    assert_eq!(tus.download(&file.file_id).await, body);
    let location = location.expect("the completing PATCH says where the file is");
    assert_eq!(location, app.url(&format!("/api/files/{}", file.file_id)));
    let head = tus.head(&url).await;
    assert_eq!(head.headers()["upload-offset"], body.len().to_string().as_str(), "a completed upload says so");
    assert_eq!(head.headers()["ferry-location"], location.as_str());
    assert!(app.upload_staging_files().is_empty(), "the staging is gone: {:?}", app.upload_staging_files());
}

#[tokio::test]
async fn without_metadata_an_upload_goes_to_the_tus_folder_named_by_its_hash() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(1000, 2);
    let url = tus.create(body.len(), "").await;
    assert_eq!(tus.patch(&url, 0, body.clone()).await.status(), 204);
    let files = tus.files().await;
    assert_eq!((files[0].folder_key.as_str(), files[0].title.clone()), ("tus", sha256_hex(&body)));
}

#[tokio::test]
async fn requests_without_tus_resumable_are_refused_with_412() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    for version in [None, Some("0.2.2")] {
        let mut request = app.client.post(app.url("/files/")).bearer_auth(&tus.token).header("upload-length", "5");
        if let Some(version) = version {
            request = request.header("tus-resumable", version);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["tus-version"], "1.0.0");
        expect_error(response, 412, "unsupported_version").await;
    }
    assert!(app.catalog().tus_upload(&"0".repeat(32), tus.user).await.unwrap().is_none());
}

#[tokio::test]
async fn offsets_must_match_and_checksums_must_hold() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(10_000, 3);
    let url = tus.create(body.len(), "").await;
    let first = body[..4000].to_vec();
    let checked = [("upload-checksum", format!("sha1 {}", sha1_b64(&first)))];
    let checked: Vec<(&str, &str)> = checked.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(tus.patch_with(&url, 0, first.clone(), &checked).await.status(), 204);

    // a stale offset: 409 with the real one
    let stale = tus.patch(&url, 0, body[..10].to_vec()).await;
    let state = expect_error(stale, 409, "offset_mismatch").await;
    assert_eq!(state["offset"], 4000);

    // a wrong checksum: 460, the bytes discarded
    let rest = body[4000..].to_vec();
    let wrong = format!("sha256 {}", sha256_b64(b"something else"));
    let refused = tus.patch_with(&url, 4000, rest.clone(), &[("upload-checksum", &wrong)]).await;
    expect_error(refused, 460, "checksum_mismatch").await;
    assert_eq!(tus.offset(&url).await, 4000, "the offset did not move");

    // an algorithm not offered, a malformed header: 400
    let md5 = tus.patch_with(&url, 4000, rest.clone(), &[("upload-checksum", "md5 XUFAKrxLKna5cZ2REBfFkg==")]).await;
    expect_error(md5, 400, "invalid_checksum").await;
    let junk = tus.patch_with(&url, 4000, rest.clone(), &[("upload-checksum", "sha1")]).await;
    expect_error(junk, 400, "invalid_checksum").await;

    let right = format!("sha256 {}", sha256_b64(&rest));
    assert_eq!(tus.patch_with(&url, 4000, rest, &[("upload-checksum", &right)]).await.status(), 204);
    assert_eq!(tus.files().await[0].sha256.as_str(), sha256_hex(&body));
}

#[tokio::test]
async fn bad_headers_get_the_protocols_status_and_nothing_is_stored() {
    let app = spawn_app_with(|layer| {
        layer.insert("max_upload_size", "1MiB".into());
    })
    .await;
    let tus = Tus::new(&app, "alice").await;
    for (headers, status, code) in [
        (vec![("upload-length", "-1")], 400, "invalid_length"),
        (vec![("upload-length", "ten")], 400, "invalid_length"),
        (vec![], 400, "invalid_length"),
        (vec![("upload-length", "5"), ("upload-defer-length", "1")], 400, "invalid_length"),
        (vec![("upload-defer-length", "2")], 400, "invalid_length"),
        (vec![("upload-length", "5"), ("upload-metadata", "filename !!!")], 400, "invalid_metadata"),
        (vec![("upload-length", "5"), ("upload-metadata", "a YQ==,a YQ==")], 400, "invalid_metadata"),
        (vec![("upload-length", "5"), ("upload-metadata", "folder_id YS9i")], 400, "invalid_metadata"),
        (vec![("upload-length", "5"), ("upload-metadata", "sha256 YWJj")], 400, "invalid_metadata"),
        (vec![("upload-length", "1048577")], 413, "too_large"),
        (vec![("upload-length", "5"), ("upload-concat", "final;/files/nope")], 400, "invalid_concat"),
    ] {
        let response = tus.post(&headers).await;
        expect_error(response, status, code).await;
    }
    let url = tus.create(10, "").await;
    for (offset, status, code) in [("-1", 400, "invalid_offset"), ("abc", 400, "invalid_offset")] {
        let response = tus
            .request(reqwest::Method::PATCH, &url)
            .header("content-type", OCTETS)
            .header("upload-offset", offset)
            .body("x")
            .send()
            .await
            .unwrap();
        expect_error(response, status, code).await;
    }
    let no_offset =
        tus.request(reqwest::Method::PATCH, &url).header("content-type", OCTETS).body("x").send().await.unwrap();
    expect_error(no_offset, 400, "invalid_offset").await;
    let wrong_type = tus
        .request(reqwest::Method::PATCH, &url)
        .header("content-type", "application/octet-stream")
        .header("upload-offset", "0")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(wrong_type, 415, "unsupported_media_type").await;
    let past = tus.patch(&url, 0, vec![7; 11]).await;
    expect_error(past, 413, "too_large").await;
    assert_eq!(tus.offset(&url).await, 0, "nothing was stored");
    assert!(app.blob_files().is_empty());
}

#[tokio::test]
async fn another_users_upload_and_unknown_ids_are_404_and_ids_are_unguessable() {
    let app = spawn_app().await;
    let (alice, bob) = (Tus::new(&app, "alice").await, Tus::new(&app, "bob").await);
    let url = alice.create(10, "").await;
    let other = alice.create(10, "").await;
    let id = url.rsplit('/').next().unwrap();
    assert_eq!(id.len(), 32, "128 random bits: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(url, other);
    assert_eq!(bob.head(&url).await.status(), 404, "HEAD answers without a body");
    expect_error(bob.patch(&url, 0, vec![1; 10]).await, 404, "no_such_upload").await;
    let delete = bob.request(reqwest::Method::DELETE, &url).send().await.unwrap();
    expect_error(delete, 404, "no_such_upload").await;
    for unknown in [app.url(&format!("/files/{}", "0".repeat(32))), app.url("/files/not-an-id")] {
        expect_error(alice.patch(&unknown, 0, vec![1]).await, 404, "no_such_upload").await;
    }
    assert_eq!(alice.offset(&url).await, 0, "alice's upload is untouched");
    let anonymous = app.client.head(&url).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn termination_removes_the_upload_and_its_bytes() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(2 * MIB, "").await;
    assert_eq!(tus.patch(&url, 0, bytes_of(MIB, 4)).await.status(), 204);
    assert_eq!(app.upload_staging_files().len(), 1);
    let deleted = tus.request(reqwest::Method::DELETE, &url).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.headers()["tus-resumable"], "1.0.0");
    assert_eq!(tus.head(&url).await.status(), 404, "HEAD answers without a body");
    expect_error(tus.patch(&url, MIB, bytes_of(MIB, 5)).await, 404, "no_such_upload").await;
    assert!(app.upload_staging_files().is_empty());
}

#[tokio::test]
async fn expired_uploads_answer_410_and_the_expiry_job_removes_their_bytes() {
    // expired uploads answer 410 for one more expiry period: long enough for the checks below
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "3s".into());
    })
    .await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(3 * MIB, "").await;
    let patched = tus.patch(&url, 0, bytes_of(MIB, 6)).await;
    assert_eq!(patched.status(), 204);
    let expires = patched.headers()["upload-expires"].to_str().unwrap().to_owned();
    assert!(expires.ends_with(" GMT"), "an HTTP date: {expires}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    expect_error(tus.patch(&url, MIB, bytes_of(MIB, 7)).await, 410, "upload_expired").await;
    assert_eq!(tus.head(&url).await.status(), 410, "HEAD answers without a body");
    app.state.jobs.run_until_idle().await.unwrap();
    assert!(app.upload_staging_files().is_empty(), "the expiry job removed the bytes");
    assert_eq!(tus.head(&url).await.status(), 410, "HEAD answers without a body");
}

#[tokio::test]
async fn a_concurrent_patch_is_locked_out_and_a_dropped_one_keeps_its_bytes() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(4 * MIB, 8);
    let url = tus.create(body.len(), "").await;
    // a PATCH that sends 2 MiB, then waits, then breaks off
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(receive, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let slow = {
        let request = tus
            .request(reqwest::Method::PATCH, &url)
            .header("content-type", OCTETS)
            .header("upload-offset", "0")
            .body(reqwest::Body::wrap_stream(stream));
        tokio::spawn(request.send())
    };
    send.send(Ok(Bytes::from(body[..2 * MIB].to_vec()))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tus.patch(&url, 0, body[..10].to_vec()).await;
    expect_error(second, 423, "upload_locked").await;
    send.send(Err(std::io::Error::other("the phone lost its signal"))).await.unwrap();
    drop(send);
    let _ = slow.await.unwrap();
    // the server keeps what arrived and gives the lease back
    let mut offset = 0;
    for _ in 0..50 {
        offset = tus.offset(&url).await;
        if offset == 2 * MIB as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offset, 2 * MIB as u64, "every byte that arrived was kept");
    let resumed = tus.patch(&url, 2 * MIB, body[2 * MIB..].to_vec()).await;
    assert_eq!(resumed.status(), 204, "the lock was released: {:?}", resumed.text().await);
    assert_eq!(tus.files().await[0].sha256.as_str(), sha256_hex(&body));
}

#[tokio::test]
async fn a_sha256_in_the_metadata_binds_the_whole_file() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(2 * MIB + 3, 9);
    let wrong = sha256_hex(b"another file");
    let url = tus.create(body.len(), &format!("sha256 {}", b64(&wrong))).await;
    assert_eq!(tus.patch(&url, 0, body[..MIB].to_vec()).await.status(), 204);
    let refused = tus.patch(&url, MIB, body[MIB..].to_vec()).await;
    expect_error(refused, 400, "hash_mismatch").await;
    assert_eq!(tus.offset(&url).await, MIB as u64, "the completing PATCH was refused whole");
    assert!(tus.files().await.is_empty() && app.blob_files().is_empty(), "nothing was committed");

    let url = tus.create(body.len(), &format!("sha256 {}", b64(&sha256_hex(&body)))).await;
    assert_eq!(tus.patch(&url, 0, body.clone()).await.status(), 204);
    assert_eq!(tus.files().await.len(), 1);
}

#[tokio::test]
async fn a_device_in_the_metadata_makes_a_gallery_event() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let owner = TestUser { user_id: tus.user, token: tus.token.clone() };
    let camera = app.device(&owner, "porch-cam").await;
    let bob = app.user("bob", Level::Uploader, "upload").await;
    let bobs = app.device(&bob, "garage").await;

    let both = format!("folder_id {},device {}", b64("x"), b64("porch-cam"));
    expect_error(tus.post(&[("upload-length", "5"), ("upload-metadata", &both)]).await, 400, "conflicting_target")
        .await;
    for unknown in ["nope".to_owned(), bobs.device_id.to_string(), "garage".to_owned()] {
        let metadata = format!("device {}", b64(&unknown));
        let response = tus.post(&[("upload-length", "5"), ("upload-metadata", &metadata)]).await;
        expect_error(response, 400, "unknown_device").await;
    }

    let body = bytes_of(70_000, 10);
    let url = tus.create(body.len(), &format!("device {},filename {}", b64("porch-cam"), b64("door.jpg"))).await;
    let patched = tus.patch(&url, 0, body.clone()).await;
    assert_eq!(patched.status(), 204);
    let location = patched.headers()["ferry-location"].to_str().unwrap().to_owned();
    let fetched = app.client.get(&location).bearer_auth(&tus.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &body[..], "{location} serves the event's file");
    let events = app.url("/api/gallery/porch-cam/events");
    let listed: Value = app.client.get(events).bearer_auth(&tus.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "door.jpg");
    assert_eq!(listed[0]["size"], body.len());
    assert!(tus.files().await.is_empty(), "an event, not a library file");
    assert!(camera.device_id > 0);
}

#[tokio::test]
async fn deferred_length_creation_with_upload_and_empty_uploads() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    // the length comes with a later PATCH
    let deferred = tus.post(&[("upload-defer-length", "1")]).await;
    assert_eq!(deferred.status(), 201);
    let url = deferred.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(tus.head(&url).await.headers()["upload-defer-length"], "1");
    let body = bytes_of(100_000, 11);
    assert_eq!(tus.patch(&url, 0, body[..60_000].to_vec()).await.status(), 204);
    let short = tus.patch_with(&url, 60_000, Vec::new(), &[("upload-length", "10")]).await;
    expect_error(short, 400, "invalid_length").await;
    let length = body.len().to_string();
    let done = tus.patch_with(&url, 60_000, body[60_000..].to_vec(), &[("upload-length", &length)]).await;
    assert_eq!(done.status(), 204);
    assert_eq!(tus.head(&url).await.headers()["upload-length"], length.as_str());
    assert_eq!(tus.files().await.len(), 1);

    // creation-with-upload: the whole file in the POST, filed before the 201
    let small = bytes_of(5000, 12);
    let created = tus
        .request(reqwest::Method::POST, &app.url("/files/"))
        .header("upload-length", small.len().to_string())
        .header("content-type", OCTETS)
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["upload-offset"], "5000");
    assert_eq!(tus.files().await.len(), 2);

    // an empty file is complete once created
    let empty = tus.post(&[("upload-length", "0")]).await;
    assert_eq!(empty.status(), 201);
    let files = tus.files().await;
    assert!(files.iter().any(|f| f.size == 0), "{files:?}");
}

#[tokio::test]
async fn partial_uploads_concatenate_into_one_file() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(3 * MIB + 11, 13);
    let pieces = [&body[..MIB + 1], &body[MIB + 1..2 * MIB], &body[2 * MIB..]];
    let mut urls = Vec::new();
    for piece in pieces {
        let created = tus.post(&[("upload-length", &piece.len().to_string()), ("upload-concat", "partial")]).await;
        assert_eq!(created.status(), 201);
        let url = created.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(tus.head(&url).await.headers()["upload-concat"], "partial");
        urls.push(url);
    }
    // in any order, one of them in two PATCHes
    assert_eq!(tus.patch(&urls[2], 0, pieces[2].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&urls[0], 0, pieces[0][..100].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&urls[0], 100, pieces[0][100..].to_vec()).await.status(), 204);
    let early = format!("final;{} {}", urls[0], urls[1]);
    expect_error(tus.post(&[("upload-concat", &early)]).await, 400, "invalid_concat").await;
    assert_eq!(tus.patch(&urls[1], 0, pieces[1].to_vec()).await.status(), 204);
    assert!(tus.files().await.is_empty(), "partial uploads are not files");

    let concat = format!("final;{}", urls.join(" "));
    let metadata = format!("filename {},sha256 {}", b64("whole.bin"), b64(&sha256_hex(&body)));
    let created = tus.post(&[("upload-concat", &concat), ("upload-metadata", &metadata)]).await;
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let url = created.headers()["location"].to_str().unwrap().to_owned();
    let files = tus.files().await;
    assert_eq!(files.len(), 1, "filed before the final upload's 201");
    assert_eq!((files[0].title.as_str(), files[0].sha256.as_str()), ("whole.bin", sha256_hex(&body).as_str()));
    let head = tus.head(&url).await;
    assert_eq!(head.headers()["upload-offset"], body.len().to_string().as_str());
    assert!(head.headers()["upload-concat"].to_str().unwrap().starts_with("final;/files/"));
    expect_error(tus.patch(&url, body.len(), vec![1]).await, 403, "final_upload").await;
    for partial in &urls {
        assert_eq!(tus.head(partial).await.status(), 404, "HEAD answers without a body");
    }
    assert!(app.upload_staging_files().is_empty(), "{:?}", app.upload_staging_files());
}

#[tokio::test]
async fn a_large_patch_records_checkpoints_and_hashes_in_one_read() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(70 * MIB + 5, 14);
    let url = tus.create(body.len(), "").await;
    assert_eq!(tus.patch(&url, 0, body[..7].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&url, 7, body[7..].to_vec()).await.status(), 204);
    let file = &tus.files().await[0];
    assert_eq!(file.sha256.as_str(), sha256_hex(&body));
    let blob = app.catalog().blob(&file.sha256).await.unwrap().unwrap();
    let mut top = ferry::domain::ChunkHasher::new(Some(body.len() as u64));
    top.update(&body);
    assert_eq!(blob.chunked_hash, top.finish(body.len() as u64), "the device top-hash came with it");
}

#[tokio::test]
async fn browsers_get_their_preflight_and_see_the_tus_headers() {
    let app = spawn_app_with(|layer| {
        layer.insert("cors_origins", "https://app.example".into());
    })
    .await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(10, "").await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "tus-resumable,upload-offset,content-type,authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");
    let head = tus.request(reqwest::Method::HEAD, &url).header("origin", "https://app.example").send().await.unwrap();
    let exposed = head.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["location", "upload-offset", "upload-length", "upload-expires", "tus-resumable", "tus-version"] {
        assert!(exposed.split(',').any(|h| h.trim() == header), "{header} in {exposed}");
    }
}
