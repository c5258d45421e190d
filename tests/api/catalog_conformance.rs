//! The `Catalog` contract, written against the trait so every backend runs the same
//! suite. `conformance!` instantiates it for a backend constructor: SQLite always,
//! PostgreSQL when `FERRY_TEST_DATABASE_URL` names a server (each test gets a database of
//! its own there, dropped afterwards; see `catalog_postgres` for what only a real server
//! can show).

use std::sync::Arc;
use std::time::Duration;

use ferry::catalog::*;
use ferry::clock::now_ms;
use ferry::domain::{JobKind, Level, MediaPath, Name, Sha256Hex};
use futures_util::future::BoxFuture;

use crate::catalog_postgres::TestDatabase;

pub type Step = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

pub fn ok_step() -> Step {
    Box::new(|| Box::pin(async { Ok(()) }))
}

pub fn blob(n: u8) -> BlobRecord {
    BlobRecord { sha256: Sha256Hex::of(&[n]), size: 1, chunked_hash: None }
}

pub async fn identities_round_trip(catalog: Arc<dyn Catalog>) {
    let alice = catalog.create_user(&Name::parse("alice").unwrap(), Level::Uploader).await.unwrap();
    assert!(matches!(
        catalog.create_user(&Name::parse("alice").unwrap(), Level::Admin).await,
        Err(CatalogError::Conflict(_))
    ));
    assert_eq!(catalog.user_by_name("alice").await.unwrap().unwrap().user_id, alice.user_id);

    let token = catalog.create_token(alice.user_id, "upload,read".parse().unwrap(), "hash-1").await.unwrap();
    let (found, owner) = catalog.token_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.token_id, owner.name.as_str()), (token.token_id, "alice"));
    catalog.revoke_token(token.token_id).await.unwrap();
    assert!(catalog.token_by_hash("hash-1").await.unwrap().is_none());

    let cam = catalog
        .create_device(NewDevice {
            user_id: alice.user_id,
            name: Name::parse("cam").unwrap(),
            key_hash: "key-1".into(),
        })
        .await
        .unwrap();
    let dup = NewDevice { user_id: alice.user_id, name: Name::parse("cam").unwrap(), key_hash: "key-2".into() };
    assert!(matches!(catalog.create_device(dup).await, Err(CatalogError::Conflict(_))));
    let (found, owner) = catalog.device_by_key_hash("key-1").await.unwrap().unwrap();
    let seen = (found.device_id, owner.user_id, owner.name.as_str(), owner.level);
    assert_eq!(seen, (cam.device_id, alice.user_id, "alice", Level::Uploader), "the device comes with its owner");
    let by_name = catalog.find_devices(&DeviceRef::parse("alice/cam")).await.unwrap();
    assert_eq!(by_name.len(), 1);
    let flagged = catalog.set_device_flag(cam.device_id, DeviceFlag::UploadDisabled, true).await.unwrap();
    assert!(flagged.is_upload_disabled && !flagged.is_disabled);

    let volume = catalog.create_volume(alice.user_id, &Name::parse("photos").unwrap()).await.unwrap();
    let grant = catalog
        .create_grant(NewGrant {
            device_id: cam.device_id,
            volume_id: volume.volume_id,
            prefix_path: MediaPath::parse_prefix("/dcim").unwrap(),
            name: "roll".into(),
        })
        .await
        .unwrap();
    assert_eq!(catalog.grants_of_device(cam.device_id).await.unwrap().len(), 1);
    assert!(catalog.set_grant_disabled(grant.media_grant_id, true).await.unwrap().is_disabled);
}

pub async fn signing_secret_is_created_once(catalog: Arc<dyn Catalog>) {
    let first = catalog.signing_secret(b"first").await.unwrap();
    let second = catalog.signing_secret(b"second").await.unwrap();
    assert_eq!(first, b"first");
    assert_eq!(second, b"first");
}

pub async fn holds_follow_commits_and_failed_steps_record_nothing(catalog: Arc<dyn Catalog>) {
    let a = catalog.create_user(&Name::parse("a").unwrap(), Level::Uploader).await.unwrap();
    let b = catalog.create_user(&Name::parse("b").unwrap(), Level::Uploader).await.unwrap();
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    assert!(catalog.holds(a.user_id, &blob(1).sha256).await.unwrap());
    assert!(!catalog.holds(b.user_id, &blob(1).sha256).await.unwrap());

    let failing: Step = Box::new(|| Box::pin(async { Err::<(), BoxError>("disk full".into()) }));
    assert!(matches!(catalog.commit_blob(&blob(2), Some(a.user_id), failing).await, Err(CatalogError::Step(_))));
    assert!(catalog.blob(&blob(2).sha256).await.unwrap().is_none());
    assert!(!catalog.holds(a.user_id, &blob(2).sha256).await.unwrap());

    // committing known content again adds a hold and keeps one row
    catalog.commit_blob(&blob(1), Some(b.user_id), ok_step()).await.unwrap();
    assert!(catalog.holds(b.user_id, &blob(1).sha256).await.unwrap());
    assert_eq!(catalog.all_blob_hashes().await.unwrap().len(), 1);
}

pub async fn collection_skips_held_blobs(catalog: Arc<dyn Catalog>) {
    let a = catalog.create_user(&Name::parse("a").unwrap(), Level::Uploader).await.unwrap();
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    let never: ByteDeleter = Arc::new(|h| Box::pin(async move { panic!("held blob {h} must not be collected") }));
    assert_eq!(catalog.collect_blob(now_ms(), never).await.unwrap(), Collection::Nothing);
}

pub async fn jobs_are_claimed_once_retried_and_deduplicated(catalog: Arc<dyn Catalog>) {
    let payload = serde_json::json!({"x": 1});
    let first = catalog.enqueue_job(JobKind::MediaProcess, &payload, Some("blob-1")).await.unwrap();
    let again = catalog.enqueue_job(JobKind::MediaProcess, &payload, Some("blob-1")).await.unwrap();
    assert_eq!(first, again, "an unfinished job with the same key is not queued twice");

    let job = catalog.claim_job(Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((job.job_id, job.status, job.attempts), (first, JobStatus::Running, 1));
    assert!(catalog.claim_job(Duration::from_secs(60)).await.unwrap().is_none(), "a leased job is not claimed twice");

    catalog.finish_job(first, JobOutcome::Retry { error: "busy".into(), after: Duration::ZERO }).await.unwrap();
    let retried = catalog.claim_job(Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((retried.job_id, retried.attempts), (first, 2));
    catalog.finish_job(first, JobOutcome::Failed { error: "broken file".into() }).await.unwrap();
    let failed = catalog.list_jobs(Some(JobStatus::Failed)).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("broken file"));

    // a finished key may be queued again
    let fresh = catalog.enqueue_job(JobKind::MediaProcess, &payload, Some("blob-1")).await.unwrap();
    assert_ne!(fresh, first);
}

/// An account with its share of a kind's running jobs gets no more of them until one ends;
/// another account's job, a job of another kind and work of no account are still claimed.
pub async fn a_claim_leaves_each_account_its_share(catalog: Arc<dyn Catalog>) {
    let alice = catalog.create_user(&Name::parse("alice").unwrap(), Level::Uploader).await.unwrap();
    let bob = catalog.create_user(&Name::parse("bob").unwrap(), Level::Uploader).await.unwrap();
    let lease = Duration::from_secs(60);
    let fetch = [JobKind::RemoteFetch];
    let scope = ClaimScope { kinds: &fetch, per_owner: 2 };
    let mut alices = Vec::new();
    for n in 0..3 {
        let payload = serde_json::json!({ "n": n });
        alices.push(catalog.enqueue_job_for(JobKind::RemoteFetch, &payload, None, Some(alice.user_id)).await.unwrap());
    }
    let bobs =
        catalog.enqueue_job_for(JobKind::RemoteFetch, &serde_json::json!({}), None, Some(bob.user_id)).await.unwrap();
    let media = catalog.enqueue_job(JobKind::MediaProcess, &serde_json::json!({}), None).await.unwrap();

    let first = catalog.claim_job_in(lease, scope).await.unwrap().unwrap();
    let second = catalog.claim_job_in(lease, scope).await.unwrap().unwrap();
    assert_eq!((first.job_id, second.job_id), (alices[0], alices[1]));
    assert_eq!(first.owner_id, Some(alice.user_id));
    let third = catalog.claim_job_in(lease, scope).await.unwrap().unwrap();
    assert_eq!(third.job_id, bobs, "alice has her two running: bob's job comes before her third");
    assert!(catalog.claim_job_in(lease, scope).await.unwrap().is_none(), "alice's third waits for one of hers");
    let other_kind = catalog.claim_job_in(lease, ClaimScope { kinds: &[JobKind::MediaProcess], per_owner: 2 }).await;
    assert_eq!(other_kind.unwrap().unwrap().job_id, media, "another kind's workers are not held by alice");

    catalog.finish_job(first.job_id, JobOutcome::Done).await.unwrap();
    assert_eq!(catalog.claim_job_in(lease, scope).await.unwrap().unwrap().job_id, alices[2]);
}

pub async fn an_expired_lease_makes_a_job_claimable_again(catalog: Arc<dyn Catalog>) {
    let id = catalog.enqueue_job(JobKind::RemoteFetch, &serde_json::json!({}), None).await.unwrap();
    catalog.claim_job(Duration::from_millis(1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reclaimed = catalog.claim_job(Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((reclaimed.job_id, reclaimed.attempts), (id, 2));
}

pub async fn new_content_queues_one_media_job_and_results_keep_their_thumbnail(catalog: Arc<dyn Catalog>) {
    let a = catalog.create_user(&Name::parse("a").unwrap(), Level::Uploader).await.unwrap();
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    let jobs = catalog.list_jobs(None).await.unwrap();
    assert_eq!(jobs.len(), 1, "known content queues nothing: {jobs:?}");
    let expected = serde_json::json!({"sha256": blob(1).sha256});
    assert_eq!((jobs[0].kind, &jobs[0].payload), (JobKind::MediaProcess, &expected));

    let info = NewMediaInfo {
        sha256: blob(1).sha256,
        status: MediaStatus::Done,
        metadata: Some(serde_json::json!({"kind": "image", "width": 4000})),
        error: None,
    };
    catalog.record_media(&info, Some((blob(2), ok_step()))).await.unwrap();
    catalog.record_media(&info, Some((blob(2), ok_step()))).await.unwrap(); // a re-run replaces
    let found = catalog.media_info(&[blob(1).sha256, blob(3).sha256]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].thumbnail_sha256, &found[0].metadata), (&Some(blob(2).sha256), &info.metadata));
    assert_eq!(catalog.list_jobs(None).await.unwrap().len(), 1, "a generated thumbnail is not processed itself");

    // the thumbnail lives while the result does; the result goes with its content
    let deleted: ByteDeleter = Arc::new(|_| Box::pin(async { Ok(()) }));
    assert_eq!(catalog.collect_blob(now_ms(), deleted.clone()).await.unwrap(), Collection::Nothing, "both are kept");
    catalog.release_hold(a.user_id, &blob(1).sha256).await.unwrap();
    let mut collected = Vec::new();
    loop {
        match catalog.collect_blob(now_ms(), deleted.clone()).await.unwrap() {
            Collection::Collected { sha256, .. } => collected.push(sha256),
            Collection::Kept(sha256) => panic!("{sha256} is needed by nothing"),
            Collection::Nothing => break,
        }
    }
    assert_eq!(collected, vec![blob(1).sha256, blob(2).sha256], "the content first, then its thumbnail");
    assert!(catalog.media_info(&[blob(1).sha256]).await.unwrap().is_empty());
    assert!(matches!(catalog.record_media(&info, None).await, Err(CatalogError::NotFound(_))), "its blob is gone");
}

pub async fn a_completed_upload_takes_no_more_parts(catalog: Arc<dyn Catalog>) {
    let user = catalog.create_user(&Name::parse("u").unwrap(), Level::Uploader).await.unwrap();
    let upload = NewUpload {
        upload_id: "01JUPLOAD0000000000000000A".into(),
        family: ferry::catalog::UploadFamily::Multipart,
        user_id: user.user_id,
        grant_id: None,
        file_key: Some("clip".into()),
        file_size: None,
        file_hash: None,
        part_count: Some(1),
        content_type: None,
        expires_ms: i64::MAX / 2,
    };
    catalog.create_upload(&upload).await.unwrap();
    let part =
        |key: &str| Part { part_num: 1, staging_key: key.into(), size: 1, sha256: blob(1).sha256, etag: "e".into() };
    assert_eq!(catalog.put_part(&upload.upload_id, &part("uploads/A")).await.unwrap(), None);
    assert_eq!(
        catalog.put_part(&upload.upload_id, &part("uploads/B")).await.unwrap().as_deref(),
        Some("uploads/A"),
        "a retry replaces"
    );
    catalog.commit_blob(&blob(1), Some(user.user_id), ok_step()).await.unwrap();
    catalog.complete_upload(&upload.upload_id, &serde_json::json!({}), &blob(1)).await.unwrap();
    assert!(matches!(catalog.put_part(&upload.upload_id, &part("uploads/C")).await, Err(CatalogError::NotFound(_))));
    assert!(catalog.parts(&upload.upload_id).await.unwrap().is_empty());
}

pub async fn an_open_device_upload_is_found_by_owner_grant_and_content(catalog: Arc<dyn Catalog>) {
    let mut ids = Vec::new();
    for name in ["alice", "bob"] {
        let user = catalog.create_user(&Name::parse(name).unwrap(), Level::Uploader).await.unwrap();
        let device =
            NewDevice { user_id: user.user_id, name: Name::parse("cam").unwrap(), key_hash: format!("k-{name}") };
        let device = catalog.create_device(device).await.unwrap();
        let volume = catalog.create_volume(user.user_id, &Name::parse("v").unwrap()).await.unwrap();
        let grant = NewGrant {
            device_id: device.device_id,
            volume_id: volume.volume_id,
            prefix_path: MediaPath::root(),
            name: "v".into(),
        };
        ids.push((user.user_id, catalog.create_grant(grant).await.unwrap().media_grant_id));
    }
    let ((alice, grant), (bob, bob_grant)) = (ids[0], ids[1]);
    let content = blob(7).sha256;
    let start = |id: &str, expires_ms: i64| NewUpload {
        upload_id: id.into(),
        family: UploadFamily::Device,
        user_id: alice,
        grant_id: Some(grant),
        file_key: None,
        file_size: Some(20 << 20),
        file_hash: Some(content.clone()),
        part_count: Some(3),
        content_type: None,
        expires_ms,
    };
    catalog.create_upload(&start("01JDEVICE00000000000000000A", ferry::clock::now_ms() - 1)).await.unwrap();
    let find = |user, grant, size| {
        let (catalog, content) = (catalog.clone(), content.clone());
        async move { catalog.open_device_upload(user, grant, &content, size).await.unwrap().map(|u| u.upload_id) }
    };
    assert_eq!(find(alice, grant, 20 << 20).await, None, "an expired upload is not resumed");
    catalog.create_upload(&start("01JDEVICE00000000000000000B", i64::MAX / 2)).await.unwrap();
    assert_eq!(find(alice, grant, 20 << 20).await.as_deref(), Some("01JDEVICE00000000000000000B"));
    assert_eq!(find(alice, grant, 21 << 20).await, None, "another size is other content");
    assert_eq!(find(bob, bob_grant, 20 << 20).await, None, "another account finds nothing");
    catalog.commit_blob(&blob(7), Some(alice), ok_step()).await.unwrap();
    catalog.complete_upload("01JDEVICE00000000000000000B", &serde_json::json!({}), &blob(7)).await.unwrap();
    assert_eq!(find(alice, grant, 20 << 20).await, None, "a completed upload is not resumed");
}

pub async fn a_rendition_is_recorded_replaced_and_collected_with_its_content(catalog: Arc<dyn Catalog>) {
    let a = catalog.create_user(&Name::parse("a").unwrap(), Level::Uploader).await.unwrap();
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    let info = NewMediaInfo { sha256: blob(1).sha256, status: MediaStatus::Done, metadata: None, error: None };
    catalog.record_media(&info, None).await.unwrap();
    let made = |content_type: &str| NewRendition {
        sha256: blob(1).sha256,
        status: MediaStatus::Done,
        content_type: Some(content_type.into()),
        error: None,
    };
    catalog.record_rendition(&made("video/mp4"), Some((blob(2), ok_step()))).await.unwrap();
    let rendition =
        |n: u8| Some(Rendition { sha256: blob(n).sha256, content_type: "video/mp4".into(), size: blob(n).size });
    assert_eq!(catalog.media_info(&[blob(1).sha256]).await.unwrap()[0].rendition, rendition(2));
    assert_eq!(catalog.rendition_result(&blob(1).sha256).await.unwrap().unwrap().rendition, rendition(2));

    // a re-run that makes another lets go of the first; usage counts the one kept
    catalog.record_rendition(&made("video/mp4"), Some((blob(3), ok_step()))).await.unwrap();
    let deleted: ByteDeleter = Arc::new(|_| Box::pin(async { Ok(()) }));
    let first = catalog.collect_blob(now_ms(), deleted.clone()).await.unwrap();
    assert!(matches!(first, Collection::Collected { ref sha256, .. } if *sha256 == blob(2).sha256), "{first:?}");
    assert_eq!(catalog.collect_blob(now_ms(), deleted.clone()).await.unwrap(), Collection::Nothing);
    assert_eq!(catalog.server_usage().await.unwrap().rendition_bytes, blob(3).size as i64);

    // the rendition goes with its content
    catalog.release_hold(a.user_id, &blob(1).sha256).await.unwrap();
    let mut collected = Vec::new();
    while let Collection::Collected { sha256, .. } = catalog.collect_blob(now_ms(), deleted.clone()).await.unwrap() {
        collected.push(sha256);
    }
    assert_eq!(collected, vec![blob(1).sha256, blob(3).sha256], "the content first, then its rendition");
    assert_eq!(catalog.rendition_result(&blob(1).sha256).await.unwrap(), None);
    let gone = catalog.record_rendition(&made("video/mp4"), None).await;
    assert!(matches!(gone, Err(CatalogError::NotFound(_))), "its content is gone: {gone:?}");
}

pub async fn large_content_is_found_by_its_top_hash_only_once_it_is_recorded(catalog: Arc<dyn Catalog>) {
    let a = catalog.create_user(&Name::parse("a").unwrap(), Level::Uploader).await.unwrap();
    let large = BlobRecord { sha256: Sha256Hex::of(b"large"), size: 16 * 1024 * 1024 + 1, chunked_hash: None };
    catalog.commit_blob(&large, Some(a.user_id), ok_step()).await.unwrap();
    let mut kinds: Vec<JobKind> = catalog.list_jobs(None).await.unwrap().iter().map(|j| j.kind).collect();
    kinds.sort();
    assert_eq!(kinds, [JobKind::MediaProcess, JobKind::DeviceHash], "its top-hash is queued with the content");
    let held = |hash: &Sha256Hex| {
        let (catalog, hash) = (catalog.clone(), hash.clone());
        async move { catalog.held_by_device_hash(a.user_id, &[hash]).await.unwrap() }
    };
    assert!(held(&large.sha256).await.is_empty(), "over 16 MiB the SHA-256 is not the device's file hash");
    // a job that failed for good is queued again by the content's next arrival
    let job = catalog.claim_job_in(Duration::from_secs(60), ClaimScope { kinds: &[JobKind::DeviceHash], per_owner: 1 });
    let job = job.await.unwrap().expect("the device hash job");
    catalog.finish_job(job.job_id, JobOutcome::Failed { error: "the store was down".into() }).await.unwrap();
    catalog.commit_blob(&large, Some(a.user_id), ok_step()).await.unwrap();
    let pending = catalog.list_jobs(Some(JobStatus::Pending)).await.unwrap();
    assert!(pending.iter().any(|j| j.kind == JobKind::DeviceHash), "queued again: {pending:?}");
    // content a device then sends gets the top-hash it bound, whatever the job does
    let other = BlobRecord { sha256: Sha256Hex::of(b"other large"), size: 20 << 20, chunked_hash: None };
    catalog.commit_blob(&other, Some(a.user_id), ok_step()).await.unwrap();
    let bound = BlobRecord { chunked_hash: Some(Sha256Hex::of(b"bound top-hash")), ..other.clone() };
    catalog.commit_blob(&bound, Some(a.user_id), ok_step()).await.unwrap();
    assert_eq!(held(bound.chunked_hash.as_ref().unwrap()).await, vec![bound.clone()]);
    // the job records a top-hash; one recorded first stays
    let top = Sha256Hex::of(b"top-hash");
    assert!(held(&top).await.is_empty());
    assert!(catalog.record_device_hash(&large.sha256, &top).await.unwrap());
    assert_eq!(held(&top).await, vec![BlobRecord { chunked_hash: Some(top.clone()), ..large.clone() }]);
    assert!(catalog.record_device_hash(&large.sha256, &Sha256Hex::of(b"other")).await.unwrap());
    assert_eq!(catalog.blob(&large.sha256).await.unwrap().unwrap().chunked_hash, Some(top), "a recorded one stays");
    assert!(!catalog.record_device_hash(&Sha256Hex::of(b"unknown"), &Sha256Hex::of(b"x")).await.unwrap());
    // up to 16 MiB the SHA-256 is the file hash: nothing to compute
    let device_hash_jobs = |jobs: Vec<Job>| jobs.iter().filter(|j| j.kind == JobKind::DeviceHash).count();
    let before = device_hash_jobs(catalog.list_jobs(None).await.unwrap());
    catalog.commit_blob(&blob(1), Some(a.user_id), ok_step()).await.unwrap();
    assert_eq!(held(&blob(1).sha256).await, vec![blob(1)]);
    assert_eq!(device_hash_jobs(catalog.list_jobs(None).await.unwrap()), before, "no device hash job for it");
}

/// Runs every conformance case against a fresh catalog from `$make`.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some((catalog, _guard)) = $make.await else { return };
                        super::$name(catalog).await;
                    }
                };
            }
            case!(identities_round_trip);
            case!(signing_secret_is_created_once);
            case!(holds_follow_commits_and_failed_steps_record_nothing);
            case!(collection_skips_held_blobs);
            case!(jobs_are_claimed_once_retried_and_deduplicated);
            case!(an_expired_lease_makes_a_job_claimable_again);
            case!(a_claim_leaves_each_account_its_share);
            case!(a_completed_upload_takes_no_more_parts);
            case!(an_open_device_upload_is_found_by_owner_grant_and_content);
            case!(new_content_queues_one_media_job_and_results_keep_their_thumbnail);
            case!(a_rendition_is_recorded_replaced_and_collected_with_its_content);
            case!(large_content_is_found_by_its_top_hash_only_once_it_is_recorded);
        }
    };
}

async fn sqlite() -> Option<(Arc<dyn Catalog>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    Some((Arc::new(ferry::catalog::SqlCatalog::open(&url).await.unwrap()), dir))
}

async fn pg() -> Option<(Arc<dyn Catalog>, TestDatabase)> {
    let database = TestDatabase::create().await?;
    Some((Arc::new(ferry::catalog::SqlCatalog::open(&database.url).await.unwrap()), database))
}

conformance!(on_sqlite, sqlite());
conformance!(on_postgres, pg());
