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
    runtime: tokio::runtime::Runtime,
    router: Router,
    dir: PathBuf,
    bearer: String,
    session_upload: String,
    _app: Application,
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
        let mut server = Self {
            runtime,
            router,
            dir,
            bearer: format!("Bearer {}", token.secret),
            session_upload: String::new(),
            _app: app,
        };
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

    /// Sends and checks the promise; returns the answer for what the target checks next.
    fn answered(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let what = format!("{} {}", request.method(), request.uri());
        let head = request.method() == Method::HEAD;
        let (status, headers, body) = self.send(request);
        let shown = String::from_utf8_lossy(&body);
        assert!(!status.is_server_error(), "{what} answered {status}: {shown}");
        if status.is_client_error() && !head {
            let error: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{what} refused without JSON: {status} {shown}"));
            assert!(error["error"].is_string() && error["message"].is_string(), "{what}: {status} {shown}");
        }
        no_request_staging(&self.dir);
        (status, headers, body)
    }
}

/// Request staging is removed as the request ends, on a task of its own: give it a moment.
fn no_request_staging(dir: &Path) {
    let requests = dir.join("staging").join("requests");
    for _ in 0..200 {
        if std::fs::read_dir(&requests).map(|mut d| d.next().is_none()).unwrap_or(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("request staging left in {}", requests.display());
}

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A hostile multipart body as a session registration's options and as a file upload.
pub fn session_form(data: &[u8]) {
    with_server(|server| {
        let body = Bytes::copy_from_slice(data);
        server.answered(server.request(Method::POST, "/api/upload/id", &form_type(), body.clone()));
        server.answered(server.request(Method::POST, &server.session_upload, &form_type(), body));
    })
}

/// A hostile multipart body as a gallery event upload.
pub fn gallery_form(data: &[u8]) {
    with_server(|server| {
        let body = Bytes::copy_from_slice(data);
        server.answered(server.request(Method::POST, "/api/gallery/cam/upload", &form_type(), body));
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
        let tus = |method: Method, path: &str, body: Bytes| {
            let mut request = server.request(method, path, "application/offset+octet-stream", body);
            request.headers_mut().insert("tus-resumable", HeaderValue::from_static("1.0.0"));
            for (name, value) in &fuzzed {
                request.headers_mut().insert(name, value.clone());
            }
            request
        };
        let body = Bytes::copy_from_slice(body);
        let (status, headers, _) = server.answered(tus(Method::POST, "/files/", body.clone()));
        let created = headers.get(header::LOCATION).and_then(|l| l.to_str().ok());
        let Some(path) =
            created.filter(|_| status == StatusCode::CREATED).and_then(|l| l.find("/files/").map(|at| &l[at..]))
        else {
            return;
        };
        let path = path.to_owned();
        let mut patch = tus(Method::PATCH, &path, body);
        patch.headers_mut().insert("upload-offset", HeaderValue::from_static("0"));
        server.answered(patch);
        server.answered(tus(Method::HEAD, &path, Bytes::new()));
    })
}
