//! P10 — load (issue 27): `FERRY_BENCH_LOAD_CONNECTIONS` clients (1,000) for
//! `FERRY_BENCH_LOAD_SECS` (60 s) on one server, each with its own connection, mixing small
//! requests (a gallery `events` page, a device `upload` check of 10 entries) and uploads
//! (64 KiB signed PUTs of new content), while 100 slow-header and 100 slow-body clients hold
//! connections open. Reports requests, errors, p50/p99 latency by kind, the server's peak RSS
//! and open files, and how long the slow clients were kept; any error fails the scenario.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::{Server, admin};

const KINDS: [&str; 3] = ["gallery events", "device upload check", "64 KiB signed PUT"];
/// The slow clients' deadlines, shorter than the run so the bench sees them end.
const HEADER_TIMEOUT: &str = "5s";
const BODY_IDLE: &str = "5s";

#[derive(Default)]
struct Tally {
    latencies: [Vec<Duration>; 3],
    errors: Vec<String>,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Open files of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub async fn mixed_load() {
    let connections = setting("FERRY_BENCH_LOAD_CONNECTIONS", 1000) as usize;
    let window = Duration::from_secs(setting("FERRY_BENCH_LOAD_SECS", 60));
    let wanted = (connections as u64) * 4 + 1024;
    let limit = rlimit::increase_nofile_limit(wanted).unwrap();
    assert!(limit >= wanted, "RLIMIT_NOFILE is {limit}; {connections} clients need about {wanted}");
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("data");
    let server =
        Server::start_with(&data, &[("FERRY_HEADER_TIMEOUT", HEADER_TIMEOUT), ("FERRY_BODY_IDLE_TIMEOUT", BODY_IDLE)]);
    let base = server.address.clone();
    let ask = |args: &[&str]| admin(&data, &base, args);
    ask(&["user", "add", "bench", "--level", "uploader"]);
    let token =
        ask(&["token", "add", "--user", "bench", "--scopes", "upload,read"])["token"].as_str().unwrap().to_owned();
    let key =
        ask(&["device", "add", "--user", "bench", "--name", "cam"])["device_session_key"].as_str().unwrap().to_owned();
    ask(&["volume", "add", "photos", "--user", "bench"]);
    let grant =
        ask(&["grant", "add", "--device", "cam", "--volume", "photos"])["media_grant_id"].as_str().unwrap().to_owned();
    let put_url = ask(&["sign-upload", "--user", "bench"])["url"].as_str().unwrap().to_owned();
    let setup = reqwest::Client::new();
    for n in 0..50 {
        let form = reqwest::multipart::Form::new()
            .text("name", format!("event-{n}"))
            .part("event", reqwest::multipart::Part::bytes(vec![n as u8; 1000]).file_name("e.jpg"));
        let added = setup.post(format!("{base}/api/gallery/cam/upload")).bearer_auth(&token).multipart(form).send();
        assert!(added.await.unwrap().status().is_success());
    }

    let slow_ends = slow_clients(&base, &put_url).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let end = Instant::now() + window + Duration::from_secs(1);
    let clients: Vec<_> = (0..connections)
        .map(|n| {
            let (client, tally) = (client.clone(), tally.clone());
            let (base, token, key, grant, put_url) = (base.clone(), token.clone(), key.clone(), grant.clone(), put_url.clone());
            tokio::spawn(async move {
                // a fleet connects over a second, not in one burst past the listen backlog
                tokio::time::sleep(Duration::from_millis(n as u64 % 1000)).await;
                let mut round = 0u64;
                while Instant::now() < end {
                    round += 1;
                    let kind = (n + round as usize) % 3;
                    let began = Instant::now();
                    let sent = match kind {
                        0 => client.get(format!("{base}/api/gallery/cam/events?limit=50")).bearer_auth(&token).send().await,
                        1 => {
                            let hashes: Vec<Value> = (0..10)
                                .map(|i| json!({"file_hash": format!("{:064x}", n as u64 * 1_000_000 + round * 10 + i), "file_size": 1000}))
                                .collect();
                            let url = format!("{base}/device/1/media_grant/{grant}/upload?device_session_key={key}");
                            client.post(url).json(&json!({"file_list": hashes})).send().await
                        }
                        _ => {
                            let mut body = vec![0u8; 64 * 1024];
                            body[..8].copy_from_slice(&(n as u64).to_le_bytes());
                            body[8..16].copy_from_slice(&round.to_le_bytes());
                            client.put(&put_url).body(body).send().await
                        }
                    };
                    let outcome = match sent {
                        Ok(response) if response.status().is_success() => response.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                        Ok(response) => Err(format!("{} {}", response.status(), response.text().await.unwrap_or_default())),
                        Err(e) => Err(e.to_string()),
                    };
                    let mut tally = tally.lock().unwrap();
                    match outcome {
                        Ok(()) => tally.latencies[kind].push(began.elapsed()),
                        Err(why) => tally.errors.push(format!("{}: {why}", KINDS[kind])),
                    }
                }
            })
        })
        .collect();
    let (mut most_files, mut samples) = (0, 0);
    while Instant::now() < end {
        most_files = most_files.max(open_files(server.pid()));
        samples += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let slow = slow_ends.await.unwrap();
    let (_, peak) = server.rss_kib();
    let tally = tally.lock().unwrap();
    println!(
        "\n## P10 — load: {connections} clients for {} s (small requests and 64 KiB uploads), 100 slow-header and 100 slow-body clients",
        window.as_secs()
    );
    println!("| requests | kind | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (kind, name) in KINDS.iter().enumerate() {
        let mut sorted = tally.latencies[kind].clone();
        sorted.sort();
        println!(
            "| {} | {name} | {:.0} | {:.1} | {:.1} |",
            sorted.len(),
            sorted.len() as f64 / window.as_secs_f64(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99)
        );
    }
    println!(
        "errors: {}; server peak RSS {:.0} MiB; most open files {most_files} (of {samples} samples); slow clients closed by the server after {:.1} s (headers) and {:.1} s (bodies) at most",
        tally.errors.len(),
        peak as f64 / 1024.0,
        slow.0.as_secs_f64(),
        slow.1.as_secs_f64()
    );
    for error in tally.errors.iter().take(5) {
        println!("  e.g. {error}");
    }
    assert!(tally.errors.is_empty(), "P10: {} requests failed", tally.errors.len());
}

/// 100 clients that send half a request line and 100 that send half a body, then nothing: the
/// longest each kind kept its connection before the server closed it.
async fn slow_clients(base: &str, put_url: &str) -> tokio::task::JoinHandle<(Duration, Duration)> {
    let address = base.trim_start_matches("http://").to_owned();
    let put_target = put_url.splitn(4, '/').nth(3).map(|rest| format!("/{rest}")).unwrap();
    tokio::spawn(async move {
        let held = |request: Vec<u8>| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
                stream.write_all(&request).await.unwrap();
                let began = Instant::now();
                let mut sink = Vec::new();
                // bounded: the server's deadline ends it well within a minute
                let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut sink)).await;
                began.elapsed()
            })
        };
        let headers: Vec<_> = (0..100).map(|_| held(b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec())).collect();
        let bodies: Vec<_> = (0..100)
            .map(|_| {
                let head = format!("PUT {put_target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
                held([head.into_bytes(), vec![7u8; 1000]].concat())
            })
            .collect();
        let mut longest = (Duration::ZERO, Duration::ZERO);
        for h in headers {
            longest.0 = longest.0.max(h.await.unwrap());
        }
        for b in bodies {
            longest.1 = longest.1.max(b.await.unwrap());
        }
        longest
    })
}
