//! The authorization matrix (issue 27): every operation `/openapi.json` describes (every
//! route the server serves: tests/api/openapi.rs) has a row in [`ROUTES`] naming its guard,
//! an entry of the permission table (`ferry::auth::permissions`) or a signature. The
//! credentials each guard must refuse follow from its rule, and every one is tried against
//! another account's real items: no credential, a malformed one, a revoked token, a token
//! without the scope, a user below the level, another account's credential, a disabled
//! device, a disabled grant, a tampered and an expired signature. Each must get the
//! documented refusal and no byte of the items; a credential the rule admits must pass.

use std::collections::BTreeSet;

use ferry::auth::permissions::{Accepts, Endpoint, rule_for};
use ferry::catalog::DeviceFlag;
use ferry::domain::{DeviceId, Level, Scope};
use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;

#[derive(Clone, Copy, Debug)]
enum Guard {
    /// No credential: health, metrics, the document, tus discovery.
    Open,
    /// A URL Ferry signed.
    Signed,
    Table(Endpoint),
}

use Endpoint::*;
use Guard::{Open, Signed, Table};

const GRANT: &str = "/device/1/media_grant/{media_grant_id}";

/// Every operation and its guard: a route served without a row here fails the test.
const ROUTES: &[(&str, &str, Guard)] = &[
    ("get", "/healthz", Open),
    ("get", "/readyz", Open),
    ("get", "/metrics", Open),
    ("get", "/openapi.json", Open),
    ("options", "/files", Open),
    ("options", "/files/", Open),
    ("options", "/files/{id}", Open),
    ("put", "/signed/blob", Signed),
    ("get", "/signed/blob/{sha256}", Signed),
    ("put", "/signed/part", Signed),
    ("put", "/signed/file", Signed),
    ("put", "/signed/gallery", Signed),
    ("post", "/signed/session/{ulid}", Signed),
    ("post", "/device/1/current", Table(DeviceStatus)),
    ("post", "/device/1/media_grant", Table(DeviceStatus)),
    ("post", "/device/1/media_grant/{media_grant_id}/upload", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/s3_object", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart_complete", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart_abort", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media/{media_id}", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/download", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media_list", Table(DeviceFamily)),
    ("delete", "/device/1/media_grant/{media_grant_id}/media/{media_id}", Table(DeviceMediaDelete)),
    ("get", "/api/users/multipart_upload_start/{file_id}", Table(Multipart)),
    ("post", "/api/users/multipart_upload_complete/{file_id}", Table(Multipart)),
    ("delete", "/api/users/multipart_upload/{file_id}", Table(Multipart)),
    ("get", "/api/users/uploads/{file_id}", Table(Multipart)),
    ("get", "/api/users/files/{file_id}", Table(OwnFile)),
    ("delete", "/api/users/files/{file_id}", Table(FileDelete)),
    ("post", "/api/upload/id", Table(SessionUpload)),
    ("delete", "/api/upload/id", Table(SessionUpload)),
    ("delete", "/api/upload/id/{ulid}", Table(SessionUpload)),
    ("post", "/api/file/{ulid}", Table(SessionUpload)),
    ("post", "/api/upload/remote", Table(SessionUpload)),
    ("get", "/api/upload/remote/{job_id}", Table(SessionUpload)),
    ("post", "/api/upload/blob", Table(SessionUpload)),
    ("post", "/upload/id", Table(SessionUpload)),
    ("delete", "/upload/id", Table(SessionUpload)),
    ("delete", "/upload/id/{ulid}", Table(SessionUpload)),
    ("post", "/file/{ulid}", Table(SessionUpload)),
    ("post", "/upload/remote", Table(SessionUpload)),
    ("get", "/upload/remote/{job_id}", Table(SessionUpload)),
    ("post", "/upload/blob", Table(SessionUpload)),
    ("get", "/api/files/{file_id}", Table(OwnFile)),
    ("delete", "/api/files/{file_id}", Table(FileDelete)),
    ("get", "/api/gallery/{device}/paths", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events/{event_id}/file", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events/{event_id}/thumbnail", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/stats", Table(GalleryRead)),
    ("delete", "/api/gallery/{device}/events/{event_id}", Table(GalleryDelete)),
    ("post", "/api/gallery/{device}/upload", Table(GalleryUpload)),
    ("get", "/api/gallery/{device}/upload-url", Table(GalleryUpload)),
    ("post", "/api/gallery/{device}/harvest", Table(GalleryUpload)),
    ("post", "/api/gallery/{device}/pull/{event_id}", Table(GalleryUpload)),
    ("post", "/files", Table(Tus)),
    ("post", "/files/", Table(Tus)),
    ("head", "/files/{id}", Table(Tus)),
    ("patch", "/files/{id}", Table(Tus)),
    ("delete", "/files/{id}", Table(Tus)),
    ("post", "/files/{id}", Table(Tus)),
    ("get", "/api/me", Table(AccountInfo)),
    ("get", "/api/usage", Table(UsageRead)),
];

/// What every item of the victim's account is named after: no refusal may show it.
const MARKER: &str = "victim-secret";
/// The victim's multipart-family file (its name is the caller's to give, so not the marker).
const MULTIPART_FILE: &str = "clip-1";

fn scopes_text(scopes: impl IntoIterator<Item = Scope>) -> String {
    scopes.into_iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// The victim's account and its items, and the credentials tried against them.
struct World<'a> {
    app: &'a TestApp,
    victim: TestUser,
    cam: DeviceClient<'a>,
    device_id: DeviceId,
    /// Path parameters naming the victim's items.
    ids: Vec<(&'static str, String)>,
    content_hash: String,
    /// Another account with every scope at the highest level, and its own device.
    mallory_token: String,
    mallory_device_key: String,
    revoked_token: String,
    /// A user one level below the victim's, with every scope.
    viewer_token: String,
}

impl<'a> World<'a> {
    async fn build(app: &'a TestApp) -> World<'a> {
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
            .part("event", reqwest::multipart::Part::bytes(content.clone()).file_name("e.jpg"));
        let event = as_victim(app.client.post(app.url("/api/gallery/cam/upload"))).multipart(event_form).send();
        let event: Value = event.await.unwrap().json().await.unwrap();
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
            ("job_id", "1".to_owned()),
            ("device", "cam".to_owned()),
            ("event_id", event["eventId"].as_str().unwrap().to_owned()),
            ("id", tus_id),
            ("sha256", content_hash.clone()),
        ];
        let library_file = stored["file_id"].as_str().unwrap().to_owned();
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
        };
        world.ids.push(("library_file", library_file));
        world
    }

    /// `path` naming the victim's items.
    fn url(&self, path: &str) -> String {
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

    fn id(&self, name: &str) -> &str {
        &self.ids.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

/// A credential as a request carries it.
#[derive(Clone)]
enum Cred {
    None,
    /// An `Authorization` header value.
    Header(String),
    /// A `device_session_key` in the query string.
    DeviceKey(String),
}

fn bearer(token: &str) -> Cred {
    Cred::Header(format!("Bearer {token}"))
}

/// A JSON body each device-family call parses before it looks at the grant (so a refusal
/// comes from the credential, not from the body).
fn device_body(method: &str, path: &str) -> Option<Value> {
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

async fn send(world: &World<'_>, method: &str, path: &str, url: &str, cred: &Cred) -> (u16, String) {
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
        None if path.contains("/file/") || path.starts_with("/signed/session/") => request.multipart(form("file")),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Records a failure unless the answer is `status` (with `code`, when the answer has a body)
/// and shows nothing of the victim's items.
struct Verdicts<'w> {
    world: &'w World<'w>,
    /// `/openapi.json`: every refusal must be one it describes for the route.
    doc: &'w Value,
    failures: Vec<String>,
    tried: usize,
}

impl Verdicts<'_> {
    async fn expect(&mut self, method: &str, path: &str, case: &str, cred: &Cred, status: u16, code: Option<&str>) {
        let url = self.world.url(path);
        self.expect_at(method, path, &url, case, cred, status, code).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn expect_at(
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
    async fn admitted(&mut self, method: &str, path: &str, case: &str, cred: &Cred) {
        self.tried += 1;
        let (got, text) = send(self.world, method, path, &self.world.url(path), cred).await;
        if [401, 403, 412].contains(&got) || got >= 500 {
            self.failures.push(format!("{method} {path} [{case}]: refused {got} {text}"));
        }
    }
}

/// Whether `path` names one of the victim's items (file names of the multipart family are
/// per account: another account naming the same one names its own).
fn names_victims_item(path: &str) -> bool {
    ["{media_grant_id}", "{ulid}", "{device}", "{event_id}", "{id}"].iter().any(|p| path.contains(p))
        || path.starts_with("/api/files/")
        || path.starts_with("/api/users/files/")
}

#[tokio::test]
async fn every_route_refuses_every_credential_its_guard_does_not_admit_and_shows_nothing() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.clone(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = served.difference(&table).collect();
    assert!(missing.is_empty(), "routes served but missing from the table: {missing:?}");
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(stale.is_empty(), "rows for routes no longer served: {stale:?}");

    let world = World::build(&app).await;
    let mut verdicts = Verdicts { world: &world, doc: &doc, failures: Vec::new(), tried: 0 };
    let victim_key = Cred::DeviceKey(world.cam.key.clone());
    let victim_token = bearer(&world.victim.token);
    for &(method, path, guard) in ROUTES {
        match guard {
            Open => {}
            Signed => signed_cases(&mut verdicts, method, path).await,
            Table(endpoint) => {
                let rule = rule_for(endpoint);
                let key_ok = matches!(rule.accepts, Accepts::DeviceKey | Accepts::DeviceKeyOrToken);
                let token_ok = matches!(rule.accepts, Accepts::Token | Accepts::DeviceKeyOrToken);
                // the device family answers an unknown credential 403, as its documentation says
                let anonymous = if key_ok { 403 } else { 401 };
                let v = &mut verdicts;
                let unauthorized = Some("unauthorized");
                v.expect(method, path, "no credential", &Cred::None, anonymous, unauthorized).await;
                v.expect(method, path, "forged token", &bearer("fry_t_forged"), anonymous, unauthorized).await;
                let basic = Cred::Header(format!("Basic {}", world.victim.token));
                v.expect(method, path, "unknown scheme", &basic, anonymous, unauthorized).await;
                v.expect(method, path, "revoked token", &bearer(&world.revoked_token), anonymous, unauthorized).await;
                if key_ok {
                    let forged = Cred::DeviceKey("fry_d_forged".into());
                    v.expect(method, path, "forged device key", &forged, 403, unauthorized).await;
                } else {
                    v.expect(method, path, "a device key for a token", &victim_key, 403, Some("forbidden")).await;
                }
                if !token_ok {
                    v.expect(method, path, "a token for a device key", &victim_token, 403, unauthorized).await;
                }
                if token_ok && let Some(scope) = rule.scope {
                    let others = Scope::ALL.into_iter().filter(|s| *s != scope);
                    let token = app.token_for(world.victim.user_id, &scopes_text(others)).await;
                    v.expect(method, path, "token without the scope", &bearer(&token), 403, Some("forbidden")).await;
                }
                if token_ok && rule.min_level > Level::Viewer {
                    let below = bearer(&world.viewer_token);
                    v.expect(method, path, "user below the level", &below, 403, Some("forbidden")).await;
                }
                if names_victims_item(path) && token_ok {
                    let mallory = bearer(&world.mallory_token);
                    v.expect(method, path, "another account's token", &mallory, 404, None).await;
                }
                if names_victims_item(path) && key_ok && path.contains("{media_grant_id}") {
                    let mallory = Cred::DeviceKey(world.mallory_device_key.clone());
                    v.expect(method, path, "another account's device", &mallory, 404, Some("no_such_grant")).await;
                }
            }
        }
    }

    // a disabled grant, then a disabled device (refused within the principal cache's lifetime)
    let grant_id = world.cam.grant.parse().unwrap();
    app.catalog().set_grant_disabled(grant_id, true).await.unwrap();
    for &(method, path, _) in ROUTES.iter().filter(|(_, p, _)| p.starts_with(GRANT)) {
        verdicts.expect(method, path, "disabled grant", &victim_key, 403, Some("grant_disabled")).await;
    }
    app.catalog().set_grant_disabled(grant_id, false).await.unwrap();
    app.catalog().set_device_flag(world.device_id, DeviceFlag::Disabled, true).await.unwrap();
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL + std::time::Duration::from_millis(50)).await;
    for &(method, path, guard) in ROUTES {
        let Table(endpoint) = guard else { continue };
        let rule = rule_for(endpoint);
        if rule.accepts != Accepts::Token && !rule.disabled_device_ok {
            verdicts.expect(method, path, "disabled device", &victim_key, 412, Some("device_disabled")).await;
        }
    }
    app.catalog().set_device_flag(world.device_id, DeviceFlag::Disabled, false).await.unwrap();
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL + std::time::Duration::from_millis(50)).await;

    // what the rule admits passes (last: some of these delete the items)
    for &(method, path, guard) in ROUTES {
        match guard {
            Open => verdicts.admitted(method, path, "no credential needed", &Cred::None).await,
            Signed => {}
            Table(endpoint) => {
                let rule = rule_for(endpoint);
                if rule.accepts != Accepts::Token {
                    verdicts.admitted(method, path, "the device's key", &victim_key).await;
                }
                if rule.accepts != Accepts::DeviceKey {
                    let scope = rule.scope.unwrap_or(Scope::Basic);
                    let token = app.token_for(world.victim.user_id, scope.as_str()).await;
                    verdicts.admitted(method, path, "a token with just the scope", &bearer(&token)).await;
                }
            }
        }
    }
    let Verdicts { failures, tried, .. } = verdicts;
    assert!(failures.is_empty(), "{} of {tried} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(tried > 400, "only {tried} cases tried");
}

/// A signed target: no signature, a tampered one (another user's id put in, or the signature
/// itself changed) and an expired one are each refused 403.
async fn signed_cases(verdicts: &mut Verdicts<'_>, method: &str, path: &str) {
    let world = verdicts.world;
    let victim = world.victim.user_id.to_string();
    let (target, params): (String, Vec<(&str, String)>) = match path {
        "/signed/blob/{sha256}" => (format!("/signed/blob/{}", world.content_hash), vec![]),
        "/signed/session/{ulid}" => (format!("/signed/session/{}", world.id("ulid")), vec![("user", victim.clone())]),
        "/signed/part" => {
            (path.to_owned(), vec![("upload", "u".into()), ("part", "1".into()), ("user", victim.clone())])
        }
        _ => (path.to_owned(), vec![("user", victim.clone()), ("file", MARKER.into())]),
    };
    let signer = &world.app.state.signer;
    let base = &world.app.address;
    let method_name = method.to_uppercase();
    let now = ferry::clock::now_secs();
    let valid = signer.sign(base, &method_name, &target, &params, now + 600);
    let expired = signer.sign(base, &method_name, &target, &params, now - 60);
    let mut flipped = valid.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let mut cases = vec![
        ("no signature", format!("{base}{target}"), "invalid_signature"),
        ("signature changed", flipped, "invalid_signature"),
        ("expired", expired, "expired_signature"),
    ];
    if valid.contains(&format!("user={victim}&")) {
        cases.push((
            "another user put in",
            valid.replace(&format!("user={victim}&"), "user=999&"),
            "invalid_signature",
        ));
    }
    for (case, url, code) in cases {
        verdicts.expect_at(method, path, &url, case, &Cred::None, 403, Some(code)).await;
    }
}
