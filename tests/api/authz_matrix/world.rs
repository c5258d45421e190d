//! The victim's account and its items, the credentials tried against them, and how a case
//! is sent and judged (see the parent module).

use ferry::domain::{DeviceId, Level, Scope};
use serde_json::{Value, json};

use super::GRANT;

/// A PNG signature and header: enough for a thumbnail the gallery keeps as sent.
const THUMBNAIL: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
use crate::device_client::DeviceClient;
use crate::helpers::*;

/// What every item of the victim's account is named after: no refusal may show it.
pub(super) const MARKER: &str = "victim-secret";
/// The victim's multipart-family file (its name is the caller's to give, so not the marker).
pub(super) const MULTIPART_FILE: &str = "clip-1";

pub(super) fn scopes_text(scopes: impl IntoIterator<Item = Scope>) -> String {
    scopes.into_iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// The victim's account and its items, and the credentials tried against them.
pub(super) struct World<'a> {
    pub(super) app: &'a TestApp,
    pub(super) victim: TestUser,
    pub(super) cam: DeviceClient<'a>,
    pub(super) device_id: DeviceId,
    /// Path parameters naming the victim's items.
    pub(super) ids: Vec<(&'static str, String)>,
    pub(super) content_hash: String,
    /// Another account with every scope at the highest level, and its own device.
    pub(super) mallory_token: String,
    pub(super) mallory_device_key: String,
    pub(super) revoked_token: String,
    /// A user one level below the victim's, with every scope.
    pub(super) viewer_token: String,
    /// Signed-in browsers (web gallery sessions with every scope) of the victim and Mallory.
    pub(super) victim_web: Cred,
    pub(super) mallory_web: Cred,
}

/// A web gallery session of `user` with every scope, as the page sends it (cookie + CSRF token).
async fn signed_in_browser(app: &TestApp, user: ferry::domain::UserId) -> Cred {
    let session = ferry::auth::web::new_session();
    let scopes = Scope::ALL.into_iter().collect();
    let expires_ms = ferry::clock::now_ms() + 3_600_000;
    let new = ferry::catalog::NewWebSession { secret_hash: &session.hash, scopes, token: None, expires_ms };
    app.catalog().open_web_session(user, new).await.unwrap();
    Cred::Web { csrf: Some(ferry::auth::web::csrf_token(&session.secret)), secret: session.secret }
}

impl<'a> World<'a> {
    pub(super) async fn build(app: &'a TestApp) -> World<'a> {
        let (victim, cam) = DeviceClient::setup(app, "alice", "/").await;
        let device_id = app.catalog().list_devices().await.unwrap()[0].device_id;
        let content = format!("{MARKER} bytes").into_bytes();
        let content_hash = cam.upload(&content).await;
        let media = cam.create(&format!("/{MARKER}.jpg"), &content_hash, content.len()).await;
        let media: Value = media.json().await.unwrap();
        let as_victim = |r: reqwest::RequestBuilder| r.bearer_auth(&victim.token);
        let session: Value = as_victim(app.client.post(app.url("/api/upload/id")))
            .form(&[("folder_id", MARKER), ("autofinish", "0")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ulid = session["ulid"].as_str().unwrap().to_owned();
        let form = || {
            let part = reqwest::multipart::Part::bytes(content.clone()).file_name(format!("{MARKER}.jpg"));
            reqwest::multipart::Form::new().part("file", part)
        };
        let stored = as_victim(app.client.post(app.url(&format!("/api/file/{ulid}")))).multipart(form()).send();
        let stored: Value = stored.await.unwrap().json().await.unwrap();
        let event_form = reqwest::multipart::Form::new()
            .text("name", MARKER)
            .part("event", reqwest::multipart::Part::bytes(content.clone()).file_name("e.jpg"))
            .part("thumbnail", reqwest::multipart::Part::bytes(THUMBNAIL.to_vec()).file_name("t.png"));
        let event = as_victim(app.client.post(app.url("/api/gallery/cam/upload"))).multipart(event_form).send();
        let event: Value = event.await.unwrap().json().await.unwrap();
        // the timeline's own item: every other item is deleted by its family's route
        let timeline_form = reqwest::multipart::Form::new()
            .text("name", MARKER)
            .part("event", reqwest::multipart::Part::bytes(content.clone()).file_name("t.jpg"));
        let timeline = as_victim(app.client.post(app.url("/api/gallery/cam/upload"))).multipart(timeline_form).send();
        let timeline: Value = timeline.await.unwrap().json().await.unwrap();
        // a multipart-family file, stored with the family's single PUT
        let put = as_victim(app.client.get(app.url(&format!("/api/users/uploads/{MULTIPART_FILE}")))).send();
        let put: Value = put.await.unwrap().json().await.unwrap();
        let stored_put = app.client.put(put["upload_url"].as_str().unwrap()).body(content.clone()).send().await;
        assert_eq!(stored_put.unwrap().status(), 200);
        let tus = as_victim(app.client.post(app.url("/files/")))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "100")
            .send()
            .await
            .unwrap();
        // a remote import of the victim's (from this server itself, which the matrix's app allows)
        let import = as_victim(app.client.post(app.url("/api/upload/remote")))
            .json(&json!({"url": app.url("/healthz"), "folder_id": MARKER}))
            .send();
        let import: Value = import.await.unwrap().json().await.unwrap();
        let job_id = import["job_id"].as_str().expect("a remote import job").to_owned();
        let tus_id = tus.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();

        let mallory = app.user("mallory", Level::Admin, &scopes_text(Scope::ALL)).await;
        let mallory_device = app.device(&mallory, "mallory-cam").await;
        app.grant(&mallory, &mallory_device, "photos", "/").await;
        let revoked_token = app.token_for(victim.user_id, &scopes_text(Scope::ALL)).await;
        let tokens = app.catalog().list_tokens().await.unwrap();
        app.catalog().revoke_token(tokens.last().unwrap().token_id).await.unwrap();
        let viewer = app.user("vera", Level::Viewer, &scopes_text(Scope::ALL)).await;
        let ids = vec![
            ("media_grant_id", cam.grant.clone()),
            ("media_id", media["media_id"].to_string()),
            ("ulid", ulid),
            ("job_id", job_id),
            ("device", "cam".to_owned()),
            ("event_id", event["eventId"].as_str().unwrap().to_owned()),
            ("id", tus_id),
            ("sha256", content_hash.clone()),
            // the timeline names the event by its family letter; its content is the original
            ("item", format!("e.{}", timeline["eventId"].as_str().unwrap())),
            ("variant", "original".to_owned()),
        ];
        let library_file = stored["file_id"].as_str().unwrap().to_owned();
        let victim_web = signed_in_browser(app, victim.user_id).await;
        let mallory_web = signed_in_browser(app, mallory.user_id).await;
        let mut world = World {
            app,
            victim,
            cam,
            device_id,
            ids,
            content_hash,
            mallory_token: mallory.token,
            mallory_device_key: mallory_device.key,
            revoked_token,
            viewer_token: viewer.token,
            victim_web,
            mallory_web,
        };
        world.ids.push(("library_file", library_file));
        world
    }

    /// `path` naming the victim's items.
    pub(super) fn url(&self, path: &str) -> String {
        let mut filled = path.to_owned();
        for (name, value) in &self.ids {
            filled = filled.replace(&format!("{{{name}}}"), value);
        }
        // a library file (session family) or a multipart-family file, by route
        let file = if path.starts_with("/api/files/") { self.id("library_file") } else { MULTIPART_FILE };
        let filled = filled.replace("{file_id}", file);
        // what the route needs before it looks at the device (a request it can act on)
        let query = if path.ends_with("/upload-url") { "?filename=x.jpg" } else { "" };
        self.app.url(&format!("{filled}{query}"))
    }

    pub(super) fn id(&self, name: &str) -> &str {
        &self.ids.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

/// A credential as a request carries it.
#[derive(Clone)]
pub(super) enum Cred {
    None,
    /// An `Authorization` header value.
    Header(String),
    /// A `device_session_key` in the query string.
    DeviceKey(String),
    /// The web gallery's session cookie, with the page's CSRF token or without it.
    Web {
        secret: String,
        csrf: Option<String>,
    },
}

impl Cred {
    /// The same browser session without its CSRF token (a forged cross-site request).
    pub(super) fn without_csrf(&self) -> Cred {
        match self {
            Cred::Web { secret, .. } => Cred::Web { secret: secret.clone(), csrf: None },
            other => other.clone(),
        }
    }
}

pub(super) fn bearer(token: &str) -> Cred {
    Cred::Header(format!("Bearer {token}"))
}

/// A JSON body each device-family call parses before it looks at the grant (so a refusal
/// comes from the credential, not from the body).
pub(super) fn device_body(method: &str, path: &str) -> Option<Value> {
    let hash = "0".repeat(64);
    let op = path.strip_prefix(GRANT).map(|op| op.trim_start_matches('/'));
    Some(match (method, op) {
        (_, None) if path.starts_with("/device/1/") => json!({}),
        (_, None) => return None,
        (_, Some("upload")) => json!({"file_list": []}),
        (_, Some("s3_object")) => json!({"s3_bucket_id": 1, "file_hash": hash, "file_size": 1}),
        (_, Some("multipart")) => json!({"file_size": 1, "file_hash": hash, "part_list": []}),
        (_, Some("multipart_complete")) => {
            json!({"file_size": 1, "file_hash": hash, "s3_bucket_id": 1, "upload_id": "u", "part_list": []})
        }
        (_, Some("multipart_abort")) => json!({"upload_id": "u"}),
        (_, Some("media")) => {
            json!({"media_path": "/new.jpg", "file_hash": hash, "file_size": 1, "ctime": 1, "mtime": 1})
        }
        ("post", Some("media/{media_id}")) => json!({"file_hash": hash, "file_size": 1, "ctime": 1, "mtime": 1}),
        (_, Some("download")) => json!({"hash_list": []}),
        _ => json!({}),
    })
}

pub(super) async fn send(world: &World<'_>, method: &str, path: &str, url: &str, cred: &Cred) -> (u16, String) {
    let mut url = url.to_owned();
    if let Cred::DeviceKey(key) = cred {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("device_session_key={key}"));
    }
    let method_name = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    // tus routes refuse a request without its version before anything else
    let mut request = world.app.client.request(method_name, url).header("Tus-Resumable", "1.0.0");
    if let Cred::Header(value) = cred {
        request = request.header("authorization", value);
    }
    if let Cred::Web { secret, csrf } = cred {
        request = request.header("cookie", format!("ferry_session={secret}"));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
    }
    // a body each route can read, so that the credential decides the answer
    let form = |field: &str| {
        let part = reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.jpg");
        reqwest::multipart::Form::new().text("name", "x").part(field.to_owned(), part)
    };
    request = match device_body(method, path) {
        Some(body) => request.json(&body),
        None if method == "put" => request.body("x"),
        None if path.starts_with("/files/{id}") && ["patch", "post"].contains(&method) => request
            .header("content-type", crate::tus::OCTETS)
            .header("upload-offset", "0")
            .header("x-http-method-override", "PATCH")
            .body("x"),
        None if path.starts_with("/api/gallery/") && path.ends_with("/upload") => request.multipart(form("event")),
        // finishing a session named in the body, not the path
        None if method == "delete" && path.ends_with("/upload/id") => request.json(&json!({"ulid": world.id("ulid")})),
        None if path.contains("/file/") || path.starts_with("/signed/session/") => request.multipart(form("file")),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Records a failure unless the answer is `status` (with `code`, when the answer has a body)
/// and shows nothing of the victim's items.
pub(super) struct Verdicts<'w> {
    pub(super) world: &'w World<'w>,
    /// `/openapi.json`: every refusal must be one it describes for the route.
    pub(super) doc: &'w Value,
    pub(super) failures: Vec<String>,
    pub(super) tried: usize,
}

impl Verdicts<'_> {
    pub(super) async fn expect(
        &mut self,
        method: &str,
        path: &str,
        case: &str,
        cred: &Cred,
        status: u16,
        code: Option<&str>,
    ) {
        let url = self.world.url(path);
        self.expect_at(method, path, &url, case, cred, status, code).await;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn expect_at(
        &mut self,
        method: &str,
        path: &str,
        url: &str,
        case: &str,
        cred: &Cred,
        status: u16,
        code: Option<&str>,
    ) {
        self.tried += 1;
        let (got, text) = send(self.world, method, path, url, cred).await;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code_ok = method == "head" || code.is_none_or(|c| body["error"] == c);
        let leaked = text.contains(MARKER) || text.contains(&self.world.content_hash);
        let documented = self.doc["paths"][path][method]["responses"].get(status.to_string()).is_some();
        if !documented {
            self.failures.push(format!("{method} {path} [{case}]: {status} is not in /openapi.json"));
        }
        if got != status || !code_ok || leaked {
            let want = code.map_or(String::new(), |c| format!(" {c}"));
            self.failures.push(format!("{method} {path} [{case}]: want {status}{want}, got {got} {text}"));
        }
    }

    /// A credential the rule admits gets past the permission check.
    pub(super) async fn admitted(&mut self, method: &str, path: &str, case: &str, cred: &Cred) {
        self.tried += 1;
        let (got, text) = send(self.world, method, path, &self.world.url(path), cred).await;
        // the victim's own item is there for the victim (deletes run after every other call);
        // a device multipart completion names its upload in the body, which here is made up;
        // the items here are no videos, so a rendition route finds the item and says it has none
        let made_up_upload = path.ends_with("/multipart_complete") && text.contains("no_such_upload");
        let no_rendition = path.ends_with("/rendition") && text.contains("\"no_rendition\"");
        let missing = got == 404 && names_victims_item(method, path) && !made_up_upload && !no_rendition;
        if [401, 403, 412].contains(&got) || got >= 500 || missing {
            self.failures.push(format!("{method} {path} [{case}]: refused {got} {text}"));
        }
    }
}

/// Whether `method path` names one of the victim's items (file names of the multipart family
/// are per account: another account naming the same one names its own; a session may be
/// finished by its ulid in the body).
pub(super) fn names_victims_item(method: &str, path: &str) -> bool {
    ["{media_grant_id}", "{ulid}", "{device}", "{event_id}", "{id}", "{job_id}", "{item}"]
        .iter()
        .any(|p| path.contains(p))
        || path.starts_with("/api/files/")
        || path.starts_with("/api/users/files/")
        || (method == "delete" && path.ends_with("/upload/id"))
}
