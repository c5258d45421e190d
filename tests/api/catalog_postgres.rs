//! PostgreSQL test support and what only a real server can show. [`TestDatabase`] gives a
//! test (or a whole app, see `helpers::spawn_app_with`) a fresh database on the server
//! `FERRY_TEST_DATABASE_URL` names; without that variable these tests return at once and
//! the run says, once, that the PostgreSQL suites were not run.

use std::io::Write;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ferry::catalog::SqlCatalog as PgCatalog;
use ferry::catalog::*;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// A fresh database on the PostgreSQL test server (`FERRY_TEST_DATABASE_URL`), dropped
/// (with any connection still open to it) when this guard goes.
pub struct TestDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// `None` when no test server is configured; the first such call says so on stderr
    /// (written directly, so the test harness does not swallow it).
    pub async fn create() -> Option<Self> {
        static NOT_RUN: Once = Once::new();
        let Some(server) = std::env::var("FERRY_TEST_DATABASE_URL").ok().filter(|v| !v.is_empty()) else {
            NOT_RUN.call_once(|| {
                let _ = writeln!(std::io::stderr(), "PostgreSQL suites not run: set FERRY_TEST_DATABASE_URL");
            });
            return None;
        };
        let name = format!("ferry_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut admin = PgConnection::connect(&server).await.expect("the FERRY_TEST_DATABASE_URL server answers");
        admin.execute(AssertSqlSafe(format!("create database {name}"))).await.unwrap();
        admin.close().await.unwrap();
        Some(Self { url: with_database(&server, &name), server, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a tokio runtime, which must not be blocked on: a thread with
        // a runtime of its own does the async work, and the drop waits for it.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server).await?;
                admin.execute(AssertSqlSafe(format!("drop database if exists {name} with (force)"))).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(std::io::stderr(), "could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// `server` (a postgres:// URL) with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    let mut url = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        url = format!("{url}?{query}");
    }
    url
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_and_is_named_without_the_password() {
    // port 1 on loopback refuses at once; no test server is needed
    let started = Instant::now();
    let Err(err) = PgCatalog::open("postgres://ferry:s3cret@127.0.0.1:1/ferry").await else { panic!("opened") };
    let message = err.to_string();
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    assert!(message.contains("127.0.0.1:1") && !message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn a_catalog_migrated_by_a_newer_ferry_is_refused() {
    let Some(database) = TestDatabase::create().await else { return };
    drop(PgCatalog::open(&database.url).await.unwrap());
    let mut connection = PgConnection::connect(&database.url).await.unwrap();
    connection
        .execute(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
             values (999999, 'from the future', true, '\\x00', 0)",
        )
        .await
        .unwrap();
    connection.close().await.unwrap();
    let Err(err) = PgCatalog::open(&database.url).await else { panic!("a newer schema was opened") };
    assert!(matches!(&err, CatalogError::Schema(m) if m.contains("newer Ferry")), "{err}");
}

/// Concurrency only a real server shows: two replicas (two pools on one database) racing.
mod races {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Instant;

    use ferry::clock::now_ms;
    use ferry::domain::{Level, Name, Sha256Hex, UserId, VolumeId};
    use tokio::sync::Barrier;

    use super::*;
    use crate::catalog_conformance::{Step, blob, ok_step};

    struct Replicas {
        a: Arc<dyn Catalog>,
        b: Arc<dyn Catalog>,
        _database: TestDatabase,
    }

    async fn replicas() -> Option<Replicas> {
        let database = TestDatabase::create().await?;
        let a = Arc::new(PgCatalog::open(&database.url).await.unwrap());
        let b = Arc::new(PgCatalog::open(&database.url).await.unwrap());
        Some(Replicas { a, b, _database: database })
    }

    /// Runs `a` and `b` on two tasks released at the same instant.
    async fn race<A, B, T>(a: A, b: B) -> (T, T)
    where
        A: Future<Output = T> + Send + 'static,
        B: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let start = Arc::new(Barrier::new(2));
        let (sa, sb) = (start.clone(), start);
        let a = tokio::spawn(async move {
            sa.wait().await;
            a.await
        });
        let b = tokio::spawn(async move {
            sb.wait().await;
            b.await
        });
        (a.await.unwrap(), b.await.unwrap())
    }

    fn content(n: u8) -> MediaContent {
        MediaContent { blob: blob(n), ctime: None, mtime: None }
    }

    async fn owner_with_volume(catalog: &Arc<dyn Catalog>) -> (UserId, VolumeId) {
        let user = catalog.create_user(&Name::parse("owner").unwrap(), Level::Uploader).await.unwrap();
        let volume = catalog.create_volume(user.user_id, &Name::parse("photos").unwrap()).await.unwrap();
        (user.user_id, volume.volume_id)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_creates_of_one_path_get_one_item_and_the_feed_skips_nothing() {
        let Some(r) = replicas().await else { return };
        let (user, volume) = owner_with_volume(&r.a).await;
        for n in [1, 2] {
            r.a.commit_blob(&blob(n), Some(user), ok_step()).await.unwrap();
        }
        let by = Updater { user_id: user, device_id: None };
        const ROUNDS: usize = 60;
        for round in 0..ROUNDS {
            let path = format!("/race/{round}.jpg");
            let same = round % 2 == 0;
            let (ca, cb) = (content(1), content(if same { 1 } else { 2 }));
            let (a, b, pa) = (r.a.clone(), r.b.clone(), path.clone());
            let (ra, rb) = race(async move { a.create_media(volume, &pa, &ca, by).await.unwrap() }, async move {
                b.create_media(volume, &path, &cb, by).await.unwrap()
            })
            .await;
            match (ra, rb) {
                (MediaCreated::Created(x), MediaCreated::Existing(y))
                | (MediaCreated::Existing(x), MediaCreated::Created(y)) => {
                    assert!(same, "round {round}: different content both accepted");
                    assert_eq!(x, y, "round {round}: one item");
                }
                (MediaCreated::Created(id), MediaCreated::Conflict(winner))
                | (MediaCreated::Conflict(winner), MediaCreated::Created(id)) => {
                    assert!(!same, "round {round}: same content answered Conflict");
                    let stored = r.a.media_item(volume, id).await.unwrap().unwrap();
                    assert_eq!(winner, stored, "round {round}: the conflict shows the winner's state");
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
        // one change per item, numbered without gaps: a reader paging the feed misses nothing
        let feed = r.b.media_changes(volume, 0, 1000).await.unwrap();
        let seqs: Vec<i64> = feed.iter().map(|m| m.change_seq).collect();
        assert_eq!(seqs, (1..=ROUNDS as i64).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_expired_lease_is_taken_over_by_exactly_one_replica() {
        let Some(r) = replicas().await else { return };
        let id = r.a.enqueue_job(ferry::domain::JobKind::RemoteFetch, &serde_json::json!({}), None).await.unwrap();
        let lease = Duration::from_millis(300);
        let lease_end = Instant::now() + lease;
        let dead_worker = r.a.claim_job(lease).await.unwrap().unwrap();
        assert_eq!(dead_worker.job_id, id);
        // eight workers on two replicas poll until well past the lease
        let taken = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let catalog = if w % 2 == 0 { r.a.clone() } else { r.b.clone() };
                let taken = taken.clone();
                tokio::spawn(async move {
                    while Instant::now() < lease_end + Duration::from_millis(700) {
                        if let Some(job) = catalog.claim_job(Duration::from_secs(60)).await.unwrap() {
                            taken.lock().unwrap().push((job, Instant::now()));
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let taken = std::mem::take(&mut *taken.lock().unwrap());
        assert_eq!(taken.len(), 1, "re-run exactly once");
        let (job, at) = &taken[0];
        assert_eq!((job.job_id, job.attempts), (id, 2));
        // (leases are in whole milliseconds)
        assert!(*at + Duration::from_millis(2) >= lease_end, "not taken before the lease ended");
        r.b.finish_job(id, JobOutcome::Done).await.unwrap();
        assert!(r.a.claim_job(Duration::from_secs(60)).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn commits_and_collections_of_one_blob_never_leave_a_row_without_bytes() {
        let Some(r) = replicas().await else { return };
        let user = r.a.create_user(&Name::parse("owner").unwrap(), Level::Uploader).await.unwrap().user_id;
        // The "blob store": hashes whose bytes exist. Each step takes a moment, and bytes
        // appear early in a commit's step and vanish late in a collection's: the widest race.
        let stored = Arc::new(Mutex::new(HashSet::new()));
        let place = |hash: Sha256Hex| -> Step {
            let stored = stored.clone();
            Box::new(move || {
                Box::pin(async move {
                    stored.lock().unwrap().insert(hash);
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    Ok(())
                })
            })
        };
        let remove = || -> ByteDeleter {
            let stored = stored.clone();
            Arc::new(move |hash| {
                let stored = stored.clone();
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    stored.lock().unwrap().remove(&hash);
                    Ok(())
                })
            })
        };
        let mut collected = 0;
        for n in 0..40u8 {
            let content = blob(n);
            r.a.commit_blob(&content, Some(user), place(content.sha256.clone())).await.unwrap();
            // released: collectable from now on, until a commit holds it again
            r.a.release_hold(user, &content.sha256).await.unwrap();
            let (a, b, step, unstep, c) =
                (r.a.clone(), r.b.clone(), place(content.sha256.clone()), remove(), content.clone());
            let (committed, swept) = race(
                async move { a.commit_blob(&c, Some(user), step).await.map(|()| Collection::Nothing) },
                async move { b.collect_blob(now_ms(), unstep).await },
            )
            .await;
            committed.unwrap();
            collected += usize::from(matches!(swept.unwrap(), Collection::Collected { .. }));
            // whichever went first, the commit's hold keeps both the row and the bytes
            assert!(r.b.blob(&content.sha256).await.unwrap().is_some(), "blob {n}: row");
            assert!(stored.lock().unwrap().contains(&content.sha256), "blob {n}: row without bytes");
            assert!(r.b.holds(user, &content.sha256).await.unwrap(), "blob {n}: hold");
        }
        // every blob is held again: nothing is left to collect, and no bytes lack a row
        assert_eq!(r.a.collect_blob(now_ms(), remove()).await.unwrap(), Collection::Nothing);
        let rows = r.a.all_blob_hashes().await.unwrap().len();
        assert_eq!(stored.lock().unwrap().len(), rows);
        eprintln!("collect won the race {collected} times of 40");
    }
}

/// Workers of a kind claiming at the same moment (a wake-up starts them together) still leave
/// each account its share: on PostgreSQL each would otherwise count the account's running jobs
/// before any of the others' claims, and take hers.
#[tokio::test]
async fn claims_at_the_same_moment_keep_each_accounts_share() {
    const FETCH: [ferry::domain::JobKind; 1] = [ferry::domain::JobKind::RemoteFetch];
    let Some(database) = TestDatabase::create().await else { return };
    let catalog = Arc::new(PgCatalog::open(&database.url).await.unwrap());
    let name = ferry::domain::Name::parse("alice").unwrap();
    let alice = catalog.create_user(&name, ferry::domain::Level::Uploader).await.unwrap();
    let lease = Duration::from_secs(60);
    for round in 0..10 {
        for n in 0..6 {
            let payload = serde_json::json!({ "round": round, "n": n });
            catalog.enqueue_job_for(FETCH[0], &payload, None, Some(alice.user_id)).await.unwrap();
        }
        let claims = (0..4).map(|_| {
            let catalog = catalog.clone();
            async move { catalog.claim_job_in(lease, ClaimScope { kinds: &FETCH, per_owner: 2 }).await.unwrap() }
        });
        let claimed: Vec<Job> = futures_util::future::join_all(claims).await.into_iter().flatten().collect();
        assert_eq!(claimed.len(), 2, "round {round}: alice's share is 2 running, she got {}", claimed.len());
        for job in claimed {
            catalog.finish_job(job.job_id, JobOutcome::Done).await.unwrap();
        }
    }
}
