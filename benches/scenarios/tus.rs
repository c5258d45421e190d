//! P7: the same bytes through tus into Ferry, rustus 0.5.10 and `@tus/server` (its file store,
//! on Node), with the same client: one PATCH, and 8 MiB PATCHes; then 1,000 tus PATCHes that
//! trickle at once. Ferry alone verifies SHA-256 (and the device top-hash) and fsyncs what it
//! acknowledges, so the machine's limits of the same run — SHA-256 of the bytes in-process,
//! and write + fsync of them — are printed beside each row.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::harness::{self, Server, admin};
use super::peer::Rustus;
use super::{MIB, REPEATS, block, body_of, limits, mbps, median};

/// How a file is sent: in one PATCH, or in PATCHes of this many MiB.
#[derive(Clone, Copy)]
enum Patches {
    One,
    Of(usize),
}

impl Patches {
    fn describe(self) -> String {
        match self {
            Patches::One => "one PATCH".into(),
            Patches::Of(mib) => format!("{mib} MiB PATCHes"),
        }
    }
}

/// A tus server under test.
struct Peer {
    endpoint: String,
    token: Option<String>,
    pid: u32,
}

/// Creates an upload of `mib` MiB at `peer` and sends it: MB/s from the creation to the last
/// answer.
async fn tus_upload(client: &reqwest::Client, peer: &Peer, block: &Bytes, mib: usize, patches: Patches) -> f64 {
    let with_token = |request: reqwest::RequestBuilder| match &peer.token {
        Some(token) => request.bearer_auth(token).header("tus-resumable", "1.0.0"),
        None => request.header("tus-resumable", "1.0.0"),
    };
    let started = Instant::now();
    let created = with_token(client.post(&peer.endpoint)).header("upload-length", mib * MIB).send().await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let location = match location.starts_with("http") {
        true => location,
        false => format!("{}{location}", peer.endpoint.split("/files").next().unwrap()),
    };
    let step = match patches {
        Patches::One => mib,
        Patches::Of(size) => size,
    };
    let mut offset = 0;
    while offset < mib {
        let size = step.min(mib - offset);
        let patched = with_token(client.patch(&location))
            .header("upload-offset", offset * MIB)
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", size * MIB)
            .body(body_of(block, size))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 204, "{}", patched.text().await.unwrap());
        offset += size;
    }
    mbps(mib * MIB, started.elapsed())
}

/// A fresh `ferry serve` in `data` with a user and an upload token.
fn ferry(data: &Path) -> (Server, String) {
    let server = Server::start(data);
    admin(data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    let token = admin(data, &server.address, &["token", "add", "--user", "bench", "--scopes", "upload"]);
    (server, token["token"].as_str().unwrap().to_owned())
}

/// `@tus/server` with its file store on a free loopback port (`bench/tus-node-server.mjs`).
struct NodeTus {
    child: std::process::Child,
    endpoint: String,
}

impl NodeTus {
    fn start(modules: &Path, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(dir).unwrap();
        let child = std::process::Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/tus-node-server.mjs"))
            .arg(modules)
            .arg(port.to_string())
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("node starts");
        let node = Self { child, endpoint: format!("http://127.0.0.1:{port}/files") };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return node;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("@tus/server did not listen on {}", node.endpoint);
    }
}

impl Drop for NodeTus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peak_mib(pid: u32) -> f64 {
    harness::rss_kib(pid).1 as f64 / 1024.0
}

/// One upload into a fresh Ferry: (MB/s, peak RSS MiB).
async fn into_ferry(dir: &Path, client: &reqwest::Client, block: &Bytes, mib: usize, patches: Patches) -> (f64, f64) {
    let data = dir.join("ferry-data");
    let (server, token) = ferry(&data);
    let peer = Peer { endpoint: format!("{}/files/", server.address), token: Some(token), pid: 0 };
    let rate = tus_upload(client, &peer, block, mib, patches).await;
    let peak = server.rss_kib().1 as f64 / 1024.0;
    drop(server);
    std::fs::remove_dir_all(&data).unwrap();
    (rate, peak)
}

/// P7's throughput table.
pub async fn against_peers(mib: usize) {
    println!("\n## P7 — one {mib} MiB file through tus: Ferry vs rustus 0.5.10 vs @tus/server (file store, Node)");
    let rustus = std::env::var_os("FERRY_BENCH_RUSTUS").map(PathBuf::from).filter(|b| b.exists());
    let node = std::env::var_os("FERRY_BENCH_TUS_NODE").map(PathBuf::from).filter(|m| m.join("@tus/server").exists());
    if rustus.is_none() || node.is_none() {
        println!(
            "not run: set FERRY_BENCH_RUSTUS to a rustus 0.5.10 binary and FERRY_BENCH_TUS_NODE to a node_modules \
             holding @tus/server and @tus/file-store (`bench/run` installs both)"
        );
        return;
    }
    let (rustus, node) = (rustus.unwrap(), node.unwrap());
    let dir = tempfile::tempdir_in(".").unwrap();
    let block = block(17);
    let client = reqwest::Client::new();
    println!(
        "| run | PATCHes | Ferry MB/s | rustus MB/s | @tus/server MB/s | Ferry / faster peer | SHA-256 MB/s | \
         write+fsync MB/s | Ferry / min(limits) | peak RSS MiB Ferry / rustus / node |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for patches in [Patches::One, Patches::Of(8)] {
        let (mut peers, mut limited) = (Vec::new(), Vec::new());
        for run in 0..REPEATS {
            let (ours, our_peak) = into_ferry(dir.path(), &client, &block, mib, patches).await;
            let storage = dir.path().join("rustus-data");
            let server = Rustus::start(&rustus, &storage, mib * MIB + MIB);
            let peer = Peer { endpoint: format!("{}/files/", server.address), token: None, pid: server.child.id() };
            let theirs = tus_upload(&client, &peer, &block, mib, patches).await;
            let rustus_peak = peak_mib(peer.pid);
            drop(server);
            std::fs::remove_dir_all(&storage).unwrap();
            let storage = dir.path().join("node-data");
            let server = NodeTus::start(&node, &storage);
            let peer = Peer { endpoint: server.endpoint.clone(), token: None, pid: server.child.id() };
            let nodes = tus_upload(&client, &peer, &block, mib, patches).await;
            let node_peak = peak_mib(peer.pid);
            drop(server);
            std::fs::remove_dir_all(&storage).unwrap();
            let (sha, write) = limits(&block, mib, dir.path());
            let (versus, against_limit) = (ours / theirs.max(nodes), ours / sha.min(write));
            println!(
                "| {} | {} | {ours:.0} | {theirs:.0} | {nodes:.0} | {versus:.2} | {sha:.0} | {write:.0} | {against_limit:.2} | \
                 {our_peak:.1} / {rustus_peak:.1} / {node_peak:.1} |",
                run + 1,
                patches.describe()
            );
            peers.push(versus);
            limited.push(against_limit);
        }
        println!(
            "{}: median Ferry / faster peer {:.2}, median Ferry / min(SHA-256, write+fsync) {:.2}",
            patches.describe(),
            median(&mut peers),
            median(&mut limited)
        );
    }
    // memory flat with size: the same upload at an eighth of the size
    let small = (mib / 8).max(1);
    let (_, small_peak) = into_ferry(dir.path(), &client, &block, small, Patches::One).await;
    let (_, large_peak) = into_ferry(dir.path(), &client, &block, mib, Patches::One).await;
    println!("Ferry peak RSS, one PATCH: {small} MiB → {small_peak:.1} MiB, {mib} MiB → {large_peak:.1} MiB");
}

/// `count` tus PATCHes at once, each trickling 4 KiB every 100 ms for 6 s: Ferry's RSS above
/// idle, per upload, while all are open.
pub async fn trickling_patches(count: usize) {
    let (pieces, piece, every) = (60usize, 4096usize, Duration::from_millis(100));
    let wanted = (count as u64) * 4 + 256;
    let limit = rlimit::increase_nofile_limit(wanted).unwrap();
    assert!(limit >= wanted, "RLIMIT_NOFILE is {limit}; {count} uploads need about {wanted}");
    let dir = tempfile::tempdir_in(".").unwrap();
    let (server, token) = ferry(&dir.path().join("data"));
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let endpoint = format!("{}/files/", server.address);
    let mut urls = Vec::with_capacity(count);
    for _ in 0..count {
        let created = client
            .post(&endpoint)
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", pieces * piece)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        urls.push(created.headers()["location"].to_str().unwrap().to_owned());
    }
    let (idle, _) = server.rss_kib();
    let uploads: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(n, url)| {
            let (client, token) = (client.clone(), token.clone());
            let bytes = Bytes::from((0..piece).map(|i| (i as u64 * 29 + n as u64) as u8).collect::<Vec<u8>>());
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
                // connects spread over a second, as in P3 (a burst overflows the listen backlog)
                tokio::time::sleep(Duration::from_millis(n as u64)).await;
                let response = client
                    .patch(url)
                    .bearer_auth(token)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", "0")
                    .header("content-type", "application/offset+octet-stream")
                    .header("content-length", pieces * piece)
                    .body(reqwest::Body::wrap_stream(body))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PATCH {n}: {e:?}"));
                assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
            })
        })
        .collect();
    let (mut samples, mut threads) = (Vec::new(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    while samples.len() < 3 * (pieces / 10 - 3) {
        samples.push(server.rss_kib().0);
        threads = threads.max(server.threads());
        tokio::time::sleep(Duration::from_millis(333)).await;
    }
    futures_util::future::try_join_all(uploads).await.expect("every PATCH succeeds");
    let busiest = *samples.iter().max().unwrap();
    let per_upload = busiest.saturating_sub(idle) as f64 / count as f64;
    println!("\n## P7 — {count} concurrent tus PATCHes, each sending {piece} bytes every {} ms", every.as_millis());
    println!(
        "| server RSS idle MiB | busiest RSS MiB (of {} samples) | KiB per upload | most threads |",
        samples.len()
    );
    println!("|---|---|---|---|");
    println!("| {:.1} | {:.1} | {per_upload:.0} | {threads} |", idle as f64 / 1024.0, busiest as f64 / 1024.0);
}
