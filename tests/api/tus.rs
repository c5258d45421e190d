//! tus 1.0.0 at `/files/` (API.md §5), spoken with reqwest: every status the protocol and
//! Ferry's rules give, and where finished uploads land. Real clients are in `tus_clients`,
//! two replicas in `replicas`.

use std::time::Duration;

use base64::Engine;
use ferry::domain::{Level, UserId};
use sha2::Digest;

use crate::helpers::*;

pub const MIB: usize = 1024 * 1024;
pub const OCTETS: &str = "application/offset+octet-stream";

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

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
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
    // expired uploads answer 410 for one more expiry period: long enough for the checks below,
    // the expiry job's run included (on S3 it removes a multipart upload and staging objects)
    let app = spawn_app_with(|layer| {
        layer.insert("upload_expiry", "6s".into());
    })
    .await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(3 * MIB, "").await;
    let patched = tus.patch(&url, 0, bytes_of(MIB, 6)).await;
    assert_eq!(patched.status(), 204);
    let expires = patched.headers()["upload-expires"].to_str().unwrap().to_owned();
    assert!(expires.ends_with(" GMT"), "an HTTP date: {expires}");
    tokio::time::sleep(Duration::from_millis(6500)).await;
    expect_error(tus.patch(&url, MIB, bytes_of(MIB, 7)).await, 410, "upload_expired").await;
    assert_eq!(tus.head(&url).await.status(), 410, "HEAD answers without a body");
    app.state.jobs.run_until_idle().await.unwrap();
    assert!(app.upload_staging_files().is_empty(), "the expiry job removed the bytes");
    assert_eq!(tus.head(&url).await.status(), 410, "HEAD answers without a body");
}
