//! The web gallery's first screen (issue 25): `cargo bench --bench timeline`.
//!
//! A fresh release `ferry serve` (SQLite + local disk, 127.0.0.1) gets a library of
//! `FERRY_BENCH_ITEMS` (10,000) gallery events of small distinct files across two devices,
//! then the requests the page makes for its first screen are timed: the page itself, its
//! sources and the first page of the timeline (60 items) — a fixed number of requests, whatever
//! the library's size — and a page deep in the library (the keyset cursor makes it cost the
//! same). Medians of `FERRY_BENCH_REPEATS` (50) requests each, one after another.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

#[path = "harness/mod.rs"]
mod harness;
use harness::{Server, admin};

async fn timed(client: &reqwest::Client, url: &str, token: &str, repeats: usize) -> (Duration, Value) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = Value::Null;
    for _ in 0..repeats {
        let started = Instant::now();
        let response = client.get(url).bearer_auth(token).send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        let body = response.bytes().await.unwrap();
        times.push(started.elapsed());
        last = serde_json::from_slice(&body).unwrap_or(Value::Null);
    }
    times.sort();
    (times[times.len() / 2], last)
}

#[tokio::main]
async fn main() {
    let items: usize = std::env::var("FERRY_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let repeats: usize = std::env::var("FERRY_BENCH_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir_in(".").unwrap();
    let data = dir.path().join("ferry");
    let server = Server::start(&data);
    admin(&data, &server.address, &["user", "add", "bench", "--level", "uploader"]);
    for device in ["cam", "door"] {
        admin(&data, &server.address, &["device", "add", "--user", "bench", "--name", device]);
    }
    let token = admin(&data, &server.address, &["token", "add", "--user", "bench", "--scopes", "upload,read"]);
    let token = token["token"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();

    let started = Instant::now();
    let uploads = futures_util::stream::iter(0..items).map(|i| {
        let (client, token, address) = (client.clone(), token.clone(), server.address.clone());
        async move {
            let device = if i % 2 == 0 { "cam" } else { "door" };
            let form = reqwest::multipart::Form::new()
                .text("name", format!("item-{i}.bin"))
                .part("event", reqwest::multipart::Part::bytes(format!("item {i} of the library").into_bytes()));
            let url = format!("{address}/api/gallery/{device}/upload");
            let response = client.post(url).bearer_auth(&token).multipart(form).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    });
    uploads.buffer_unordered(16).collect::<Vec<()>>().await;
    println!(
        "# Ferry timeline benchmark — {items} items (gallery events, 2 devices), filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    harness::wait_for_jobs(&data, &server.address);

    let base = &server.address;
    let (page, _) = timed(&client, &format!("{base}/"), &token, repeats).await;
    let (sources, _) = timed(&client, &format!("{base}/api/sources"), &token, repeats).await;
    let (first, body) = timed(&client, &format!("{base}/api/timeline?limit=60"), &token, repeats).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 60);
    // walk to about nine tenths of the library, then time a page there
    let mut cursor = body["next"].as_str().unwrap().to_owned();
    for _ in 0..(items * 9 / 10 / 500) {
        let url = format!("{base}/api/timeline?limit=500&cursor={cursor}");
        let page: Value = client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        cursor = page["next"].as_str().unwrap().to_owned();
    }
    let (deep, _) = timed(&client, &format!("{base}/api/timeline?limit=60&cursor={cursor}"), &token, repeats).await;
    let (filtered, _) =
        timed(&client, &format!("{base}/api/timeline?limit=60&source=device:door"), &token, repeats).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("\n| request (median of {repeats}) | ms |");
    println!("|---|---|");
    println!("| `GET /` (the page, signed in or not) | {:.2} |", ms(page));
    println!("| `GET /api/sources` | {:.2} |", ms(sources));
    println!("| `GET /api/timeline?limit=60` (first screen) | {:.2} |", ms(first));
    println!("| `GET /api/timeline?limit=60&cursor=…` (nine tenths deep) | {:.2} |", ms(deep));
    println!("| `GET /api/timeline?limit=60&source=device:door` | {:.2} |", ms(filtered));
    println!(
        "first screen: 3 requests ({:.1} ms one after another), then one thumbnail per visible tile",
        ms(page + sources + first)
    );
    let (rss, peak) = server.rss_kib();
    println!("server RSS {:.0} MiB (peak {:.0} MiB)", rss as f64 / 1024.0, peak as f64 / 1024.0);
}
