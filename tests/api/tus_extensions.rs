//! tus beyond one plain upload: a second PATCH at once, Ferry's metadata (a SHA-256 that
//! binds the file, a device that makes a gallery event), deferred length, concatenation,
//! checkpoints of a large PATCH, and browsers' CORS. The protocol's statuses are in `tus`.

use std::time::Duration;

use bytes::Bytes;
use ferry::domain::Level;
use serde_json::Value;

use crate::helpers::*;
use crate::tus::{MIB, OCTETS, Tus, b64};

#[tokio::test]
async fn a_concurrent_patch_is_locked_out_and_a_dropped_one_keeps_its_bytes() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(4 * MIB, 8);
    let url = tus.create(body.len(), "").await;
    // a PATCH that sends 2 MiB, then waits, then breaks off
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(receive, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let slow = {
        let request = tus
            .request(reqwest::Method::PATCH, &url)
            .header("content-type", OCTETS)
            .header("upload-offset", "0")
            .body(reqwest::Body::wrap_stream(stream));
        tokio::spawn(request.send())
    };
    send.send(Ok(Bytes::from(body[..2 * MIB].to_vec()))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tus.patch(&url, 0, body[..10].to_vec()).await;
    expect_error(second, 423, "upload_locked").await;
    send.send(Err(std::io::Error::other("the phone lost its signal"))).await.unwrap();
    drop(send);
    let _ = slow.await.unwrap();
    // the server keeps what arrived and gives the lease back
    let mut offset = 0;
    for _ in 0..50 {
        offset = tus.offset(&url).await;
        if offset == 2 * MIB as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offset, 2 * MIB as u64, "every byte that arrived was kept");
    let resumed = tus.patch(&url, 2 * MIB, body[2 * MIB..].to_vec()).await;
    assert_eq!(resumed.status(), 204, "the lock was released: {:?}", resumed.text().await);
    assert_eq!(tus.files().await[0].sha256.as_str(), sha256_hex(&body));
}

#[tokio::test]
async fn a_sha256_in_the_metadata_binds_the_whole_file() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(2 * MIB + 3, 9);
    let wrong = sha256_hex(b"another file");
    let url = tus.create(body.len(), &format!("sha256 {}", b64(&wrong))).await;
    assert_eq!(tus.patch(&url, 0, body[..MIB].to_vec()).await.status(), 204);
    let refused = tus.patch(&url, MIB, body[MIB..].to_vec()).await;
    expect_error(refused, 400, "hash_mismatch").await;
    assert_eq!(tus.offset(&url).await, MIB as u64, "the completing PATCH was refused whole");
    assert!(tus.files().await.is_empty() && app.blob_files().is_empty(), "nothing was committed");

    let url = tus.create(body.len(), &format!("sha256 {}", b64(&sha256_hex(&body)))).await;
    assert_eq!(tus.patch(&url, 0, body.clone()).await.status(), 204);
    assert_eq!(tus.files().await.len(), 1);
}

#[tokio::test]
async fn a_device_in_the_metadata_makes_a_gallery_event() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let owner = TestUser { user_id: tus.user, token: tus.token.clone() };
    let camera = app.device(&owner, "porch-cam").await;
    let bob = app.user("bob", Level::Uploader, "upload").await;
    let bobs = app.device(&bob, "garage").await;

    let both = format!("folder_id {},device {}", b64("x"), b64("porch-cam"));
    expect_error(tus.post(&[("upload-length", "5"), ("upload-metadata", &both)]).await, 400, "conflicting_target")
        .await;
    for unknown in ["nope".to_owned(), bobs.device_id.to_string(), "garage".to_owned()] {
        let metadata = format!("device {}", b64(&unknown));
        let response = tus.post(&[("upload-length", "5"), ("upload-metadata", &metadata)]).await;
        expect_error(response, 400, "unknown_device").await;
    }

    let body = bytes_of(70_000, 10);
    let url = tus.create(body.len(), &format!("device {},filename {}", b64("porch-cam"), b64("door.jpg"))).await;
    let patched = tus.patch(&url, 0, body.clone()).await;
    assert_eq!(patched.status(), 204);
    let location = patched.headers()["ferry-location"].to_str().unwrap().to_owned();
    let fetched = app.client.get(&location).bearer_auth(&tus.token).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), &body[..], "{location} serves the event's file");
    let events = app.url("/api/gallery/porch-cam/events");
    let listed: Value = app.client.get(events).bearer_auth(&tus.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "door.jpg");
    assert_eq!(listed[0]["size"], body.len());
    assert!(tus.files().await.is_empty(), "an event, not a library file");
    assert!(camera.device_id > 0);
}

#[tokio::test]
async fn deferred_length_creation_with_upload_and_empty_uploads() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    // the length comes with a later PATCH
    let deferred = tus.post(&[("upload-defer-length", "1")]).await;
    assert_eq!(deferred.status(), 201);
    let url = deferred.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(tus.head(&url).await.headers()["upload-defer-length"], "1");
    let body = bytes_of(100_000, 11);
    assert_eq!(tus.patch(&url, 0, body[..60_000].to_vec()).await.status(), 204);
    let short = tus.patch_with(&url, 60_000, Vec::new(), &[("upload-length", "10")]).await;
    expect_error(short, 400, "invalid_length").await;
    let length = body.len().to_string();
    let done = tus.patch_with(&url, 60_000, body[60_000..].to_vec(), &[("upload-length", &length)]).await;
    assert_eq!(done.status(), 204);
    assert_eq!(tus.head(&url).await.headers()["upload-length"], length.as_str());
    assert_eq!(tus.files().await.len(), 1);
    // a client that lost the answer repeats the completing PATCH's end: done, nothing filed again
    let again = tus.patch_with(&url, body.len(), Vec::new(), &[("upload-length", &length)]).await;
    assert_eq!(again.status(), 204);
    assert_eq!(again.headers()["upload-offset"], length.as_str());
    let other = tus.patch_with(&url, body.len(), Vec::new(), &[("upload-length", "100001")]).await;
    expect_error(other, 400, "invalid_length").await;
    assert_eq!(tus.files().await.len(), 1);

    // creation-with-upload: the whole file in the POST, filed before the 201
    let small = bytes_of(5000, 12);
    let created = tus
        .request(reqwest::Method::POST, &app.url("/files/"))
        .header("upload-length", small.len().to_string())
        .header("content-type", OCTETS)
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["upload-offset"], "5000");
    assert_eq!(tus.files().await.len(), 2);

    // an empty file is complete once created
    let empty = tus.post(&[("upload-length", "0")]).await;
    assert_eq!(empty.status(), 201);
    let files = tus.files().await;
    assert!(files.iter().any(|f| f.size == 0), "{files:?}");
}

#[tokio::test]
async fn partial_uploads_concatenate_into_one_file() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(3 * MIB + 11, 13);
    let pieces = [&body[..MIB + 1], &body[MIB + 1..2 * MIB], &body[2 * MIB..]];
    let mut urls = Vec::new();
    for piece in pieces {
        let created = tus.post(&[("upload-length", &piece.len().to_string()), ("upload-concat", "partial")]).await;
        assert_eq!(created.status(), 201);
        let url = created.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(tus.head(&url).await.headers()["upload-concat"], "partial");
        urls.push(url);
    }
    // in any order, one of them in two PATCHes
    assert_eq!(tus.patch(&urls[2], 0, pieces[2].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&urls[0], 0, pieces[0][..100].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&urls[0], 100, pieces[0][100..].to_vec()).await.status(), 204);
    let early = format!("final;{} {}", urls[0], urls[1]);
    expect_error(tus.post(&[("upload-concat", &early)]).await, 400, "invalid_concat").await;
    assert_eq!(tus.patch(&urls[1], 0, pieces[1].to_vec()).await.status(), 204);
    assert!(tus.files().await.is_empty(), "partial uploads are not files");

    let concat = format!("final;{}", urls.join(" "));
    let metadata = format!("filename {},sha256 {}", b64("whole.bin"), b64(&sha256_hex(&body)));
    let created = tus.post(&[("upload-concat", &concat), ("upload-metadata", &metadata)]).await;
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let url = created.headers()["location"].to_str().unwrap().to_owned();
    let files = tus.files().await;
    assert_eq!(files.len(), 1, "filed before the final upload's 201");
    assert_eq!((files[0].title.as_str(), files[0].sha256.as_str()), ("whole.bin", sha256_hex(&body).as_str()));
    let head = tus.head(&url).await;
    assert_eq!(head.headers()["upload-offset"], body.len().to_string().as_str());
    assert!(head.headers()["upload-concat"].to_str().unwrap().starts_with("final;/files/"));
    expect_error(tus.patch(&url, body.len(), vec![1]).await, 403, "final_upload").await;
    for partial in &urls {
        assert_eq!(tus.head(partial).await.status(), 404, "HEAD answers without a body");
    }
    assert!(app.upload_staging_files().is_empty(), "{:?}", app.upload_staging_files());
}

#[tokio::test]
async fn a_large_patch_records_checkpoints_and_hashes_in_one_read() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(70 * MIB + 5, 14);
    let url = tus.create(body.len(), "").await;
    assert_eq!(tus.patch(&url, 0, body[..7].to_vec()).await.status(), 204);
    assert_eq!(tus.patch(&url, 7, body[7..].to_vec()).await.status(), 204);
    let file = &tus.files().await[0];
    assert_eq!(file.sha256.as_str(), sha256_hex(&body));
    // tus is not the device family: the top-hash comes from the device_hash job (API.md §5)
    let mut top = ferry::domain::ChunkHasher::new(Some(body.len() as u64));
    top.update(&body);
    let recorded = recorded_top_hash(&app, &file.sha256).await;
    assert_eq!(recorded, top.finish(body.len() as u64), "a device finds it by its top-hash");
}

#[tokio::test]
async fn browsers_get_their_preflight_and_see_the_tus_headers() {
    let app = spawn_app_with(|layer| {
        layer.insert("cors_origins", "https://app.example".into());
    })
    .await;
    let tus = Tus::new(&app, "alice").await;
    let url = tus.create(10, "").await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "tus-resumable,upload-offset,content-type,authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");
    // named one by one: a browser never lets `*` stand for Authorization
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["authorization", "tus-resumable", "upload-offset", "content-type"] {
        assert!(allowed.split(',').any(|h| h.trim() == header), "{header} in {allowed}");
    }
    let head = tus.request(reqwest::Method::HEAD, &url).header("origin", "https://app.example").send().await.unwrap();
    let exposed = head.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["location", "upload-offset", "upload-length", "upload-expires", "tus-resumable", "tus-version"] {
        assert!(exposed.split(',').any(|h| h.trim() == header), "{header} in {exposed}");
    }
}

#[tokio::test]
async fn admin_check_repair_leaves_a_live_upload_whole() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(2 * MIB, 21);
    let url = tus.create(body.len(), "").await;
    // half of it: on S3 less than a part, so it waits in a tail object of its own
    assert_eq!(tus.patch(&url, 0, body[..MIB].to_vec()).await.status(), 204);

    let (catalog, store) = (app.catalog().as_ref(), app.state.store.as_ref());
    let scope = ferry::jobs::consistency::CheckScope { deep: false, staging_age: Duration::ZERO };
    let report = ferry::jobs::consistency::check(catalog, store, scope).await.unwrap();
    assert!(report.staging_leftovers.is_empty(), "a live upload's staging is in use: {report:?}");
    ferry::jobs::consistency::repair(catalog, store, report, Duration::ZERO).await.unwrap();

    let last = tus.patch(&url, MIB, body[MIB..].to_vec()).await;
    assert_eq!(last.status(), 204, "{:?}", last.text().await);
    let file = tus.files().await.pop().expect("the finished upload is a library file");
    assert_eq!(tus.download(&file.file_id).await, body, "every byte survived the repair");
}

/// What the app's catalog does when a library file row is inserted: a real catalog fault at
/// the one step after a commit, caused through the database itself (a trigger).
enum OnFileRow {
    /// The insert fails.
    Refuse,
    /// Every tus lease is taken from its holder (as a lease that ran out and was taken over).
    StealLeases,
    /// Back to normal.
    Insert,
}

async fn on_library_file_row(app: &TestApp, what: OnFileRow) {
    let url = app.state.config.database_url.clone();
    let (sqlite_step, pg_step) = match what {
        OnFileRow::Refuse => ("select raise(abort, 'refused by the test');", "raise exception 'refused by the test';"),
        OnFileRow::StealLeases => (
            "update tus_uploads set lease_token = 'stolen', lease_until_ms = 0;",
            "update tus_uploads set lease_token = 'stolen', lease_until_ms = 0; return new;",
        ),
        OnFileRow::Insert => ("", ""),
    };
    if url.starts_with("sqlite:") {
        let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("drop trigger if exists on_file_row").unwrap();
        if !sqlite_step.is_empty() {
            let sql = format!("create trigger on_file_row before insert on files begin {sqlite_step} end");
            conn.execute_batch(&sql).unwrap();
        }
    } else {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        conn.execute("drop trigger if exists on_file_row on files").await.unwrap();
        if !pg_step.is_empty() {
            let sql = format!(
                "create or replace function on_file_row() returns trigger language plpgsql as $$ begin {pg_step} end $$;
                 create trigger on_file_row before insert on files for each row execute function on_file_row()"
            );
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_upload_committed_but_not_filed_is_filed_by_the_next_request() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(300_000, 22);
    let url = tus.create(body.len(), "").await;
    on_library_file_row(&app, OnFileRow::Refuse).await;
    let failed = tus.patch(&url, 0, body.clone()).await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    let sha256 = ferry::domain::Sha256Hex::of(&body);
    assert!(app.catalog().blob(&sha256).await.unwrap().is_some(), "the bytes were committed before the filing failed");
    assert!(tus.files().await.is_empty());

    on_library_file_row(&app, OnFileRow::Insert).await;
    assert_eq!(tus.offset(&url).await, body.len() as u64, "HEAD files it and reports the whole upload");
    let file = tus.files().await.pop().expect("filed by the HEAD");
    assert_eq!(tus.download(&file.file_id).await, body);
    assert!(app.upload_staging_files().is_empty(), "nothing of the upload is left in staging");
}

#[tokio::test]
async fn a_filing_that_lost_its_lease_is_taken_back_and_the_upload_filed_once() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "alice").await;
    let body = bytes_of(200_000, 23);
    let url = tus.create(body.len(), "").await;
    // the lease runs out and is taken over while the completing PATCH files the upload
    on_library_file_row(&app, OnFileRow::StealLeases).await;
    expect_error(tus.patch(&url, 0, body.clone()).await, 423, "upload_locked").await;
    on_library_file_row(&app, OnFileRow::Insert).await;

    // the new holder's lease has run out too: the next request files the upload
    assert_eq!(tus.offset(&url).await, body.len() as u64);
    let files = tus.files().await;
    assert_eq!(files.len(), 1, "filed exactly once: {files:?}");
    assert_eq!(tus.download(&files[0].file_id).await, body);
}
