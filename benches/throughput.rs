//! Ferry's throughput and memory benchmarks: `cargo bench --bench throughput`.
//!
//! Starts the real `ferry serve` (release build) on a temp data dir on 127.0.0.1 and runs
//! each scenario a bounded number of times. Every figure with a reference is a ratio
//! measured in the same run, so a noisy shared machine moves both sides together.
//! P8 runs the `ferry push` client binary (issue 26; `scenarios/push.rs`); P9 times the
//! catalog's collection directly (issue 21; `scenarios/collection.rs`); P10 is the load run of
//! issue 27 (`scenarios/load.rs`; `FERRY_BENCH_LOAD_CONNECTIONS`, `FERRY_BENCH_LOAD_SECS`).
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

#[path = "scenarios/collection.rs"]
mod collection;
#[path = "scenarios/concurrency.rs"]
mod concurrency;
#[path = "harness/mod.rs"]
mod harness;
#[path = "scenarios/load.rs"]
mod load;
#[path = "scenarios/peer.rs"]
mod peer;
#[path = "scenarios/push.rs"]
mod push;
#[path = "scenarios/tus.rs"]
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

/// P5 on the embedded catalog, with its page cache (the default) and without it (every page
/// read afresh, as when the catalog changes between requests), then on PostgreSQL when
/// `FERRY_BENCH_DATABASE_URL` names a server (a database of its own is created for the run and
/// dropped after it).
async fn small_requests() {
    small_requests_on("SQLite (embedded default)", &[]).await;
    small_requests_on("SQLite, page cache off", &[("FERRY_GALLERY_PAGE_CACHE", "0")]).await;
    let Ok(server) = std::env::var("FERRY_BENCH_DATABASE_URL") else {
        println!("\nP5 on PostgreSQL not run: set FERRY_BENCH_DATABASE_URL to a PostgreSQL server");
        return;
    };
    let name = format!("ferry_bench_{}", std::process::id());
    let admin_pool = sqlx::PgPool::connect(&server).await.expect("the PostgreSQL server answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}"))).execute(&admin_pool).await.unwrap();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database path");
    harness::use_catalog(Some(format!("{base}/{name}")));
    small_requests_on("PostgreSQL", &[]).await;
    harness::use_catalog(None);
    let drop = format!("drop database {name} with (force)");
    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin_pool).await.unwrap();
}

async fn small_requests_on(catalog: &str, settings: &[(&str, &str)]) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, settings);
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
    let page_url = |limit: usize| format!("{address}/api/gallery/cam/events?limit={limit}");
    for limit in [50, 1] {
        let page: Value = client.get(page_url(limit)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(page.as_array().map(Vec::len), Some(limit), "the measured listing has {limit} events");
    }
    println!("\n## P5 — gallery `events` (50 items, and 1) vs `/healthz`, 64 connections, 3 s windows, {catalog}");
    println!("| run | events (50) req/s | events (1) req/s | healthz req/s | ratio (50) | ratio (1) |");
    println!("|---|---|---|---|---|---|");
    let (mut ratios, mut single) = (Vec::new(), Vec::new());
    for run in 0..REPEATS {
        let window = Duration::from_secs(3);
        let events = request_rate(&client, &page_url(50), &token, 64, window).await;
        let one = request_rate(&client, &page_url(1), &token, 64, window).await;
        let health = request_rate(&client, &format!("{address}/healthz"), &token, 64, window).await;
        println!(
            "| {} | {events:.0} | {one:.0} | {health:.0} | {:.2} | {:.2} |",
            run + 1,
            events / health,
            one / health
        );
        ratios.push(events / health);
        single.push(one / health);
    }
    println!("median ratio {:.2} (50 items), {:.2} (1 item)", median(&mut ratios), median(&mut single));
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
        "| {:.0} | {:.1} | every blob's bytes and directory entry durable before its 200 (a shared syncfs round up to 1 MiB, else fsync); SQLite WAL, synchronous=NORMAL |",
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
        peer::against_rustus(mib).await;
    }
    if wanted("P3") {
        concurrency::trickling_uploads(1000).await;
        concurrency::multipart_rss(mib).await;
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
    if wanted("P8") {
        push::push_scenarios(mib).await;
    }
    if wanted("P9") {
        collection::collection_pass().await;
    }
    if wanted("P10") {
        load::mixed_load().await;
    }
}
