//! P2 — Ferry next to a peer tus server (rustus) on the same disk, same run.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

/// rustus, a tus server in Rust, on a free loopback port with file storage in `dir`.
pub(crate) struct Rustus {
    pub(crate) child: std::process::Child,
    pub(crate) address: String,
}

impl Rustus {
    pub(crate) fn start(bin: &Path, dir: &Path, max_body: usize) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(dir).unwrap();
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "ERROR"])
            .args(["--max-body-size", &max_body.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .arg("--info-dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rustus starts");
        // owned from here on: a rustus that never listens is still killed and reaped on drop
        let rustus = Self { child, address: format!("http://127.0.0.1:{port}") };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return rustus;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rustus did not listen on {}", rustus.address);
    }

    /// Creates a tus upload of `mib` MiB and sends it in one PATCH: MB/s from creation to the answer.
    async fn upload(&self, block: &Bytes, mib: usize) -> f64 {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let created = client
            .post(format!("{}/files/", self.address))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", mib * MIB)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") { location } else { format!("{}{location}", self.address) };
        let patched = client
            .patch(&location)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", mib * MIB)
            .body(body_of(block, mib))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 204, "{}", patched.text().await.unwrap());
        assert_eq!(patched.headers()["upload-offset"].to_str().unwrap(), (mib * MIB).to_string());
        mbps(mib * MIB, started.elapsed())
    }
}

impl Drop for Rustus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same bytes into rustus (one tus PATCH) and into Ferry's signed PUT, alternating.
pub async fn against_rustus(mib: usize) {
    println!("\n## P2 — one {mib} MiB upload over loopback: Ferry signed PUT vs rustus 0.5.10 (tus, one PATCH)");
    let Some(bin) = std::env::var_os("FERRY_BENCH_RUSTUS").map(std::path::PathBuf::from).filter(|b| b.exists()) else {
        println!("not run: set FERRY_BENCH_RUSTUS to a rustus 0.5.10 binary (`bench/run` installs one)");
        return;
    };
    let dir = tempfile::tempdir_in(".").unwrap();
    let block = block(11);
    println!("| run | Ferry MB/s | rustus MB/s | ratio | Ferry peak RSS MiB | rustus peak RSS MiB | RSS ratio |");
    println!("|---|---|---|---|---|---|---|");
    let (mut rates, mut memory) = (Vec::new(), Vec::new());
    for run in 0..REPEATS {
        let storage = dir.path().join("rustus-data");
        let rustus = Rustus::start(&bin, &storage, mib * MIB + MIB);
        let theirs = rustus.upload(&block, mib).await;
        let (_, their_peak) = harness::rss_kib(rustus.child.id());
        drop(rustus);
        std::fs::remove_dir_all(&storage).unwrap();
        let (ours, our_peak) = ferry_put(dir.path(), &block, mib).await;
        let (rate, rss) = (ours / theirs, our_peak as f64 / their_peak as f64);
        println!(
            "| {} | {ours:.0} | {theirs:.0} | {rate:.2} | {:.1} | {:.1} | {rss:.3} |",
            run + 1,
            our_peak as f64 / 1024.0,
            their_peak as f64 / 1024.0
        );
        rates.push(rate);
        memory.push(rss);
    }
    println!("median throughput ratio {:.2}, median peak-RSS ratio {:.3}", median(&mut rates), median(&mut memory));
}
