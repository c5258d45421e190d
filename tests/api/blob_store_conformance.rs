//! The `BlobStore` contract, written against the trait so every backend runs the same
//! suite. `conformance!` instantiates it for a store constructor: local disk always, the
//! S3-compatible store when `FERRY_TEST_S3_ENDPOINT` (and the other `FERRY_TEST_S3_*`)
//! name a server — each test gets a key prefix of its own in the test bucket.

use std::io::Write;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use ferry::blob_store::*;
use ferry::config::{S3Config, Secret};
use ferry::domain::{ByteRange, Sha256Hex};
use futures_util::StreamExt;

use crate::helpers::bytes_of;

/// The S3 test server's settings with a fresh key prefix, or `None` (said once on stderr)
/// when no server is configured.
pub fn test_s3_config() -> Option<S3Config> {
    static NOT_RUN: Once = Once::new();
    let var = |name: &str| std::env::var(format!("FERRY_TEST_S3_{name}")).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("ENDPOINT") else {
        NOT_RUN.call_once(|| {
            let _ = writeln!(std::io::stderr(), "S3 suites not run: set FERRY_TEST_S3_ENDPOINT (and _BUCKET, …)");
        });
        return None;
    };
    Some(S3Config {
        endpoint: Some(endpoint),
        region: var("REGION").unwrap_or_else(|| "us-east-1".into()),
        bucket: var("BUCKET").expect("FERRY_TEST_S3_BUCKET"),
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY").map(Secret),
        path_style: true,
        prefix: format!("test-{}/", ulid::Ulid::new().to_string().to_lowercase()),
        direct: false,
    })
}

async fn stage(store: &dyn BlobStore, area: StagingArea, pieces: &[&[u8]]) -> Staged {
    let mut writer = store.stage(area).await.unwrap();
    for piece in pieces {
        writer.write(vec![Bytes::copy_from_slice(piece)]).await.unwrap();
    }
    writer.finish().await.unwrap()
}

async fn collect(stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

pub async fn staged_bytes_commit_and_read_back_whole_or_in_ranges(store: Arc<dyn BlobStore>) {
    let staged = stage(store.as_ref(), StagingArea::Request, &[b"hello ", b"blob ", b"world"]).await;
    assert_eq!(staged.size, 16);
    assert_eq!(collect(store.read_staged(&staged).await.unwrap()).await, b"hello blob world");
    let hash = Sha256Hex::of(b"hello blob world");
    assert_eq!(store.size_of(&hash).await.unwrap(), None, "nothing is visible before commit");
    assert_eq!(store.commit(&staged, &hash).await.unwrap(), Placed::Stored);
    assert_eq!(store.size_of(&hash).await.unwrap(), Some(16));
    assert_eq!(collect(store.read(&hash, None).await.unwrap()).await, b"hello blob world");
    let middle = ByteRange { start: 6, end: 9 };
    assert_eq!(collect(store.read(&hash, Some(middle)).await.unwrap()).await, b"blob");
    assert!(store.read_staged(&staged).await.is_err(), "the staging object is gone after commit");
    let listed = store.list().await.unwrap();
    assert_eq!(listed.iter().map(|(h, _)| h).collect::<Vec<_>>(), vec![&hash]);
}

pub async fn committing_stored_content_again_keeps_one_copy(store: Arc<dyn BlobStore>) {
    let hash = Sha256Hex::of(b"same");
    let first = stage(store.as_ref(), StagingArea::Request, &[b"same"]).await;
    let second = stage(store.as_ref(), StagingArea::Upload, &[b"sa", b"me"]).await;
    assert_eq!(store.commit(&first, &hash).await.unwrap(), Placed::Stored);
    assert_eq!(store.commit(&second, &hash).await.unwrap(), Placed::AlreadyPresent);
    assert!(store.read_staged(&second).await.is_err(), "the duplicate staging object is dropped");
    assert_eq!(collect(store.read(&hash, None).await.unwrap()).await, b"same");
    assert_eq!(store.list().await.unwrap().len(), 1);
}

pub async fn large_bodies_stream_through_in_parts(store: Arc<dyn BlobStore>) {
    // more than one 8 MiB part on S3, written in 1 MiB batches like the ingest pipeline does
    let body = bytes_of(21 * 1024 * 1024 + 5, 7);
    let mut writer = store.stage(StagingArea::Request).await.unwrap();
    for piece in body.chunks(1024 * 1024) {
        writer.write(vec![Bytes::copy_from_slice(piece)]).await.unwrap();
    }
    let staged = writer.finish().await.unwrap();
    assert_eq!(staged.size, body.len() as u64);
    let hash = Sha256Hex::of(&body);
    assert_eq!(store.commit(&staged, &hash).await.unwrap(), Placed::Stored);
    let read = collect(store.read(&hash, None).await.unwrap()).await;
    assert!(read == body, "the blob reads back as written ({} of {} bytes)", read.len(), body.len());
    let across = ByteRange { start: 8 * 1024 * 1024 - 3, end: 8 * 1024 * 1024 + 2 };
    let range = collect(store.read(&hash, Some(across)).await.unwrap()).await;
    assert_eq!(range, &body[across.start as usize..=across.end as usize]);
}

pub async fn empty_bodies_are_blobs_too(store: Arc<dyn BlobStore>) {
    let staged = stage(store.as_ref(), StagingArea::Request, &[]).await;
    assert_eq!(staged.size, 0);
    let hash = Sha256Hex::of(b"");
    assert_eq!(store.commit(&staged, &hash).await.unwrap(), Placed::Stored);
    assert_eq!(store.size_of(&hash).await.unwrap(), Some(0));
    assert!(collect(store.read(&hash, None).await.unwrap()).await.is_empty());
}

pub async fn discarding_and_deleting_are_idempotent(store: Arc<dyn BlobStore>) {
    let staged = stage(store.as_ref(), StagingArea::Upload, &[b"part"]).await;
    store.discard(&staged).await.unwrap();
    store.discard(&staged).await.unwrap();
    assert!(store.read_staged(&staged).await.is_err());
    let missing = Sha256Hex::of(b"never stored");
    store.delete(&missing).await.unwrap();
    assert_eq!(store.size_of(&missing).await.unwrap(), None);
    assert!(matches!(store.read(&missing, None).await, Err(StoreError::Missing(h)) if h == missing));
    let hash = Sha256Hex::of(b"gone");
    let staged = stage(store.as_ref(), StagingArea::Request, &[b"gone"]).await;
    store.commit(&staged, &hash).await.unwrap();
    store.delete(&hash).await.unwrap();
    store.delete(&hash).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
}

pub async fn a_dropped_writer_leaves_nothing(store: Arc<dyn BlobStore>) {
    let mut writer = store.stage(StagingArea::Request).await.unwrap();
    writer.write(vec![Bytes::from(bytes_of(9 * 1024 * 1024, 3))]).await.unwrap();
    drop(writer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.clean_request_staging().await.unwrap(), 0, "no request staging was left");
}

pub async fn the_startup_sweep_keeps_upload_staging(store: Arc<dyn BlobStore>) {
    let request = stage(store.as_ref(), StagingArea::Request, &[b"left by a crash"]).await;
    let part = stage(store.as_ref(), StagingArea::Upload, &[b"a part"]).await;
    assert_eq!(store.clean_request_staging().await.unwrap(), 1);
    assert!(store.read_staged(&request).await.is_err());
    assert_eq!(collect(store.read_staged(&part).await.unwrap()).await, b"a part");
}

pub async fn staging_keys_outside_staging_are_refused(store: Arc<dyn BlobStore>) {
    for key in ["../blobs/x", "requests/../../x", "sha256/aa/bb/cc", ""] {
        let staged = Staged { key: key.into(), size: 0 };
        assert!(store.read_staged(&staged).await.is_err(), "{key}");
        assert!(store.discard(&staged).await.is_err(), "{key}");
    }
}

async fn append(store: &dyn BlobStore, from: &Resumable, pieces: &[&[u8]]) -> Resumable {
    let mut writer = store.append_resumable(from).await.unwrap();
    for piece in pieces {
        writer.write(vec![Bytes::copy_from_slice(piece)]).await.unwrap();
    }
    writer.persist().await.unwrap()
}

pub async fn resumable_staging_grows_across_writers_and_finishes_once(store: Arc<dyn BlobStore>) {
    let body = bytes_of(13 * 1024 * 1024 + 9, 21);
    let start = store.start_resumable().await.unwrap();
    assert_eq!(start.size, 0);
    assert!(store.resumable_keys(&start).contains(&start.key));
    // small appends gather (an S3 tail), a large one fills parts, each in a writer of its own
    let mut recorded = start.clone();
    for range in [0..1000, 1000..3 * 1024 * 1024, 3 * 1024 * 1024..12 * 1024 * 1024, 12 * 1024 * 1024..body.len()] {
        let pieces: Vec<&[u8]> = body[range.clone()].chunks(1024 * 1024).collect();
        let next = append(store.as_ref(), &recorded, &pieces).await;
        assert_eq!(next.size, range.end as u64);
        store.prune_resumable(&recorded, &next).await.unwrap();
        recorded = next;
    }
    let staged = store.finish_resumable(&recorded).await.unwrap();
    assert_eq!(staged.size, body.len() as u64);
    assert_eq!(store.finish_resumable(&recorded).await.unwrap(), staged, "finishing again gives the same");
    assert!(collect(store.read_staged(&staged).await.unwrap()).await == body, "the bytes read back in order");
    let hash = Sha256Hex::of(&body);
    assert_eq!(store.commit(&staged, &hash).await.unwrap(), Placed::Stored);
    assert_eq!(store.size_of(&hash).await.unwrap(), Some(body.len() as u64));
    assert!(store.list_staging().await.unwrap().is_empty(), "{:?}", store.list_staging().await.unwrap());
}

pub async fn an_append_never_recorded_changes_nothing(store: Arc<dyn BlobStore>) {
    let start = store.start_resumable().await.unwrap();
    let recorded = append(store.as_ref(), &start, &[b"abc"]).await;
    store.prune_resumable(&start, &recorded).await.unwrap();
    // a writer whose state was refused (a bad checksum), one dropped unpersisted (a crash)
    let refused = append(store.as_ref(), &recorded, &[b"XYZ", &bytes_of(6 * 1024 * 1024, 22)]).await;
    store.prune_resumable(&refused, &recorded).await.unwrap();
    let mut crashed = store.append_resumable(&recorded).await.unwrap();
    crashed.write(vec![Bytes::from_static(b"QQQQ")]).await.unwrap();
    drop(crashed);
    let done = append(store.as_ref(), &recorded, &[b"def"]).await;
    let staged = store.finish_resumable(&done).await.unwrap();
    assert_eq!(collect(store.read_staged(&staged).await.unwrap()).await, b"abcdef");
    store.discard(&staged).await.unwrap();
}

pub async fn discarding_a_resumable_object_leaves_nothing(store: Arc<dyn BlobStore>) {
    let start = store.start_resumable().await.unwrap();
    let held = append(store.as_ref(), &start, &[&bytes_of(9 * 1024 * 1024, 23), b"tail"]).await;
    store.prune_resumable(&start, &held).await.unwrap();
    store.discard_resumable(&held).await.unwrap();
    store.discard_resumable(&held).await.unwrap();
    assert!(store.list_staging().await.unwrap().is_empty(), "{:?}", store.list_staging().await.unwrap());
    let finished = append(store.as_ref(), &store.start_resumable().await.unwrap(), &[b"x"]).await;
    store.finish_resumable(&finished).await.unwrap();
    store.discard_resumable(&finished).await.unwrap();
    assert!(store.list_staging().await.unwrap().is_empty(), "a finished one goes too");
}

/// Runs every conformance case against a fresh store from `$make`.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some((store, _guard)) = $make else { return };
                        super::$name(store).await;
                    }
                };
            }
            case!(staged_bytes_commit_and_read_back_whole_or_in_ranges);
            case!(committing_stored_content_again_keeps_one_copy);
            case!(large_bodies_stream_through_in_parts);
            case!(empty_bodies_are_blobs_too);
            case!(discarding_and_deleting_are_idempotent);
            case!(a_dropped_writer_leaves_nothing);
            case!(the_startup_sweep_keeps_upload_staging);
            case!(staging_keys_outside_staging_are_refused);
            case!(resumable_staging_grows_across_writers_and_finishes_once);
            case!(an_append_never_recorded_changes_nothing);
            case!(discarding_a_resumable_object_leaves_nothing);
        }
    };
}

fn local() -> Option<(Arc<dyn BlobStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    Some((Arc::new(LocalStore::open(dir.path()).unwrap()), dir))
}

fn s3() -> Option<(Arc<dyn BlobStore>, ())> {
    let store = S3Store::open(&test_s3_config()?).unwrap().with_request_staging_min_age(Duration::ZERO);
    Some((Arc::new(store), ()))
}

/// Every commit streams the staged object into a new upload, as blobs over 5 GiB do.
fn s3_streaming_commit() -> Option<(Arc<dyn BlobStore>, ())> {
    let store = S3Store::open(&test_s3_config()?).unwrap().with_request_staging_min_age(Duration::ZERO);
    Some((Arc::new(store.with_max_single_copy(0)), ()))
}

conformance!(on_local, local());
conformance!(on_s3, s3());
conformance!(on_s3_streaming_commit, s3_streaming_commit());
