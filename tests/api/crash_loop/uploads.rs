//! The uploads the crash loop runs, one of a kind per call, and how each acknowledged one
//! is read back.

use std::sync::Mutex;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

/// Kinds of upload, in turn: 0 a device signed PUT and media create, 1 a session form upload,
/// 2 a gallery form upload, 3 a tus upload in one PATCH, 4 a multipart-family single PUT,
/// 5 a session upload the session refuses (mostly over its size limit, once staged), 6 a presigned multipart upload completed, 7 one
/// aborted, 8 a gallery upload-url PUT, 9 a tus upload in two PATCHes, 10 a device media
/// update to new content; and [`DEVICE_MULTIPART`] besides.
pub(super) const KINDS: usize = 11;

/// A device multipart upload (parts, completion, media create) of a file over 16 MiB: one
/// worker's first upload each round, so the kill often lands in its parts or completion.
pub(super) const DEVICE_MULTIPART: usize = 11;

/// The kinds a client may see acknowledged (5 is refused by design, 7 aborted).
pub(super) const ACKNOWLEDGED_KINDS: [usize; 9] = [0, 1, 2, 3, 4, 6, 8, 9, 10];

/// Where an acknowledged upload is read back (a path on whichever server runs now).
#[derive(Clone, Debug)]
pub(super) enum Readback {
    /// GET with the token.
    Path(String),
    /// The device family's `download` of this content, then its signed URL.
    DeviceContent(String),
}

#[derive(Clone, Debug)]
pub(super) struct Acked {
    pub kind: usize,
    pub what: String,
    pub readback: Readback,
    pub bytes: Vec<u8>,
}

pub(super) struct Credentials {
    pub token: String,
    pub key: String,
    pub grant: String,
}

/// A presigned multipart upload whose abort was acknowledged, with what completing it took.
#[derive(Clone, Debug)]
pub(super) struct Aborted {
    pub name: String,
    pub upload_id: String,
    pub etag: String,
}

/// What the clients saw: uploads acknowledged, session uploads refused with an error status
/// (by their title), and multipart uploads aborted.
#[derive(Default)]
pub(super) struct Seen {
    pub acked: Vec<Acked>,
    pub refused_titles: Vec<String>,
    pub aborted: Vec<Aborted>,
}

/// The path of a URL (links name the server that handed them out; it runs elsewhere now).
fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/".into(), |at| after_scheme[at..].to_owned())
}

/// One upload of `kind` (see [`KINDS`]); `Some` when acknowledged.
pub(super) async fn upload_once(
    client: &reqwest::Client,
    base: &str,
    creds: &Credentials,
    kind: usize,
    name: &str,
    bytes: Vec<u8>,
    seen: &Mutex<Seen>,
) -> reqwest::Result<Option<Acked>> {
    let token = &creds.token;
    let acked = |readback| Some(Acked { kind, what: format!("{kind}:{name}"), readback, bytes: bytes.clone() });
    match kind {
        0 | 10 | DEVICE_MULTIPART => {
            let device = Device { client, base, creds };
            let sent = if kind == DEVICE_MULTIPART {
                device.send_in_parts(&bytes).await?
            } else {
                device.send(&bytes).await?
            };
            let Some(hash) = sent else { return Ok(None) };
            let created = device.create(name, &hash, bytes.len()).await?;
            let Some(media_id) = created else { return Ok(None) };
            if kind != 10 {
                return Ok(acked(Readback::DeviceContent(hash)));
            }
            // the path's new content: the same bytes reversed
            let newer: Vec<u8> = bytes.iter().rev().copied().collect();
            let Some(new_hash) = device.send(&newer).await? else { return Ok(None) };
            let updated = device.update(media_id, &new_hash, newer.len()).await?;
            let what = format!("{kind}:{name}");
            Ok(updated.then_some(Acked { kind, what, readback: Readback::DeviceContent(new_hash), bytes: newer }))
        }
        // 1: a session upload; 5: one the session must refuse (a file type it does not take)
        1 | 5 => {
            let register = client.post(format!("{base}/api/upload/id")).bearer_auth(token);
            let mut fields = vec![("folder_id", "crash".to_owned())];
            // refused after its bytes are staged (one byte too many), or up front by its name
            match bytes.len() {
                _ if kind == 1 => {}
                1 => fields.push(("file_extensions", "jpg".to_owned())),
                size => fields.push(("max_filesize", (size - 1).to_string())),
            }
            let session: Value = register.form(&fields).send().await?.json().await?;
            let Some(ulid) = session["ulid"].as_str() else { return Ok(None) };
            let form =
                Form::new().text("title", name.to_owned()).part("file", Part::bytes(bytes.clone()).file_name("f.bin"));
            let stored =
                client.post(format!("{base}/api/file/{ulid}")).bearer_auth(token).multipart(form).send().await?;
            if stored.status().is_client_error() || stored.status().is_server_error() {
                seen.lock().unwrap().refused_titles.push(name.to_owned());
                return Ok(None);
            }
            assert!(kind != 5, "a file the session must refuse was stored: {name}");
            let answer: Value = stored.json().await?;
            Ok(answer["file_id"].as_str().map(|id| format!("/api/files/{id}")).and_then(|p| acked(Readback::Path(p))))
        }
        2 => {
            let form =
                Form::new().text("name", name.to_owned()).part("event", Part::bytes(bytes.clone()).file_name("e.jpg"));
            let stored = client.post(format!("{base}/api/gallery/cam/upload")).bearer_auth(token).multipart(form);
            let answer: Value = stored.send().await?.json().await?;
            let Some(event) = answer["eventId"].as_str().filter(|_| answer["success"] == true) else {
                return Ok(None);
            };
            Ok(acked(Readback::Path(format!("/api/gallery/cam/events/{event}/file"))))
        }
        3 | 9 => {
            let patches = if kind == 3 { 1 } else { 2 };
            Ok(tus_upload(client, base, token, &bytes, patches).await?.and_then(|p| acked(Readback::Path(p))))
        }
        4 => {
            let target: Value =
                client.get(format!("{base}/api/users/uploads/{name}")).bearer_auth(token).send().await?.json().await?;
            let Some(url) = target["upload_url"].as_str() else { return Ok(None) };
            let put = client.put(format!("{base}{}", path_of(url))).body(bytes.clone()).send().await?;
            Ok(put.status().is_success().then(|| acked(Readback::Path(format!("/api/users/files/{name}")))).flatten())
        }
        6 | 7 => {
            let started: Value = client
                .get(format!("{base}/api/users/multipart_upload_start/{name}?part_count=1"))
                .bearer_auth(token)
                .header("accept", "application/json; version=1")
                .send()
                .await?
                .json()
                .await?;
            let (Some(upload_id), Some(url)) = (started["upload_id"].as_str(), started["presigned_urls"][0].as_str())
            else {
                return Ok(None);
            };
            let put = client.put(format!("{base}{}", path_of(url))).body(bytes.clone()).send().await?;
            let Some(etag) = put.headers().get("etag").and_then(|e| e.to_str().ok()).map(str::to_owned) else {
                return Ok(None);
            };
            if kind == 7 {
                let abort = format!("{base}/api/users/multipart_upload/{name}?upload_id={upload_id}");
                if client.delete(abort).bearer_auth(token).send().await?.status() == 204 {
                    let (name, upload_id) = (name.to_owned(), upload_id.to_owned());
                    seen.lock().unwrap().aborted.push(Aborted { name, upload_id, etag });
                }
                return Ok(None);
            }
            let parts = json!({"upload_id": upload_id, "parts": [{"part_number": 1, "etag": etag}]});
            let complete = format!("{base}/api/users/multipart_upload_complete/{name}");
            let done = client.post(complete).bearer_auth(token).json(&parts).send().await?;
            Ok(done.status().is_success().then(|| acked(Readback::Path(format!("/api/users/files/{name}")))).flatten())
        }
        _ => {
            let asked = client.get(format!("{base}/api/gallery/cam/upload-url?filename={name}.bin")).bearer_auth(token);
            let urls: Value = asked.send().await?.json().await?;
            let Some(url) = urls["upload_url"].as_str() else { return Ok(None) };
            let put: Value =
                client.put(format!("{base}{}", path_of(url))).body(bytes.clone()).send().await?.json().await?;
            let Some(event) = put["eventId"].as_str().filter(|_| put["success"] == true) else { return Ok(None) };
            Ok(acked(Readback::Path(format!("/api/gallery/cam/events/{event}/file"))))
        }
    }
}

/// The device family's calls: content sent by signed PUT, media created and updated.
struct Device<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    creds: &'a Credentials,
}

impl Device<'_> {
    fn url(&self, call: &str) -> String {
        let creds = self.creds;
        format!("{}/device/1/media_grant/{}/{call}?device_session_key={}", self.base, creds.grant, creds.key)
    }

    /// The content's hash once the server holds it for this account.
    async fn send(&self, bytes: &[u8]) -> reqwest::Result<Option<String>> {
        let hash = sha256_hex(bytes);
        let check = json!({"file_list": [{"file_hash": hash, "file_size": bytes.len()}]});
        let answer: Value = self.client.post(self.url("upload")).json(&check).send().await?.json().await?;
        let entry = &answer["upload_list"][0];
        if entry["skip_upload"] != true {
            let put = self.client.put(entry["signed_opts"]["url"].as_str().unwrap_or_default()).body(bytes.to_vec());
            if !put.send().await?.status().is_success() {
                return Ok(None);
            }
        }
        Ok(Some(hash))
    }

    /// Sends content over 16 MiB in the device family's parts; its top-hash once complete.
    async fn send_in_parts(&self, bytes: &[u8]) -> reqwest::Result<Option<String>> {
        let mut top = ferry::domain::ChunkHasher::new(Some(bytes.len() as u64));
        top.update(bytes);
        let hash = top.finish(bytes.len() as u64).expect("a top-hash").to_string();
        let chunk = ferry::domain::chunk_size_for(bytes.len() as u64) as usize;
        let parts: Vec<&[u8]> = bytes.chunks(chunk).collect();
        let plan: Vec<Value> = (parts.iter().zip(1..))
            .map(|(part, n)| json!({"part_num": n, "part_size": part.len(), "part_hash": sha256_hex(part)}))
            .collect();
        let start = json!({"file_size": bytes.len(), "file_hash": hash, "part_list": plan});
        let started: Value = self.client.post(self.url("multipart")).json(&start).send().await?.json().await?;
        let (Some(upload_id), Some(urls)) = (started["upload_id"].as_str(), started["signed_url_list"].as_array())
        else {
            // 409 skip_upload: this account holds it already
            return Ok((started["skip_upload"] == true).then_some(hash));
        };
        let mut etags = Vec::new();
        for (entry, part) in urls.iter().zip(&parts) {
            let put = self.client.put(entry["url"].as_str().unwrap_or_default()).body(part.to_vec()).send().await?;
            let Some(etag) = put.headers().get("etag").and_then(|e| e.to_str().ok()) else { return Ok(None) };
            etags.push(json!({"part_num": entry["part_num"], "etag": etag}));
        }
        let complete = json!({"file_size": bytes.len(), "file_hash": hash, "s3_bucket_id": started["s3_bucket_id"],
                              "upload_id": upload_id, "part_list": etags});
        let done = self.client.post(self.url("multipart_complete")).json(&complete).send().await?;
        Ok(done.status().is_success().then_some(hash))
    }

    async fn create(&self, name: &str, hash: &str, size: usize) -> reqwest::Result<Option<i64>> {
        let media =
            json!({"media_path": format!("/{name}"), "file_hash": hash, "file_size": size, "ctime": 1, "mtime": 1});
        let created = self.client.post(self.url("media")).json(&media).send().await?;
        if !created.status().is_success() {
            return Ok(None);
        }
        Ok(created.json::<Value>().await?["media_id"].as_i64())
    }

    async fn update(&self, media_id: i64, hash: &str, size: usize) -> reqwest::Result<bool> {
        let media = json!({"file_hash": hash, "file_size": size, "ctime": 2, "mtime": 2});
        let updated = self.client.post(self.url(&format!("media/{media_id}"))).json(&media).send().await?;
        Ok(updated.status().is_success())
    }
}

/// A tus upload of `bytes` in `patches` PATCHes; the finished file's path once acknowledged.
async fn tus_upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    bytes: &[u8],
    patches: usize,
) -> reqwest::Result<Option<String>> {
    let create = client.post(format!("{base}/files/")).bearer_auth(token).header("tus-resumable", "1.0.0");
    let created = create.header("upload-length", bytes.len().to_string()).send().await?;
    let Some(location) = created.headers().get("location").and_then(|l| l.to_str().ok()) else {
        return Ok(None);
    };
    let upload = format!("{base}{}", path_of(location));
    let step = bytes.len().div_ceil(patches).max(1);
    let mut finished = None;
    for (n, chunk) in bytes.chunks(step).enumerate() {
        let patched = client
            .patch(&upload)
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", (n * step).to_string())
            .header("content-type", crate::tus::OCTETS)
            .body(chunk.to_vec())
            .send()
            .await?;
        if patched.status() != 204 {
            return Ok(None);
        }
        finished = patched.headers().get("ferry-location").and_then(|l| l.to_str().ok()).map(path_of);
    }
    Ok(finished)
}

/// What is stored for `acked` on the server at `base` now.
pub(super) async fn read_back(
    client: &reqwest::Client,
    base: &str,
    creds: &Credentials,
    acked: &Acked,
) -> (u16, Vec<u8>) {
    let response = match &acked.readback {
        Readback::Path(path) => client.get(format!("{base}{path}")).bearer_auth(&creds.token).send().await.unwrap(),
        Readback::DeviceContent(hash) => {
            let url = format!("{base}/device/1/media_grant/{}/download?device_session_key={}", creds.grant, creds.key);
            let answer: Value =
                client.post(url).json(&json!({"hash_list": [hash]})).send().await.unwrap().json().await.unwrap();
            let Some(signed) = answer["download_list"][0]["url"].as_str() else { return (404, Vec::new()) };
            client.get(format!("{base}{}", path_of(signed))).send().await.unwrap()
        }
    };
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}
