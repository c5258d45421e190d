//! `spawn_app()`: a real Ferry on a random loopback port with a temp data dir, plus typed
//! helpers to create identities straight in its catalog. `FerryProcess`: the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use ferry::app::Application;
use ferry::auth::secrets;
use ferry::catalog::{Catalog, NewDevice, NewGrant};
use ferry::config::{Config, Layer};
use ferry::domain::{Level, MediaPath, Name, UserId};
use ferry::http::AppState;
use serde_json::Value;
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    /// The app's own PostgreSQL database when the suite runs on PostgreSQL; dropped last.
    _database: Option<crate::catalog_postgres::TestDatabase>,
    /// Where the app's blob store keeps its files: the data dir, or with
    /// `FERRY_TEST_API_ON_S3=1` its key prefix inside the s3s-fs root (`FERRY_TEST_S3_ROOT`).
    store_root: PathBuf,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A user created for a test, with one token of the scopes asked for.
pub struct TestUser {
    pub user_id: UserId,
    pub token: String,
}

pub struct TestDevice {
    pub device_id: i64,
    pub key: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns a server after `adjust` tweaks its settings layer. With
/// `FERRY_TEST_API_ON_POSTGRES=1` (and `FERRY_TEST_DATABASE_URL`) its catalog is a fresh
/// PostgreSQL database, dropped with the app.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Layer)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut layer = Layer::new();
    layer.insert("data_dir", data_dir.path().display().to_string());
    layer.insert("listen", "127.0.0.1:0".into());
    let database = match std::env::var("FERRY_TEST_API_ON_POSTGRES").as_deref() {
        Ok("1") => crate::catalog_postgres::TestDatabase::create().await,
        _ => None,
    };
    if let Some(database) = &database {
        layer.insert("database_url", database.url.clone());
    }
    if std::env::var("FERRY_TEST_API_ON_S3").as_deref() == Ok("1")
        && let Some(s3) = crate::blob_store_conformance::test_s3_config()
    {
        crate::direct_s3::put_s3(&mut layer, &s3, false);
    }
    adjust(&mut layer);
    let store_root = match (layer.get("s3_bucket"), std::env::var("FERRY_TEST_S3_ROOT")) {
        // s3s-fs keeps object KEY of BUCKET as the file ROOT/BUCKET/KEY
        (Some(bucket), Ok(root)) => Path::new(&root).join(bucket).join(layer["s3_prefix"].trim_end_matches('/')),
        (Some(_), Err(_)) => panic!("FERRY_TEST_S3_ROOT (the s3s-fs root directory) is needed on S3"),
        (None, _) => data_dir.path().to_owned(),
    };
    let config = Config::from_layer(&layer).expect("test config");
    let app = Application::build(config).await.expect("server builds");
    let address = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp { address, state, client: reqwest::Client::new(), data_dir, _database: database, store_root, server }
}

impl TestApp {
    /// Stops serving and lets go of the data dir's lock (as a stopped server does), keeping
    /// the catalog open for the test to look at.
    pub async fn stop_serving(&self) {
        self.server.abort();
        while !self.server.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The `FERRY_*` settings that point another `ferry` process (the admin CLI) at this
    /// app's catalog and blob store, whichever backends the run uses.
    pub fn settings_env(&self) -> Vec<(String, String)> {
        let mut layer = Layer::new();
        layer.insert("database_url", self.state.config.database_url.clone());
        if let Some(s3) = &self.state.config.s3 {
            crate::direct_s3::put_s3(&mut layer, s3, s3.direct);
        }
        layer.into_iter().map(|(key, value)| (format!("FERRY_{}", key.to_uppercase()), value)).collect()
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.state.catalog
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn user(&self, name: &str, level: Level, scopes: &str) -> TestUser {
        let user = self.catalog().create_user(&Name::parse(name).unwrap(), level).await.unwrap();
        let token = self.token_for(user.user_id, scopes).await;
        TestUser { user_id: user.user_id, token }
    }

    pub async fn token_for(&self, user: UserId, scopes: &str) -> String {
        let secret = secrets::generate("fry_t_");
        self.catalog().create_token(user, scopes.parse().unwrap(), &secrets::hash(&secret)).await.unwrap();
        secret
    }

    pub async fn device(&self, owner: &TestUser, name: &str) -> TestDevice {
        let key = secrets::generate("fry_d_");
        let new = NewDevice { user_id: owner.user_id, name: Name::parse(name).unwrap(), key_hash: secrets::hash(&key) };
        let device = self.catalog().create_device(new).await.unwrap();
        TestDevice { device_id: device.device_id.0, key }
    }

    /// Creates a volume for `owner` and mounts it on `device` at `prefix`; returns the grant id.
    pub async fn grant(&self, owner: &TestUser, device: &TestDevice, volume: &str, prefix: &str) -> String {
        let catalog = self.catalog();
        let volume = match catalog.volume_by_name(owner.user_id, volume).await.unwrap() {
            Some(v) => v,
            None => catalog.create_volume(owner.user_id, &Name::parse(volume).unwrap()).await.unwrap(),
        };
        let grant = catalog
            .create_grant(NewGrant {
                device_id: ferry::domain::DeviceId(device.device_id),
                volume_id: volume.volume_id,
                prefix_path: MediaPath::parse_prefix(prefix).unwrap(),
                name: volume.name.clone(),
            })
            .await
            .unwrap();
        grant.media_grant_id.to_string()
    }

    /// A signed blob PUT URL for `user`, optionally bound to size and hash.
    pub fn signed_put(&self, user: UserId, size: Option<u64>, sha256: Option<&str>) -> String {
        let hash = sha256.map(|h| ferry::domain::Sha256Hex::parse(h).unwrap());
        ferry::signing::targets::blob_put(
            &self.state.signer,
            &self.state.upload_url,
            user,
            size,
            hash.as_ref(),
            self.state.signed_url_expiry(),
        )
    }

    pub fn signed_get(&self, sha256: &str) -> String {
        let hash = ferry::domain::Sha256Hex::parse(sha256).unwrap();
        ferry::signing::targets::blob_get(
            &self.state.signer,
            &self.state.upload_url,
            &hash,
            self.state.signed_url_expiry(),
        )
    }

    /// Paths of every stored blob file.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let blobs = if self.store_root == self.data_dir.path() { "blobs" } else { "sha256" };
        files_under(&self.store_root.join(blobs))
    }

    /// Paths of every request-scoped staging file.
    pub fn staging_files(&self) -> Vec<PathBuf> {
        files_under(&self.store_root.join("staging").join("requests"))
    }

    /// Request-scoped staging files still there after a refused upload has had up to two
    /// seconds to remove its own: at once on disk, by a task of its own on S3 (a request's
    /// staging object is dropped, not awaited, when the request fails).
    pub async fn staging_left_behind(&self) -> Vec<PathBuf> {
        for _ in 0..40 {
            if self.staging_files().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.staging_files()
    }

    /// Paths of every staged part of an unfinished multipart upload.
    pub fn upload_staging_files(&self) -> Vec<PathBuf> {
        files_under(&self.store_root.join("staging").join("uploads"))
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Says that a test needing a real tool or client (`what`) cannot run here, and how to install
/// it. Under `FERRY_TEST_REQUIRE_TOOLS=1` (`.ci/run` sets it, after installing everything) a
/// missing tool fails the test instead: CI must never pass by not running them.
pub fn tool_missing(what: &str, install: &str) {
    let required = std::env::var("FERRY_TEST_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(!required, "{what} cannot run here, and FERRY_TEST_REQUIRE_TOOLS=1 is set: {install}");
    eprintln!("{what} not run: {install}");
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    ferry::domain::Sha256Hex::of(bytes).to_string()
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Asserts a JSON error body with the given status and code; returns the body.
/// Uploads `bytes` as an event named `name` of the caller's device `cam` (gallery family);
/// returns its event id.
pub async fn gallery_upload(app: &TestApp, token: &str, name: &str, bytes: &[u8]) -> String {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec());
    let form = reqwest::multipart::Form::new().text("name", name.to_owned()).part("event", part);
    let response = app.client.post(app.url("/api/gallery/cam/upload")).bearer_auth(token).multipart(form);
    let body: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["success"], true, "{body}");
    body["eventId"].as_str().unwrap().to_owned()
}

pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"), "error bodies are JSON");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a message in {body}");
    body
}

/// Sends `request()` until it is refused with `status` and `code`, and fails if a request
/// is still honoured a second after the first: the longest a revoked token or a disabled
/// device may keep working on any replica (principals are cached for less, see auth::cache).
pub async fn refused_within_a_second<F, Fut>(request: F, status: u16, code: &str) -> std::time::Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let since = std::time::Instant::now();
    loop {
        let response = request().await;
        if response.status().as_u16() == status {
            expect_error(response, status, code).await;
            return since.elapsed();
        }
        assert!(response.status().is_success(), "honoured or refused, got {}", response.status());
        assert!(since.elapsed() < std::time::Duration::from_secs(1), "still honoured after a second");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The real `ferry` binary.
pub fn ferry_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    for (key, _) in std::env::vars() {
        if key.starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `ferry --data-dir DIR admin ARGS --json`; returns (exit code, stdout JSON or stderr JSON).
pub fn admin_json(data_dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = ferry_bin().arg("--data-dir").arg(data_dir).arg("admin").args(args).arg("--json").output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stream = if code == 0 { &out.stdout } else { &out.stderr };
    let text = String::from_utf8_lossy(stream);
    assert_eq!(text.trim_end().lines().count(), 1, "exactly one line, got {text:?}");
    (code, serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// A `ferry serve` child process; killed when dropped.
pub struct FerryProcess {
    pub child: Child,
    pub address: String,
}

impl FerryProcess {
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut env = extra_env.to_vec();
        env.push(("FERRY_LOG", "warn"));
        Self::spawn(data_dir, &env, Stdio::null())
    }

    /// Starts with `FERRY_LOG=debug`, its log written to `log`.
    pub fn start_logging(data_dir: &Path, extra_env: &[(&str, &str)], log: &Path) -> Self {
        let mut env = extra_env.to_vec();
        env.push(("FERRY_LOG", "debug"));
        Self::spawn(data_dir, &env, std::fs::File::create(log).unwrap().into())
    }

    fn spawn(data_dir: &Path, env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut cmd = ferry_bin();
        cmd.arg("--data-dir").arg(data_dir).args(["serve", "--listen", "127.0.0.1:0"]);
        cmd.envs(env.iter().copied());
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let address =
            first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line was {first:?}")).to_owned();
        Self { child, address }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `secs` for exit; returns the exit status.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        for _ in 0..secs * 20 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The device top-hash of `sha256` once the `device_hash` job has recorded it: the app's jobs
/// are run here, and the server's own runner may hold the job meanwhile (on S3 its read takes
/// a while), so this waits for it — a minute at most.
pub async fn recorded_top_hash(app: &TestApp, sha256: &ferry::domain::Sha256Hex) -> Option<ferry::domain::Sha256Hex> {
    for _ in 0..600 {
        app.state.jobs.run_until_idle().await.unwrap();
        let blob = app.catalog().blob(sha256).await.unwrap();
        if let Some(top) = blob.and_then(|b| b.chunked_hash) {
            return Some(top);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}
