//! A dependency that goes away (issue 27, item 2): with PostgreSQL or S3 unreachable every
//! request answers 503 `unavailable` with `Retry-After` in its family's error shape — never a
//! 500, also under load — an upload in flight leaves no staging behind, and Ferry recovers by
//! itself once the dependency is back. The outage is a real one: the connections run through a TCP relay the
//! test cuts and brings back on the same port.
//! On the embedded catalog, the outage is another process holding its write lock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::domain::Level;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::catalog_postgres::TestDatabase;
use crate::helpers::*;
use crate::in_flight::{form_end, form_file, form_upload, in_flight, register_session};
use crate::lifecycle::session_upload;

/// A TCP relay to `target` that can be cut (listener and every connection closed) and
/// brought back on the same address.
struct Relay {
    address: SocketAddr,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Self { address: listener.local_addr().unwrap(), target: target.to_owned(), tasks: Arc::default() };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(link);
            }
        });
        self.tasks.lock().unwrap().push(accepting);
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.address).await {
                return self.serve(listener);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen on {} again", self.address);
    }
}

/// `HOST:PORT` of a `postgres://user@HOST:PORT/db` URL.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

async fn usage(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url("/api/usage")).bearer_auth(token).send().await.unwrap()
}

async fn expect_unavailable(response: reqwest::Response) -> Value {
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = expect_error(response, 503, "unavailable").await;
    assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok_and(|n| n > 0)), "Retry-After in seconds: {body}");
    body
}

/// An app whose S3 store is reached through a relay the test can cut; `None` without S3.
async fn app_behind_s3_relay() -> Option<(TestApp, Relay)> {
    let mut s3 = crate::blob_store_conformance::test_s3_config()?;
    let target = s3.endpoint.clone().unwrap().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let relay = Relay::start(&target).await;
    s3.endpoint = Some(format!("http://{}", relay.address));
    Some((spawn_app_with(|layer| crate::direct_s3::put_s3(layer, &s3, false)).await, relay))
}

#[tokio::test]
async fn a_catalog_outage_answers_503_with_retry_after_and_heals_by_itself() {
    let Some(database) = TestDatabase::create().await else { return };
    let target = host_port(&database.url).to_owned();
    let relay = Relay::start(&target).await;
    let relayed = database.url.replacen(&target, &relay.address.to_string(), 1);
    let app = spawn_app_with(|layer| {
        layer.insert("database_url", relayed);
    })
    .await;
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    assert_eq!(usage(&app, &alice.token).await.status(), 200);
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL).await;

    relay.cut();
    expect_unavailable(usage(&app, &alice.token).await).await;
    // the session family answers in its own shape, and an upload keeps nothing
    let register = app.client.post(app.url("/api/upload/id")).bearer_auth(&alice.token).form(&[("folder_id", "x")]);
    let body = expect_unavailable(register.send().await.unwrap()).await;
    assert_eq!(body["status"], "error", "session family shape: {body}");
    let form = Form::new().part("event", Part::bytes(bytes_of(50_000, 3)).file_name("clip.mp4")).text("name", "e");
    let upload = app.client.post(app.url("/api/gallery/cam/upload")).bearer_auth(&alice.token).multipart(form);
    let body = expect_unavailable(upload.send().await.unwrap()).await;
    assert_eq!(body["success"], false, "gallery family shape: {body}");
    assert!(app.staging_left_behind().await.is_empty(), "an upload refused in an outage keeps nothing");

    relay.restore().await;
    // an upload whose body is still coming when the database goes: refused, nothing kept
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL).await;
    let session = register_session(&app.client, &app.address, &alice.token, "late").await;
    let upload = form_upload(&app.client, session["api"]["upload"].as_str().unwrap(), &alice.token);
    let (rest, answer) = in_flight(upload, form_file("a.bin", &bytes_of(200_000, 4))).await;
    relay.cut();
    rest.send(Ok(form_end())).await.unwrap();
    drop(rest);
    expect_unavailable(answer.await.unwrap().unwrap()).await;
    assert!(app.staging_left_behind().await.is_empty(), "the refused upload's staging is gone");
    assert!(app.blob_files().iter().all(|f| !f.ends_with(sha256_hex(&bytes_of(200_000, 4)))), "and no blob");

    relay.restore().await;
    let mut healed = false;
    for _ in 0..60 {
        if usage(&app, &alice.token).await.status() == 200 {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healed, "the server answers again once the database is back, without a restart");
}

#[tokio::test]
async fn a_blob_store_outage_answers_503_and_heals_by_itself() {
    let Some((app, relay)) = app_behind_s3_relay().await else { return };
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let kept = bytes_of(30_000, 5);
    let file_id = session_upload(&app.address, &alice.token, &kept).await;
    let download = || app.client.get(app.url(&format!("/api/files/{file_id}"))).bearer_auth(&alice.token).send();

    relay.cut();
    expect_unavailable(download().await.unwrap()).await;
    let register = app.client.post(app.url("/api/upload/id")).bearer_auth(&alice.token).form(&[("folder_id", "x")]);
    let session: Value = register.send().await.unwrap().json().await.unwrap();
    let form = Form::new().part("file", Part::bytes(bytes_of(40_000, 6)).file_name("late.jpg"));
    let upload = app.client.post(session["api"]["upload"].as_str().unwrap()).bearer_auth(&alice.token).multipart(form);
    let body = expect_unavailable(upload.send().await.unwrap()).await;
    assert_eq!(body["status"], "error", "session family shape: {body}");

    relay.restore().await;
    let mut healed = None;
    for _ in 0..60 {
        let response = download().await.unwrap();
        if response.status() == 200 {
            healed = Some(response.bytes().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healed.is_some_and(|b| b == kept.as_slice()), "the file downloads again once the store is back");
    // and an upload works again (session_upload checks the stored hash)
    session_upload(&app.address, &alice.token, &bytes_of(40_000, 6)).await;
}

#[tokio::test]
async fn a_catalog_outage_under_load_answers_success_or_503_and_loses_no_acknowledged_upload() {
    let Some(database) = TestDatabase::create().await else { return };
    let target = host_port(&database.url).to_owned();
    let relay = Relay::start(&target).await;
    let relayed = database.url.replacen(&target, &relay.address.to_string(), 1);
    let app = Arc::new(
        spawn_app_with(|layer| {
            layer.insert("database_url", relayed);
        })
        .await,
    );
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let token = Arc::new(alice.token);
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let acked = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let end = tokio::time::Instant::now() + Duration::from_millis(3500);
    let workers: Vec<_> = (0..16u64)
        .map(|worker| {
            let (app, token, statuses, acked) = (app.clone(), token.clone(), statuses.clone(), acked.clone());
            tokio::spawn(async move {
                for round in 0.. {
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    if round % 2 == 0 {
                        let status = usage(&app, &token).await.status().as_u16();
                        statuses.lock().unwrap().push(status);
                        continue;
                    }
                    let register = app.client.post(app.url("/api/upload/id")).bearer_auth(token.as_str());
                    let registered = register.form(&[("folder_id", "load")]).send().await.unwrap();
                    statuses.lock().unwrap().push(registered.status().as_u16());
                    let Ok(session) = registered.json::<Value>().await else { continue };
                    let Some(upload_url) = session["api"]["upload"].as_str() else { continue };
                    let bytes = bytes_of(20_000, worker * 10_000 + round);
                    let form = Form::new().part("file", Part::bytes(bytes.clone()).file_name("a.bin"));
                    let stored = app.client.post(upload_url).bearer_auth(token.as_str()).multipart(form).send();
                    let stored = stored.await.unwrap();
                    statuses.lock().unwrap().push(stored.status().as_u16());
                    if stored.status() == 200 {
                        let answer: Value = stored.json().await.unwrap();
                        acked.lock().unwrap().push((answer["file_id"].as_str().unwrap().to_owned(), bytes));
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.cut();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    relay.restore().await;
    for worker in workers {
        worker.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "only success or 503: {statuses:?}");
    assert!(statuses.contains(&503) && statuses.contains(&200), "the outage was felt and served around");
    // every upload acknowledged before, during or after the outage is there, byte for byte
    let acked = acked.lock().unwrap().clone();
    for (file_id, bytes) in &acked {
        let mut fetched = None;
        for _ in 0..60 {
            let file = app.client.get(app.url(&format!("/api/files/{file_id}"))).bearer_auth(token.as_str()).send();
            let file = file.await.unwrap();
            if file.status() == 200 {
                fetched = Some(file.bytes().await.unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(fetched.is_some_and(|f| f == bytes.as_slice()), "acknowledged {file_id} is intact");
    }
    assert!(app.staging_left_behind().await.is_empty(), "no staging left: {:?}", app.staging_files());
}

#[tokio::test]
async fn a_blob_store_outage_mid_upload_refuses_it_and_keeps_nothing() {
    let Some((app, relay)) = app_behind_s3_relay().await else { return };
    let alice = app.user("alice", Level::Uploader, "upload,read").await;
    let session = register_session(&app.client, &app.address, &alice.token, "late").await;
    let upload = form_upload(&app.client, session["api"]["upload"].as_str().unwrap(), &alice.token);
    let content = bytes_of(6 * 1024 * 1024, 8);
    let (rest, answer) = in_flight(upload, form_file("big.bin", &content[..3 * 1024 * 1024])).await;
    relay.cut();
    rest.send(Ok(content[3 * 1024 * 1024..].to_vec())).await.unwrap();
    rest.send(Ok(form_end())).await.unwrap();
    drop(rest);
    expect_unavailable(answer.await.unwrap().unwrap()).await;
    relay.restore().await;
    assert!(app.staging_left_behind().await.is_empty(), "staging left: {:?}", app.staging_files());
    assert!(app.blob_files().iter().all(|f| !f.ends_with(sha256_hex(&content))), "no blob of the refused upload");
    // once the store is back, the same upload goes through
    session_upload(&app.address, &alice.token, &content).await;
}

/// Another process holding the embedded catalog's write lock (the admin CLI, a backup) holds
/// up the writes, which go through once it lets go, and nothing else: reads are answered
/// meanwhile, also by a server with one worker thread (its runtime has one per core), which
/// a write waiting inside SQLite would stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_write_lock_held_by_another_process_delays_only_the_writes() {
    let app = spawn_app().await;
    let url = app.state.config.database_url.clone();
    let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap().to_owned()) else { return };
    let (alice, cam) = crate::device_client::DeviceClient::setup(&app, "alice", "/").await;
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // a connection of its own, as another process has
    let holder = std::thread::spawn({
        let holding = holding.clone();
        move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch("begin immediate").unwrap();
            held_tx.send(()).unwrap();
            // bounded: the test lets go well before, or gives up
            let _ = release_rx.recv_timeout(Duration::from_secs(8));
            holding.store(false, std::sync::atomic::Ordering::SeqCst);
            conn.execute_batch("commit").unwrap();
        }
    });
    held_rx.await.unwrap();

    let writes: Vec<_> = (0..2u8)
        .map(|n| {
            let (address, token) = (app.address.clone(), alice.token.clone());
            tokio::spawn(async move { session_upload(&address, &token, &[b'w', n]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await; // both uploads are waiting for the lock by now
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let current = app.client.post(app.url(&format!("/device/1/current?device_session_key={}", cam.key))).send().await;
    assert_eq!(current.unwrap().status(), 200);
    let answered_while_held = holding.load(std::sync::atomic::Ordering::SeqCst);
    assert!(answered_while_held, "reads are answered while the lock is held, not after");
    assert!(writes.iter().all(|w| !w.is_finished()), "the writes wait for the lock");

    let _ = release_tx.send(());
    holder.join().unwrap();
    for write in writes {
        let file_id = tokio::time::timeout(Duration::from_secs(5), write).await.expect("the write went through");
        assert!(!file_id.unwrap().is_empty());
    }
}
