//! Uploads held mid-body: a request whose body has begun and waits for more, so a test can
//! act (take a backup, cut a dependency) while it is in flight.

use std::time::Duration;

use serde_json::Value;

/// Sends the rest of a held body; dropping it ends the body where it is.
pub type Feed = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// The multipart boundary of [`form_file`] and [`form_end`].
pub const BOUNDARY: &str = "ferry-in-flight-boundary";

/// Starts `request` with `first` as the beginning of its body and waits until the server has
/// begun on it (its session slot or upload claim is taken); the answer comes once the body ends.
pub async fn in_flight(
    request: reqwest::RequestBuilder,
    first: Vec<u8>,
) -> (Feed, tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>) {
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    send.send(Ok(first)).await.unwrap();
    let body = futures_util::stream::unfold(receive, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let answer = tokio::spawn(request.body(reqwest::Body::wrap_stream(body)).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    (send, answer)
}

/// The start of a multipart form with one `file` field holding `bytes` (more may follow).
pub fn form_file(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body
}

/// What ends a [`form_file`] form.
pub fn form_end() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// A session-family upload of [`form_file`] parts to `url`.
pub fn form_upload(client: &reqwest::Client, url: &str, token: &str) -> reqwest::RequestBuilder {
    client.post(url).bearer_auth(token).header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
}

/// Registers an upload session of `folder` at the server `base`; its answer.
pub async fn register_session(client: &reqwest::Client, base: &str, token: &str, folder: &str) -> Value {
    let register = client.post(format!("{base}/api/upload/id")).bearer_auth(token).form(&[("folder_id", folder)]);
    register.send().await.unwrap().json().await.unwrap()
}
