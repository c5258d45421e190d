//! Ferry's throughput and memory benchmarks: `cargo bench --bench throughput`.
//!
//! Starts the real `ferry serve` (release build) on a temp data dir on 127.0.0.1 and runs
//! each scenario a bounded number of times. Every figure with a reference is a ratio
//! measured in the same run, so a noisy shared machine moves both sides together.
//! Environment: `FERRY_BENCH_MIB` (default 1024) sets the large-upload size;
//! `FERRY_BENCH_ONLY=P1,P5` runs some scenarios; `FERRY_BENCH_RUSTUS` names the peer for P2
//! and P7, `FERRY_BENCH_TUS_NODE` the node_modules holding P7's `@tus/server` (`bench/run`
//! installs both); `FERRY_BENCH_FERRY` benches another `ferry` binary (to compare two
//! versions back to back).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[path = "harness/mod.rs"]
mod harness;
#[path = "tus/mod.rs"]
mod tus;
use harness::{Server, admin, wait_for_jobs};

const MIB: usize = 1024 * 1024;
/// Runs per scenario with a reference: five, because the disk and the shared CPUs are noisy.
const REPEATS: usize = 5;

/// A 1 MiB block of pseudo-random bytes; the body repeats it (the server neither knows nor cares).
fn block(seed: u64) -> Bytes {
    let mut x = seed | 1;
    Bytes::from(
        (0..MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect::<Vec<u8>>(),
    )
}

fn body_of(block: &Bytes, mib: usize) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..mib).map(|_| Ok(block.clone())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> String {
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    format!("{lo:.0}–{hi:.0}")
}

fn mbps(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// The machine's limit for one upload: hashing the bytes once, and writing + fsyncing them.
fn limits(block: &Bytes, mib: usize, dir: &Path) -> (f64, f64) {
    let started = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..mib {
        hasher.update(block);
    }
    std::hint::black_box(hasher.finalize());
    let sha = mbps(mib * MIB, started.elapsed());

    let path = dir.join("limit-write");
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..mib {
        file.write_all(block).unwrap();
    }
    file.sync_all().unwrap();
    let write = mbps(mib * MIB, started.elapsed());
    std::fs::remove_file(path).unwrap();
    (sha, write)
}

/// A user `bench` on a fresh server and a signed PUT URL of theirs (reusable until it expires).
fn signed_put_url(data: &Path, server: &Server) -> String {
    admin(data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    admin(data, &server.address, &["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned()
}

/// One signed PUT of `mib` MiB into a fresh `ferry serve` in `dir`: (MB/s, server peak RSS KiB).
async fn ferry_put(dir: &Path, block: &Bytes, mib: usize) -> (f64, u64) {
    let data = dir.join("ferry-data");
    let server = Server::start(&data);
    let url = signed_put_url(&data, &server);
    let started = Instant::now();
    let response = reqwest::Client::new()
        .put(&url)
        .header("content-length", mib * MIB)
        .body(body_of(block, mib))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let rate = mbps(mib * MIB, started.elapsed());
    let (_, peak) = server.rss_kib();
    drop(server);
    std::fs::remove_dir_all(&data).unwrap();
    (rate, peak)
}

async fn large_put(mib: usize) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let block = block(7);
    println!("\n## P1 — one {mib} MiB signed PUT (embedded default: SQLite + local disk)");
    println!("| run | Ferry MB/s | SHA-256 MB/s | write+fsync MB/s | ratio Ferry/min | server peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    let (mut ratios, mut ferry) = (Vec::new(), Vec::new());
    for run in 0..REPEATS {
        let (rate, peak) = ferry_put(dir.path(), &block, mib).await;
        let (sha, write) = limits(&block, mib, dir.path());
        let ratio = rate / sha.min(write);
        println!("| {} | {rate:.0} | {sha:.0} | {write:.0} | {ratio:.2} | {:.1} |", run + 1, peak as f64 / 1024.0);
        ratios.push(ratio);
        ferry.push(rate);
    }
    println!(
        "median Ferry {:.0} MB/s (spread {}), median ratio {:.2}",
        median(&mut ferry),
        spread(&ferry),
        median(&mut ratios)
    );
}

/// rustus, a tus server in Rust, on a free loopback port with file storage in `dir`.
struct Rustus {
    child: std::process::Child,
    address: String,
}

impl Rustus {
    fn start(bin: &Path, dir: &Path, max_body: usize) -> Self {
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
async fn against_rustus(mib: usize) {
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

/// `count` uploads at once, each trickling `piece` bytes every `every` for `pieces` times:
/// the server's RSS above idle, per upload, while all of them are open.
async fn trickling_uploads(count: usize) {
    let (pieces, piece, every) = (60usize, 4096usize, Duration::from_millis(100));
    let wanted = (count as u64) * 4 + 256;
    let limit = rlimit::increase_nofile_limit(wanted).unwrap();
    assert!(limit >= wanted, "RLIMIT_NOFILE is {limit}; {count} uploads need about {wanted}");
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let url = signed_put_url(&data, &server);
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let (idle, _) = server.rss_kib();
    let uploads: Vec<_> = (0..count)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            let bytes = Bytes::from((0..piece).map(|i| (i as u64 * 31 + n as u64) as u8).collect::<Vec<u8>>());
            tokio::spawn(async move {
                let body = futures_util::stream::unfold(0usize, move |sent| {
                    let bytes = bytes.clone();
                    async move {
                        if sent == pieces {
                            return None;
                        }
                        tokio::time::sleep(every).await;
                        Some((Ok::<_, std::io::Error>(bytes), sent + 1))
                    }
                });
                // a fleet does not connect within one millisecond: 1,000 connects in one burst
                // overflow the listen backlog and are reset, which is not what this measures
                tokio::time::sleep(Duration::from_millis(n as u64)).await;
                let began = Instant::now();
                let response = client
                    .put(url)
                    .header("content-length", pieces * piece)
                    .body(reqwest::Body::wrap_stream(body))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("upload {n} after {:?}: {e:?}", began.elapsed()));
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            })
        })
        .collect();
    // sample while every upload is open: from 2 s in (all connected after 1 s) until 1 s
    // before the first could end
    let (mut samples, mut threads) = (Vec::new(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    while samples.len() < 3 * (pieces / 10 - 3) {
        samples.push(server.rss_kib().0);
        threads = threads.max(server.threads());
        tokio::time::sleep(Duration::from_millis(333)).await;
    }
    futures_util::future::try_join_all(uploads).await.expect("every upload succeeds");
    let busiest = *samples.iter().max().unwrap();
    let per_upload = (busiest.saturating_sub(idle)) as f64 / count as f64;
    println!(
        "\n## P3 — {count} concurrent uploads, each sending {piece} bytes every {} ms for {:.0} s",
        every.as_millis(),
        (pieces as u32 * every).as_secs_f64()
    );
    println!(
        "| server RSS idle MiB | busiest RSS MiB (of {} samples) | KiB per upload | most threads | after all ended MiB |",
        samples.len()
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {per_upload:.0} | {threads} | {:.1} |",
        idle as f64 / 1024.0,
        busiest as f64 / 1024.0,
        server.rss_kib().0 as f64 / 1024.0
    );
}

async fn multipart_rss(mib: usize) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    admin(&data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    let token = admin(&data, &server.address, &["token", "add", "--user", "bench", "--scopes", "upload"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let parts = 20;
    // multipart parts but the last must be at least 5 MiB, whatever FERRY_BENCH_MIB says
    let part_mib = (mib / parts).max(5);
    let start: Value = client
        .get(format!("{}/api/users/multipart_upload_start/bench?part_count={parts}", server.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let block = block(9);
    let mut etags = Vec::new();
    for url in start["presigned_urls"].as_array().unwrap() {
        let put = client
            .put(url.as_str().unwrap())
            .header("content-length", part_mib * MIB)
            .body(body_of(&block, part_mib))
            .send()
            .await
            .unwrap();
        etags.push(put.headers()["etag"].to_str().unwrap().to_owned());
    }
    let (before, _) = server.rss_kib();
    let list: Vec<Value> = etags.iter().enumerate().map(|(i, e)| json!({"part_number": i + 1, "etag": e})).collect();
    let started = Instant::now();
    let done = client
        .post(format!("{}/api/users/multipart_upload_complete/bench", server.address))
        .bearer_auth(&token)
        .json(&json!({"upload_id": start["upload_id"], "parts": list}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let took = started.elapsed();
    let (after, peak) = server.rss_kib();
    println!(
        "\n## Multipart completion — {parts} parts of {part_mib} MiB ({} MiB assembled through the pipeline)",
        parts * part_mib
    );
    println!("| completion MB/s | RSS before MiB | RSS after MiB | peak RSS MiB (whole run) |");
    println!("|---|---|---|---|");
    println!(
        "| {:.0} | {:.1} | {:.1} | {:.1} |",
        mbps(parts * part_mib * MIB, took),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

async fn dedup_batch() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let address = server.address.clone();
    admin(&data, &address, &["user", "add", "bench", "--level", "uploader"]);
    let key = admin(&data, &address, &["device", "add", "--user", "bench", "--name", "cam"])["device_session_key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&data, &address, &["volume", "add", "v", "--user", "bench"]);
    let grant = admin(&data, &address, &["grant", "add", "--device", "cam", "--volume", "v"])["media_grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let upload_url = format!("{address}/device/1/media_grant/{grant}/upload?device_session_key={key}");

    // 5,000 held files (uploaded for real, 16 at a time), 5,000 new ones
    let held: Vec<Vec<u8>> = (0..5_000u32).map(|i| i.to_le_bytes().repeat(16)).collect();
    let entry = |bytes: &[u8]| json!({"file_hash": hex::encode(Sha256::digest(bytes)), "file_size": bytes.len()});
    for chunk in held.chunks(500) {
        let list: Vec<Value> = chunk.iter().map(|b| entry(b)).collect();
        let answer: Value =
            client.post(&upload_url).json(&json!({"file_list": list})).send().await.unwrap().json().await.unwrap();
        let puts = answer["upload_list"].as_array().unwrap().iter().zip(chunk).map(|(e, bytes)| {
            let url = e["signed_opts"]["url"].as_str().unwrap().to_owned();
            let client = client.clone();
            let bytes = bytes.clone();
            async move { assert_eq!(client.put(url).body(bytes).send().await.unwrap().status(), 200) }
        });
        let mut puts: Vec<_> = puts.collect();
        while !puts.is_empty() {
            let batch: Vec<_> = puts.drain(..puts.len().min(16)).collect();
            futures_util::future::join_all(batch).await;
        }
    }
    wait_for_jobs(&data, &address);
    let mut list: Vec<Value> = held.iter().map(|b| entry(b)).collect();
    list.extend((0..5_000u32).map(|i| entry(&(i + 1_000_000).to_le_bytes())));
    let body = json!({"file_list": list}).to_string();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let answer = client.post(&upload_url).body(body.clone()).send().await.unwrap().bytes().await.unwrap();
        // the latency ends with the answer's last byte; parsing it is the client's business
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let skipped = answer["upload_list"].as_array().unwrap().iter().filter(|e| e["skip_upload"] == true).count();
        assert_eq!(skipped, 5_000);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("\n## P4 — device `upload` batch of 10,000 entries (5,000 held), {} requests", times.len());
    println!("| median ms | p99 ms (max of 20) | min ms | body MiB |");
    println!("|---|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {:.1} | {:.1} |",
        times[times.len() / 2],
        times[times.len() - 1],
        times[0],
        body.len() as f64 / MIB as f64
    );
}

/// Requests/s of `url` from `connections` concurrent loops for `window`.
async fn request_rate(client: &reqwest::Client, url: &str, token: &str, connections: usize, window: Duration) -> f64 {
    let deadline = Instant::now() + window;
    let loops = (0..connections).map(|_| {
        let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
        async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
                done += 1;
            }
            done
        }
    });
    let total: u64 = futures_util::future::join_all(loops).await.into_iter().sum();
    total as f64 / window.as_secs_f64()
}

async fn small_requests() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let address = server.address.clone();
    admin(&data, &address, &["user", "add", "bench", "--level", "uploader"]);
    admin(&data, &address, &["device", "add", "--user", "bench", "--name", "cam"]);
    let token = admin(&data, &address, &["token", "add", "--user", "bench", "--scopes", "upload,read"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    for i in 0..60u32 {
        let form = reqwest::multipart::Form::new()
            .text("name", format!("event {i}"))
            .part("event", reqwest::multipart::Part::bytes(i.to_le_bytes().repeat(64)));
        let uploaded = client
            .post(format!("{address}/api/gallery/cam/upload"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(uploaded.status().is_success(), "event upload: {}", uploaded.status());
    }
    wait_for_jobs(&data, &address);
    let events_url = format!("{address}/api/gallery/cam/events?limit=50");
    let page: Value = client.get(&events_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page.as_array().map(Vec::len), Some(50), "the measured listing has 50 events");
    println!("\n## P5 — gallery `events` (50 items) vs `/healthz`, 64 connections, 3 s windows");
    println!("| run | events req/s | healthz req/s | ratio |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 0..REPEATS {
        let window = Duration::from_secs(3);
        let events = request_rate(&client, &events_url, &token, 64, window).await;
        let health = request_rate(&client, &format!("{address}/healthz"), &token, 64, window).await;
        println!("| {} | {events:.0} | {health:.0} | {:.2} |", run + 1, events / health);
        ratios.push(events / health);
    }
    println!("median ratio {:.2}", median(&mut ratios));
}

async fn many_small_files() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let address = server.address.clone();
    admin(&data, &address, &["user", "add", "bench", "--level", "uploader"]);
    let key = admin(&data, &address, &["device", "add", "--user", "bench", "--name", "cam"])["device_session_key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&data, &address, &["volume", "add", "v", "--user", "bench"]);
    let grant = admin(&data, &address, &["grant", "add", "--device", "cam", "--volume", "v"])["media_grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let call = |op: &str| format!("{address}/device/1/media_grant/{grant}/{op}?device_session_key={key}");
    let files: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_le_bytes().repeat(1024)).collect();
    let started = Instant::now();
    for batch in files.chunks(1000) {
        let list: Vec<Value> =
            batch.iter().map(|b| json!({"file_hash": hex::encode(Sha256::digest(b)), "file_size": b.len()})).collect();
        let answer: Value =
            client.post(call("upload")).json(&json!({"file_list": list})).send().await.unwrap().json().await.unwrap();
        let entries: Vec<(Value, Vec<u8>)> =
            answer["upload_list"].as_array().unwrap().iter().cloned().zip(batch.iter().cloned()).collect();
        // 16 in flight at every moment, not groups of 16 that wait for their slowest
        let work = entries.iter().map(|(entry, bytes)| {
            let (client, call) = (client.clone(), &call);
            async move {
                let url = entry["signed_opts"]["url"].as_str().unwrap();
                assert_eq!(client.put(url).body(bytes.clone()).send().await.unwrap().status(), 200);
                let hash = entry["file_hash"].as_str().unwrap();
                let media = json!({"media_path": format!("/f/{hash}"), "file_hash": hash, "file_size": bytes.len()});
                assert_eq!(client.post(call("media")).json(&media).send().await.unwrap().status(), 200);
            }
        });
        futures_util::stream::iter(work).buffer_unordered(16).collect::<Vec<()>>().await;
    }
    let took = started.elapsed();
    println!(
        "\n## P6 — 10,000 files of 4 KiB through the device flow (batch check, signed PUT, media create), 16 in flight"
    );
    println!("| files/s | total s | fsync policy |");
    println!("|---|---|---|");
    println!(
        "| {:.0} | {:.1} | every blob fsynced (file + directory) before its 200; SQLite WAL, synchronous=NORMAL |",
        10_000.0 / took.as_secs_f64(),
        took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::var("FERRY_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024).max(1);
    // e.g. FERRY_BENCH_ONLY=P2,P5 while working on one scenario
    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim().eq_ignore_ascii_case(name));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("# Ferry benchmarks — {cpus} CPUs, data on the current directory's disk");
    if wanted("P1") {
        large_put(mib).await;
    }
    if wanted("P2") {
        against_rustus(mib).await;
    }
    if wanted("P3") {
        trickling_uploads(1000).await;
        multipart_rss(mib).await;
    }
    if wanted("P4") {
        dedup_batch().await;
    }
    if wanted("P5") {
        small_requests().await;
    }
    if wanted("P6") {
        many_small_files().await;
    }
    if wanted("P7") {
        tus::against_peers(mib).await;
        tus::trickling_patches(1000).await;
    }
}
