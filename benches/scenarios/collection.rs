//! P9 — a collection pass (issue 21) costs what the garbage costs, not what the store holds:
//! the same 1,000 collection candidates on an SQLite catalog of 10,000 and of 1,000,000 held
//! blob rows, each removed from the catalog and its bytes from disk; then an idle pass (no
//! candidate due) on the large catalog. Milestone 1's collector scanned every old blob row
//! to find one (~0.1 s per 200,000 rows).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::catalog::{ByteDeleter, Collection, Lifecycle, SqlCatalog};
use ferry::clock::now_ms;
use sha2::{Digest, Sha256};

const CANDIDATES: usize = 1000;

fn hash(n: u64, salt: &str) -> String {
    hex::encode(Sha256::digest(format!("{salt}{n}")))
}

/// A migrated catalog at `dir` with `held` blob rows one user holds and `CANDIDATES` blob
/// rows nobody holds, recorded as candidates, whose bytes are files under `dir/bytes`.
async fn seeded(dir: &Path, held: u64) -> String {
    let url = format!("sqlite://{}", dir.join("ferry.db").display());
    drop(SqlCatalog::open(&url).await.unwrap());
    let mut conn = rusqlite::Connection::open(dir.join("ferry.db")).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("insert into users (id, name, level, created_ms) values (1, 'bench', 'uploader', 0)", []).unwrap();
    {
        let mut blob =
            tx.prepare("insert into blobs (sha256, size, created_ms, last_used_ms) values (?1, 4096, 0, 0)").unwrap();
        let mut hold = tx.prepare("insert into holds (user_id, sha256, created_ms) values (1, ?1, 0)").unwrap();
        for n in 0..held {
            let sha256 = hash(n, "held");
            blob.execute([&sha256]).unwrap();
            hold.execute([&sha256]).unwrap();
        }
        let mut candidate = tx.prepare("insert into collect_candidates (sha256, since_ms) values (?1, 0)").unwrap();
        std::fs::create_dir_all(dir.join("bytes")).unwrap();
        for n in 0..CANDIDATES as u64 {
            let sha256 = hash(n, "garbage");
            blob.execute([&sha256]).unwrap();
            candidate.execute([&sha256]).unwrap();
            std::fs::write(dir.join("bytes").join(&sha256), [0u8; 4096]).unwrap();
        }
    }
    tx.commit().unwrap();
    url
}

/// Collects until nothing is due; (blobs collected, time taken).
async fn collect_all(catalog: &SqlCatalog, bytes: &Path) -> (usize, Duration) {
    let bytes = bytes.to_owned();
    let delete: ByteDeleter = Arc::new(move |sha256| {
        let path = bytes.join(sha256.as_str());
        Box::pin(async move { tokio::fs::remove_file(path).await.map_err(Into::into) })
    });
    let started = Instant::now();
    let mut collected = 0;
    loop {
        match catalog.collect_blob(now_ms(), delete.clone()).await.unwrap() {
            Collection::Nothing => break,
            Collection::Kept(sha256) => panic!("{sha256} is referenced by nothing"),
            Collection::Collected { .. } => collected += 1,
        }
    }
    (collected, started.elapsed())
}

pub async fn collection_pass() {
    println!("\n## P9 — a collection pass of {CANDIDATES} candidates (4 KiB files) on SQLite, by store size");
    println!("| held blob rows | seeding | pass | per candidate | idle pass (nothing due) |");
    println!("|---:|---:|---:|---:|---:|");
    for held in [10_000u64, 1_000_000] {
        let dir = tempfile::tempdir_in(".").unwrap();
        let seeding = Instant::now();
        let url = seeded(dir.path(), held).await;
        let seeding = seeding.elapsed();
        let catalog = SqlCatalog::open(&url).await.unwrap();
        let (collected, took) = collect_all(&catalog, &dir.path().join("bytes")).await;
        assert_eq!(collected, CANDIDATES);
        assert_eq!(std::fs::read_dir(dir.path().join("bytes")).unwrap().count(), 0, "every file removed");
        let (_, idle) = collect_all(&catalog, &dir.path().join("bytes")).await;
        println!(
            "| {held} | {:.1} s | {:.0} ms | {:.0} µs | {:.0} µs |",
            seeding.as_secs_f64(),
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / CANDIDATES as f64,
            idle.as_secs_f64() * 1e6
        );
    }
}
