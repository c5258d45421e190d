//! P8 — `ferry push` (issue 26), the client binary run as a person runs it, against a fresh
//! release `ferry serve` on 127.0.0.1: one large file next to the same run's signed PUT (the
//! P1 reference), the client's peak RSS for a small and a large file, 10,000 × 4 KiB files
//! next to P6, and a re-push of that unchanged tree.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{Server, admin};
use super::{MIB, block, ferry_put, mbps};

/// A device and grant on a fresh server: (server, device key, grant id).
fn device_server(data: &Path) -> (Server, String, String) {
    let server = Server::start(data);
    let address = server.address.clone();
    admin(data, &address, &["user", "add", "bench", "--level", "uploader"]);
    let key = admin(data, &address, &["device", "add", "--user", "bench", "--name", "laptop"])["device_session_key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(data, &address, &["volume", "add", "v", "--user", "bench"]);
    let grant = admin(data, &address, &["grant", "add", "--device", "laptop", "--volume", "v"])["media_grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (server, key, grant)
}

/// Runs `ferry push DIR` to completion: (wall time, the client's peak RSS in KiB, summary).
fn push(server: &Server, key: &str, grant: &str, dir: &Path, state: &Path) -> (Duration, u64, serde_json::Value) {
    let started = Instant::now();
    let mut child = Command::new(super::harness::ferry_binary())
        .arg("push")
        .arg(dir)
        .args(["--server", &server.address, "--device-key", key, "--grant", grant, "--json", "--quiet"])
        .args(["--concurrency", "16"])
        .arg("--state-dir")
        .arg(state)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ferry push starts");
    let mut peak = 0;
    // sampled until it exits (bounded: ten minutes)
    for _ in 0..60_000 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "push failed: {}", String::from_utf8_lossy(&out.stdout));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failures"], serde_json::json!([]), "{summary}");
    (took, peak, summary)
}

/// VmHWM of a process that may have just exited (then `None`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn write_large(path: &Path, mib: usize, seed: u64) {
    use std::io::Write;
    let block = block(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..mib {
        file.write_all(&block).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

pub async fn push_scenarios(mib: usize) {
    let dir = tempfile::tempdir_in(".").unwrap();
    // a quarter of the size: at 1 GiB both files have more parts than are ever in flight, so
    // the client's memory shows whether it grows with the file (it should not)
    let small_mib = (mib / 4).max(1);
    let (put_rate, _) = ferry_put(dir.path(), &block(13), mib).await;

    let data = dir.path().join("data");
    let (server, key, grant) = device_server(&data);
    let (large, small) = (dir.path().join("large"), dir.path().join("small"));
    std::fs::create_dir_all(&large).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    write_large(&large.join("one.bin"), mib, 21);
    write_large(&small.join("one.bin"), small_mib, 22);
    let (took, large_peak, summary) = push(&server, &key, &grant, &large, &dir.path().join("state-large"));
    assert_eq!(summary["files_uploaded"], 1);
    let push_rate = mbps(mib * MIB, took);
    let (_, small_peak, _) = push(&server, &key, &grant, &small, &dir.path().join("state-small"));

    let tree = dir.path().join("tree");
    for i in 0..10_000u32 {
        let folder = tree.join(format!("d{:02}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&folder).unwrap();
        }
        std::fs::write(folder.join(format!("{i}.bin")), i.to_le_bytes().repeat(1024)).unwrap();
    }
    let state = dir.path().join("state-tree");
    let (tree_took, _, summary) = push(&server, &key, &grant, &tree, &state);
    assert_eq!(summary["files_uploaded"], 10_000);
    let (again_took, _, summary) = push(&server, &key, &grant, &tree, &state);
    assert_eq!(summary["files_uploaded"], 0);
    drop(server);

    println!("\n## P8 — `ferry push` (client binary, --concurrency 16 like P6's 16 in flight) into a fresh server");
    println!("| scenario | figure | reference |");
    println!("|---|---|---|");
    println!(
        "| one {mib} MiB file (hash + multipart + create) | {push_rate:.0} MB/s, {took:.1?} | signed PUT of the same size in this run: {put_rate:.0} MB/s, ratio {:.2} |",
        push_rate / put_rate
    );
    println!(
        "| client peak RSS (bounded by parts in flight × buffers, not size) | {:.1} MiB for {mib} MiB | {:.1} MiB for {small_mib} MiB |",
        large_peak as f64 / 1024.0,
        small_peak as f64 / 1024.0
    );
    println!(
        "| 10,000 × 4 KiB files | {:.0} files/s ({tree_took:.1?}) | P6 (same flow, in-process client) |",
        10_000.0 / tree_took.as_secs_f64()
    );
    println!("| re-push of the unchanged 10,000 files | {again_took:.2?} | target < 1 s |");
}
