//! Real tus clients against Ferry, as users run them: tuspy (the tus project's Python client,
//! from PyPI) and tus-js-client (npm, on Node with its Node HTTP stack, file source and file
//! URL storage), driven through the small scripts in `tests/clients/`. Each uploads files of
//! several sizes, and resumes an upload after the real `ferry serve` was killed with SIGKILL
//! in the middle of a PATCH; tus-js-client also uploads in parallel (concatenation) and
//! resumes from its URL storage in a second run.
//!
//! The clients live outside the repository (`tests/clients/install`, which `.ci/run` runs,
//! puts them under `~/.cache/ferry-ci`, or `FERRY_TEST_CLIENTS`); without them these tests
//! say so and do not run (under `FERRY_TEST_REQUIRE_TOOLS=1`, as in `.ci/run`, they fail).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use ferry::catalog::{Identities, Library, SqlCatalog};
use ferry::domain::{Level, Name, UserId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

const MIB: usize = 1024 * 1024;

fn clients_dir() -> PathBuf {
    match std::env::var("FERRY_TEST_CLIENTS") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ferry-ci"),
    }
}

fn not_run(which: &'static str, once: &'static Once) {
    let install = format!("install the tus clients with tests/clients/install (into {})", clients_dir().display());
    once.call_once(|| tool_missing(&format!("{which} tests"), &install));
}

/// tuspy's Python, or `None` (said once on stderr) when it is not installed.
fn tuspy() -> Option<PathBuf> {
    static NOT_RUN: Once = Once::new();
    let python = clients_dir().join("tus-venv/bin/python");
    let installed = std::process::Command::new(&python).args(["-c", "import tusclient"]).output();
    if installed.is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    not_run("tuspy", &NOT_RUN);
    None
}

/// The node_modules holding tus-js-client, or `None` (said once) without it or Node.
fn tus_js() -> Option<PathBuf> {
    static NOT_RUN: Once = Once::new();
    let modules = clients_dir().join("tus-node/node_modules");
    let node = std::process::Command::new("node").arg("--version").output();
    if modules.join("tus-js-client/package.json").exists() && node.is_ok_and(|o| o.status.success()) {
        return Some(modules);
    }
    not_run("tus-js-client", &NOT_RUN);
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name)
}

/// Runs a client to its end (at most two minutes); its JSON line, or its failure.
async fn run(mut command: tokio::process::Command) -> Result<Value, String> {
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .map_err(|_| "the client ran for two minutes".to_owned())?
        .map_err(|e| e.to_string())?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("{}\n{stdout}\n{stderr}", output.status));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("{e}: {stdout}\n{stderr}"))
}

struct Tuspy<'a> {
    python: &'a Path,
    endpoint: String,
    token: String,
}

impl Tuspy<'_> {
    fn command(&self, file: &Path, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.python);
        command.arg(script("tuspy_upload.py")).args(["--endpoint", &self.endpoint, "--token", &self.token]);
        command.arg("--file").arg(file).args(args);
        command
    }
}

struct TusJs<'a> {
    modules: &'a Path,
    endpoint: String,
    token: String,
}

impl TusJs<'_> {
    fn command(&self, file: &Path, storage: &Path, extra: Value) -> tokio::process::Command {
        let mut options = json!({"endpoint": self.endpoint, "token": self.token, "file": file, "storage": storage});
        options.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut command = tokio::process::Command::new("node");
        command.env("NODE_PATH", self.modules).arg(script("tus_js_upload.cjs")).arg(options.to_string());
        command
    }
}

/// A file of `len` test bytes in `dir`.
fn file_of(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let bytes = bytes_of(len, seed);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// The library file titled `title`, waiting for it a little (a client reports success once
/// the server answered, and the server answers once it is filed: no wait is needed, this only
/// reads it).
async fn filed(catalog: &dyn Library, user: UserId, title: &str) -> ferry::catalog::LibraryFile {
    let files = catalog.list_files(Some(user)).await.unwrap();
    files.into_iter().find(|f| f.title == title).unwrap_or_else(|| panic!("no file '{title}'"))
}

#[tokio::test]
async fn tuspy_uploads_files_of_several_sizes() {
    let Some(python) = tuspy() else { return };
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    let client = Tuspy { python: &python, endpoint: app.url("/files/"), token: user.token.clone() };
    let dir = tempfile::tempdir().unwrap();
    // empty, one byte, small, one PATCH of several MiB, many PATCHes with checksums
    for (len, chunk) in [(0, None), (1, None), (100_000, None), (5 * MIB + 3, None), (21 * MIB + 7, Some(4 * MIB))] {
        let name = format!("file-{len}.bin");
        let (path, bytes) = file_of(dir.path(), &name, len, len as u64);
        let chunk = chunk.map(|c| c.to_string());
        let mut args = vec!["--metadata", "folder_id=py", "--checksum"];
        let filename = format!("filename={name}");
        args.extend(["--metadata", &filename]);
        if let Some(chunk) = &chunk {
            args.extend(["--chunk-size", chunk]);
        }
        let done = run(client.command(&path, &args)).await.unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        assert_eq!(done["offset"], len, "{done}");
        let file = filed(app.catalog().as_ref(), user.user_id, &name).await;
        assert_eq!((file.folder_key.as_str(), file.size), ("py", len as u64));
        assert_eq!(file.sha256.as_str(), sha256_hex(&bytes), "{len} bytes");
    }
}

#[tokio::test]
async fn tus_js_client_uploads_files_of_several_sizes_and_in_parallel() {
    let Some(modules) = tus_js() else { return };
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    let client = TusJs { modules: &modules, endpoint: app.url("/files/"), token: user.token.clone() };
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("urls.json");
    for (len, extra) in [
        (0, json!({})),
        (1, json!({})),
        (300_000, json!({})),
        (9 * MIB + 1, json!({"chunkSize": 2 * MIB})),
        // parallelUploads: three partial uploads and a final one (concatenation)
        (10 * MIB + 5, json!({"parallel": 3})),
    ] {
        let name = format!("js-{len}.bin");
        let (path, bytes) = file_of(dir.path(), &name, len, 100 + len as u64);
        let mut extra = extra;
        extra["metadata"] = json!({"filename": name, "filetype": "application/x-test"});
        let parallel = extra.get("parallel").is_some();
        let done = run(client.command(&path, &storage, extra)).await.unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        let url = done["url"].as_str().unwrap();
        assert!(url.starts_with(&app.address), "{done}");
        if parallel {
            let id = url.rsplit('/').next().unwrap();
            let upload = app.catalog().tus_upload(id, user.user_id).await.unwrap().unwrap();
            let parts = match upload.concat {
                Some(ferry::catalog::TusConcat::Final(parts)) => parts.len(),
                other => panic!("not a final upload: {other:?}"),
            };
            assert_eq!(parts, 3, "three partial uploads were concatenated");
        }
        let file = filed(app.catalog().as_ref(), user.user_id, &name).await;
        assert_eq!((file.folder_key.as_str(), file.content_type.as_str()), ("tus", "application/x-test"));
        assert_eq!(done["file"], app.url(&format!("/api/files/{}", file.file_id)), "the client sees where it went");
        assert_eq!(file.sha256.as_str(), sha256_hex(&bytes), "{len} bytes");
    }
    assert!(app.upload_staging_files().is_empty(), "partial uploads are gone: {:?}", app.upload_staging_files());
}

#[tokio::test]
async fn tus_js_client_resumes_from_its_url_storage_in_a_second_run() {
    let Some(modules) = tus_js() else { return };
    let app = spawn_app().await;
    let user = app.user("alice", Level::Uploader, "upload").await;
    let client = TusJs { modules: &modules, endpoint: app.url("/files/"), token: user.token.clone() };
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("urls.json");
    let (path, bytes) = file_of(dir.path(), "video.bin", 12 * MIB, 7);
    let meta = json!({"filename": "video.bin"});
    let first = run(client.command(&path, &storage, json!({"chunkSize": MIB, "stopAfter": 5 * MIB, "metadata": meta})));
    let first = first.await.unwrap();
    let url = first["url"].as_str().unwrap().to_owned();
    let head = app.client.head(&url).bearer_auth(&user.token).header("tus-resumable", "1.0.0").send().await.unwrap();
    let kept: usize = head.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
    assert!(kept >= 5 * MIB && kept < bytes.len(), "the first run stopped part way: {kept}");
    let second = run(client.command(&path, &storage, json!({"chunkSize": MIB, "metadata": meta}))).await.unwrap();
    assert_eq!(second["url"], url.as_str(), "the second run resumed the same upload");
    let file = filed(app.catalog().as_ref(), user.user_id, "video.bin").await;
    assert_eq!(file.sha256.as_str(), sha256_hex(&bytes));
}

/// A TCP proxy that passes a client's bytes to the server at a bounded rate (so a test can
/// kill the server in the middle of a PATCH) and counts them; the server behind it can change
/// (a restarted server listens on another port).
struct Throttle {
    address: String,
    upstream: Arc<Mutex<String>>,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Throttle {
    async fn start(upstream: &str, bytes_per_second: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let upstream = Arc::new(Mutex::new(upstream.trim_start_matches("http://").to_owned()));
        let sent = Arc::new(AtomicU64::new(0));
        let task = {
            let (upstream, sent) = (upstream.clone(), sent.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let target = upstream.lock().unwrap().clone();
                    tokio::spawn(relay(client, target, sent.clone(), bytes_per_second));
                }
            })
        };
        Self { address, upstream, sent, task }
    }

    fn point_at(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = upstream.trim_start_matches("http://").to_owned();
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, target: String, sent: Arc<AtomicU64>, rate: u64) {
    let Ok(server) = TcpStream::connect(&target).await else { return };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let upload = async move {
        let (mut buffer, started) = (vec![0; 64 * 1024], Instant::now());
        let mut total = 0u64;
        loop {
            let n = match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to_server.write_all(&buffer[..n]).await.is_err() {
                break;
            }
            total += n as u64;
            sent.fetch_add(n as u64, Ordering::SeqCst);
            let due = Duration::from_secs_f64(total as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let download = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    // whichever side ends first ends the connection (a killed server resets the client's)
    tokio::select! { _ = upload => {}, _ = download => {} }
}

/// A real `ferry serve` on its own SQLite catalog, reached through a throttling proxy, with a
/// user; the client uploads `len` bytes, and the server is killed (SIGKILL) once the proxy
/// passed `kill_at` bytes, then started again on the same data dir. Returns the file's bytes
/// and how many bytes the client sent in all.
async fn kill_mid_patch_and_resume(
    start_client: impl FnOnce(String, String, &Path) -> tokio::process::Command,
    len: usize,
    kill_at: u64,
) -> (Vec<u8>, u64, u64) {
    let data = tempfile::tempdir().unwrap();
    let catalog = SqlCatalog::open(&format!("sqlite://{}/ferry.db", data.path().display())).await.unwrap();
    let alice = catalog.create_user(&Name::parse("alice").unwrap(), Level::Uploader).await.unwrap();
    let token = ferry::auth::secrets::generate("fry_t_");
    catalog.create_token(alice.user_id, "upload".parse().unwrap(), &ferry::auth::secrets::hash(&token)).await.unwrap();

    let throttle = Throttle::start("127.0.0.1:9", 8 * MIB as u64).await;
    let env = [("FERRY_PUBLIC_URL", throttle.address.as_str())];
    let mut server = FerryProcess::start(data.path(), &env);
    throttle.point_at(&server.address);
    let files = tempfile::tempdir().unwrap();
    let (path, bytes) = file_of(files.path(), "clip.bin", len, 99);
    let client = tokio::spawn(run(start_client(format!("{}/files/", throttle.address), token, &path)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while throttle.sent() < kill_at {
        assert!(Instant::now() < deadline, "the client never got going ({} bytes)", throttle.sent());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL, in the middle of a PATCH
    server.child.wait().unwrap();
    let killed_at = throttle.sent();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = FerryProcess::start(data.path(), &env);
    throttle.point_at(&restarted.address);
    let done = client.await.unwrap().unwrap_or_else(|e| panic!("the client did not finish: {e}"));
    assert!(done["url"].as_str().unwrap().starts_with(&throttle.address), "{done}");
    let file = filed(&catalog, alice.user_id, "clip.bin").await;
    assert_eq!(file.sha256.as_str(), sha256_hex(&bytes), "the resumed upload has the right bytes");
    drop(restarted);
    (bytes, throttle.sent(), killed_at)
}

#[tokio::test]
async fn tuspy_resumes_after_the_server_was_killed_mid_patch() {
    let Some(python) = tuspy() else { return };
    let (len, chunk) = (24 * MIB, 4 * MIB);
    let start = |endpoint: String, token: String, file: &Path| {
        let client = Tuspy { python: &python, endpoint, token };
        let chunk = chunk.to_string();
        let args =
            ["--chunk-size", &chunk, "--retries", "40", "--retry-delay", "0.5", "--metadata", "filename=clip.bin"];
        client.command(file, &args)
    };
    let (bytes, sent, killed_at) = kill_mid_patch_and_resume(start, len, 14 * MIB as u64).await;
    // resumed at the last recorded offset (12 MiB), not started again from 0
    assert!(sent < (bytes.len() + 2 * chunk) as u64, "{sent} bytes sent for {} (killed at {killed_at})", bytes.len());
}

#[tokio::test]
async fn tus_js_client_resumes_after_the_server_was_killed_mid_patch() {
    let Some(modules) = tus_js() else { return };
    let (len, chunk) = (24 * MIB, 4 * MIB);
    let storage = tempfile::tempdir().unwrap();
    let urls = storage.path().join("urls.json");
    let start = |endpoint: String, token: String, file: &Path| {
        let client = TusJs { modules: &modules, endpoint, token };
        client.command(file, &urls, json!({"chunkSize": chunk, "metadata": {"filename": "clip.bin"}}))
    };
    let (bytes, sent, killed_at) = kill_mid_patch_and_resume(start, len, 14 * MIB as u64).await;
    assert!(sent < (bytes.len() + 2 * chunk) as u64, "{sent} bytes sent for {} (killed at {killed_at})", bytes.len());
}
