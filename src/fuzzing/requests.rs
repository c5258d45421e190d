//! Hostile request bodies and headers through the real router: one embedded server (SQLite
//! and a local store in a fresh directory) per process, called in-process without a socket.
//! The promise checked on every answer: no 5xx, a JSON error body with `error` and
//! `message` when refused, and no request staging left behind (success or not).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use tower::ServiceExt;

use crate::app::Application;
use crate::auth::secrets;
use crate::catalog::NewDevice;
use crate::config::Config;
use crate::domain::{Level, Name, ScopeSet};

/// The boundary every form target's content type names (the seeds are written with it).
pub const BOUNDARY: &str = "ferryfuzz";

struct Server {
    // dropped before the runtime its resources belong to
    _app: Application,
    runtime: tokio::runtime::Runtime,
    router: Router,
    dir: PathBuf,
    bearer: String,
    session_upload: String,
    /// `/openapi.json`: every refusal must be one it documents for the route.
    document: serde_json::Value,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fn with_server(check: impl FnOnce(&Server)) {
    let mut server = SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    check(server.get_or_insert_with(Server::start))
}

pub fn shut_down() {
    let server = SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(server) = server {
        let dir = server.dir.clone();
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Server {
    fn start() -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let dir = std::env::temp_dir().join(format!("ferry-fuzz-{}-{}", std::process::id(), ulid::Ulid::new()));
        let app = runtime.block_on(Application::build(Config::for_data_dir(&dir))).expect("an embedded server starts");
        let router = crate::http::router(app.state().clone());
        let catalog = app.state().catalog.clone();
        let token = secrets::new_api_token();
        runtime.block_on(async {
            let user = catalog.create_user(&Name::parse("fuzz").unwrap(), Level::Uploader).await.unwrap();
            let scopes: ScopeSet = "upload,read".parse().unwrap();
            catalog.create_token(user.user_id, scopes, &token.hash).await.unwrap();
            let key = secrets::new_device_key();
            let device = NewDevice { user_id: user.user_id, name: Name::parse("cam").unwrap(), key_hash: key.hash };
            catalog.create_device(device).await.unwrap();
        });
        let bearer = format!("Bearer {}", token.secret);
        let document = serde_json::Value::Null;
        let mut server = Self { _app: app, runtime, router, dir, bearer, session_upload: String::new(), document };
        let (_, _, document) = server.send(server.request(Method::GET, "/openapi.json", "application/json", ""));
        server.document = serde_json::from_slice(&document).expect("the OpenAPI document");
        let body = r#"{"folder_id": "fuzz", "autofinish": false}"#;
        let (status, _, answer) = server.send(server.request(Method::POST, "/api/upload/id", "application/json", body));
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
        let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
        server.session_upload = format!("/api/file/{}", answer["ulid"].as_str().expect("a ulid"));
        server
    }

    fn request(&self, method: Method, path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, &self.bearer)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("a request")
    }

    fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        self.runtime.block_on(async {
            let answer = self.router.clone().oneshot(request).await.expect("the router is infallible");
            let (parts, body) = answer.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.expect("an answer's body");
            (parts.status, parts.headers, body)
        })
    }

    /// Sends and checks the promise for the operation `route` (its path in `/openapi.json`);
    /// returns the answer for what the target checks next.
    fn answered(&self, route: &str, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let what = format!("{} {}", request.method(), request.uri());
        let method = request.method().as_str().to_ascii_lowercase();
        let uploads_before = files_in(&self.dir.join("staging").join("uploads"));
        let (status, headers, body) = self.send(request);
        let shown = String::from_utf8_lossy(&body);
        assert!(!status.is_server_error(), "{what} answered {status}: {shown}");
        if status.is_client_error() {
            let documented = &self.document["paths"][route][&method]["responses"][status.as_str()];
            assert!(documented.is_object(), "{what}: {status} is not documented for {method} {route}: {shown}");
        }
        if status.is_client_error() && method != "head" {
            let error: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{what} refused without JSON: {status} {shown}"));
            assert!(error["error"].is_string() && error["message"].is_string(), "{what}: {status} {shown}");
            // each family's own additions (API.md Conventions)
            if route.starts_with("/api/gallery/") {
                assert_eq!(error["success"], false, "{what}: {shown}");
            }
            if ["/api/upload/", "/api/file/", "/signed/session/"].iter().any(|family| route.starts_with(family)) {
                assert!(error["status"] == "error" && error["user_message"].is_string(), "{what}: {shown}");
            }
        }
        // a refused tus creation keeps nothing (unless it names the upload it made: bytes sent
        // with the creation were refused, the upload stays for the client to resume); a refused
        // request of any kind leaves no request staging
        let created = headers.contains_key(header::LOCATION);
        if status.is_client_error() && method == "post" && route == "/files/" && !created {
            assert_eq!(files_in(&self.dir.join("staging").join("uploads")), uploads_before, "{what}: {shown}");
        }
        no_request_staging(&self.dir);
        (status, headers, body)
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).count()
}

/// Request staging is removed as the request ends; a moment's grace in case a store hands
/// the removal to a task of its own.
fn no_request_staging(dir: &Path) {
    let requests = dir.join("staging").join("requests");
    for _ in 0..200 {
        if files_in(&requests) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("request staging left in {}", requests.display());
}

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A hostile multipart body as a session registration's options, then as a file upload to a
/// standing session and, when it registered one, to that session (its limits and allowed
/// extensions applied) by token and by its signed direct URL.
pub fn session_form(data: &[u8]) {
    with_server(|server| {
        let body = Bytes::copy_from_slice(data);
        let post = |path: &str| server.request(Method::POST, path, &form_type(), body.clone());
        let (status, _, registered) = server.answered("/api/upload/id", post("/api/upload/id"));
        server.answered("/api/file/{ulid}", post(&server.session_upload));
        if status != StatusCode::OK {
            return;
        }
        let registered: serde_json::Value = serde_json::from_slice(&registered).expect("a registration answer");
        let ulid = registered["ulid"].as_str().expect("a ulid");
        server.answered("/api/file/{ulid}", post(&format!("/api/file/{ulid}")));
        let direct = registered["url_upload_direct"].as_str().expect("a direct URL");
        let direct = &direct[direct.find("/signed/").expect("a signed path")..];
        server.answered("/signed/session/{ulid}", post(direct));
    })
}

/// A hostile multipart body as a gallery event upload.
pub fn gallery_form(data: &[u8]) {
    with_server(|server| {
        let body = Bytes::copy_from_slice(data);
        let upload = server.request(Method::POST, "/api/gallery/cam/upload", &form_type(), body);
        server.answered("/api/gallery/{device}/upload", upload);
    })
}

/// Hostile tus headers: `Name: value` lines, a blank line, then a body. They create an
/// upload (creation-with-upload when the body is sent with it); a created upload then gets a
/// PATCH at offset 0 with the same headers and body, and a HEAD.
pub fn tus_headers(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut fuzzed = HeaderMap::new();
    for line in head.split(|b| *b == b'\n').take(32) {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        fuzzed.append(name, value);
    }
    with_server(|server| {
        // the fuzzed headers replace the defaults they name, repeated ones sent repeated
        let tus = |method: Method, path: &str, body: Bytes| {
            let mut request = server.request(method, path, "application/offset+octet-stream", body);
            let headers = request.headers_mut();
            headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
            if path != "/files/" {
                headers.insert("upload-offset", HeaderValue::from_static("0"));
            }
            for name in fuzzed.keys() {
                headers.remove(name);
            }
            for (name, value) in &fuzzed {
                headers.append(name, value.clone());
            }
            request
        };
        let body = Bytes::copy_from_slice(body);
        let (status, headers, _) = server.answered("/files/", tus(Method::POST, "/files/", body.clone()));
        let created = headers.get(header::LOCATION).and_then(|l| l.to_str().ok());
        let Some(path) =
            created.filter(|_| status == StatusCode::CREATED).and_then(|l| l.find("/files/").map(|at| &l[at..]))
        else {
            return;
        };
        let path = path.to_owned();
        server.answered("/files/{id}", tus(Method::PATCH, &path, body));
        server.answered("/files/{id}", tus(Method::HEAD, &path, Bytes::new()));
    })
}
