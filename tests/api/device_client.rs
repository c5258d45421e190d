//! A typed client for the device family, as a device would use it.

use serde_json::{Value, json};

use crate::helpers::*;

pub struct DeviceClient<'a> {
    pub app: &'a TestApp,
    pub key: String,
    pub grant: String,
}

impl<'a> DeviceClient<'a> {
    /// A user with an uploader token, a device, a volume and a grant at `prefix`.
    pub async fn setup(app: &'a TestApp, user: &str, prefix: &str) -> (TestUser, DeviceClient<'a>) {
        let owner = app.user(user, ferry::domain::Level::Uploader, "upload,read,delete").await;
        let device = app.device(&owner, "cam").await;
        let grant = app.grant(&owner, &device, "photos", prefix).await;
        (owner, DeviceClient { app, key: device.key, grant })
    }

    pub fn url(&self, op: &str) -> String {
        self.app.url(&format!("/device/1/media_grant/{}/{op}", self.grant))
    }

    /// POSTs `body` plus the device key; returns the raw response.
    pub async fn post(&self, op: &str, mut body: Value) -> reqwest::Response {
        body["device_session_key"] = json!(self.key);
        self.app.client.post(self.url(op)).json(&body).send().await.unwrap()
    }

    pub async fn post_ok(&self, op: &str, body: Value) -> Value {
        let response = self.post(op, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{op}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Uploads `data` the device way (batch check, signed PUT, registration); returns the file hash.
    pub async fn upload(&self, data: &[u8]) -> String {
        let hash = sha256_hex(data);
        let answer = self.post_ok("upload", json!({"file_list": [{"file_hash": hash, "file_size": data.len()}]})).await;
        let entry = &answer["upload_list"][0];
        if entry["skip_upload"] != true {
            let opts = &entry["signed_opts"];
            assert_eq!(opts["method"], "PUT");
            let mut put = self.app.client.put(opts["url"].as_str().unwrap()).body(data.to_vec());
            for (name, value) in opts["headers"].as_object().into_iter().flatten() {
                put = put.header(name, value.as_str().unwrap());
            }
            let put = put.send().await.unwrap();
            assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
            let registered = self
                .post_ok(
                    "s3_object",
                    json!({"s3_bucket_id": entry["s3_bucket_id"], "file_hash": hash, "file_size": data.len()}),
                )
                .await;
            assert_eq!(registered, json!({}));
        }
        hash
    }

    pub async fn create(&self, path: &str, hash: &str, size: usize) -> reqwest::Response {
        let body = json!({"media_path": path, "file_hash": hash, "file_size": size,
                          "ctime": "2026-01-02T03:04:05Z", "mtime": "2026-01-02T03:04:06Z"});
        self.post("media", body).await
    }

    /// Pages the change feed from `cursor` to the end; returns every item seen and the last cursor.
    pub async fn feed_from(&self, mut cursor: String, limit: u32) -> (Vec<Value>, String) {
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            let page = self.post_ok("media_list", json!({"cursor": cursor, "limit": limit})).await;
            seen.extend(page["media_list"].as_array().unwrap().iter().cloned());
            cursor = page["next_cursor"].as_str().expect("next_cursor is always present").to_owned();
            if page["has_more"] == false {
                return (seen, cursor);
            }
        }
        panic!("the feed never ended");
    }
}
