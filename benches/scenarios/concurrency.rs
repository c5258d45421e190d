//! P3 — many slow uploads at once, and a large multipart upload's server memory.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use super::harness::{Server, admin};
use super::*;

/// `count` uploads at once, each trickling `piece` bytes every `every` for `pieces` times:
/// the server's RSS above idle, per upload, while all of them are open.
pub async fn trickling_uploads(count: usize) {
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

pub async fn multipart_rss(mib: usize) {
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
