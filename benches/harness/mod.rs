//! What both benchmarks share: the real `ferry serve` (release build) on a temp data dir on
//! 127.0.0.1, its memory as the kernel reports it, and the admin CLI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The `ferry` under test: this build, or `FERRY_BENCH_FERRY` (another build, for a
/// back-to-back comparison of two versions on the same machine).
pub fn ferry_binary() -> std::path::PathBuf {
    std::env::var_os("FERRY_BENCH_FERRY").map_or_else(|| env!("CARGO_BIN_EXE_ferry").into(), Into::into)
}

/// The catalog the next servers and admin commands use: `None` is the embedded default
/// (SQLite in the data dir), `Some(url)` a PostgreSQL database (P5's second pass).
static CATALOG: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

#[allow(dead_code, reason = "each bench binary compiles the harness; only throughput uses PostgreSQL")]
pub fn use_catalog(url: Option<String>) {
    *CATALOG.lock().unwrap() = url;
}

/// `command` with the chosen catalog.
fn on_catalog(mut command: Command) -> Command {
    if let Some(url) = CATALOG.lock().unwrap().as_ref() {
        command.env("FERRY_DATABASE_URL", url);
    }
    command
}

pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    #[allow(dead_code, reason = "each bench binary compiles the harness; thumbnails always passes settings")]
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// With settings `env` (e.g. `FERRY_HEADER_TIMEOUT`).
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = on_catalog(Command::new(ferry_binary()))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FERRY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ferry starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.trim().strip_prefix("listening on ").expect("first line names the address").to_owned();
        Self { child, address }
    }

    #[allow(dead_code, reason = "each bench binary compiles the harness; only throughput counts open files")]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (current RSS, peak RSS) in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        rss_kib(self.child.id())
    }

    #[allow(dead_code, reason = "each bench binary compiles the harness; only throughput counts threads")]
    pub fn threads(&self) -> u64 {
        status_field(self.child.id(), "Threads:")
    }
}

/// (current RSS, peak RSS) in KiB of process `pid`, as the kernel counts them.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    (status_field(pid, "VmRSS:"), status_field(pid, "VmHWM:"))
}

/// A number from `/proc/PID/status`, e.g. `Threads:`.
pub fn status_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most two minutes) until the server's job runner has no pending or running job,
/// so the media jobs a setup queued do not run inside a measured window.
#[allow(dead_code, reason = "each bench binary compiles the harness; only throughput waits for jobs")]
pub fn wait_for_jobs(data_dir: &Path, upload_url: &str) {
    for _ in 0..600 {
        let busy = ["pending", "running"].iter().any(|status| {
            let listed = admin(data_dir, upload_url, &["jobs", "list", "--status", status]);
            listed["items"].as_array().is_some_and(|items| !items.is_empty())
        });
        if !busy {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("the server's jobs did not finish within two minutes");
}

pub fn admin(data_dir: &Path, upload_url: &str, args: &[&str]) -> Value {
    let out = on_catalog(Command::new(ferry_binary()))
        .arg("--data-dir")
        .arg(data_dir)
        .env("FERRY_UPLOAD_URL", upload_url)
        .arg("admin")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
