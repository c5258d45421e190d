//! Device multipart parts written in place (the local disk writes every part into one
//! staging file at its offset; S3 keeps a part per object): a failed re-send never reaches
//! the file unnoticed, and a file a completion already linked to a blob is never written
//! again.

use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::device_multipart::{CHUNK, FILE_HASH, SIZE, assert_stored, file_and_plan, received, send_missing};
use crate::helpers::*;

fn completion(upload_id: &Value, parts: &[Value]) -> Value {
    json!({"file_size": SIZE, "file_hash": FILE_HASH, "s3_bucket_id": 1, "upload_id": upload_id, "part_list": parts})
}

#[tokio::test]
async fn a_part_sent_again_with_wrong_bytes_is_never_completed_from() {
    let app = spawn_app().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let start = || json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan});
    let started = cam.post_ok("multipart", start()).await;
    let parts = send_missing(&app, &data, &started).await;

    // part 2 again, with the right size and the wrong bytes: refused
    let url = started["signed_url_list"][1]["url"].as_str().unwrap();
    let wrong = app.client.put(url).body(vec![7u8; CHUNK]).send().await.unwrap();
    expect_error(wrong, 400, "hash_mismatch").await;

    let again = cam.post_ok("multipart", start()).await;
    let in_place = app.state.store.writes_parts_in_place();
    if in_place {
        // its region may hold some of those bytes: the part is no longer held, and a
        // completion says so instead of storing them
        assert_eq!(received(&again), [true, false, true, true, true, true]);
        let done = cam.post("multipart_complete", completion(&again["upload_id"], &parts)).await;
        expect_error(done, 400, "missing_part").await;
    } else {
        assert_eq!(received(&again), [true; 6], "the earlier copy of the part stays");
    }
    let parts = send_missing(&app, &data, &again).await;
    let done = cam.post("multipart_complete", completion(&again["upload_id"], &parts)).await;
    assert_eq!(done.status(), 201);
    assert_stored(&app, &data);
    assert_eq!(app.upload_staging_files().len(), 0);
}

#[tokio::test]
async fn a_file_already_linked_to_a_blob_is_never_written_again() {
    let app = spawn_app().await;
    if !app.state.store.writes_parts_in_place() {
        return; // parts are objects of their own there: nothing is ever linked
    }
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let start = || json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan});
    let started = cam.post_ok("multipart", start()).await;
    send_missing(&app, &data, &started).await;
    // what a completion that linked the file to its blob and then failed leaves behind (a
    // catalog outage at that moment): the staging file has a second name
    let staging = app.upload_staging_files();
    assert_eq!(staging.len(), 1, "one file holds every part");
    let linked = app.data_dir.path().join("linked-by-a-failed-completion");
    std::fs::hard_link(&staging[0], &linked).unwrap();

    // three parts at once: 3 and 5 right, 2 wrong. Whichever comes first starts a new file,
    // once; the other two write into it
    let put = |num: usize, body: Vec<u8>| {
        let url = started["signed_url_list"][num - 1]["url"].as_str().unwrap().to_owned();
        let request = app.client.put(url).body(body).send();
        async move { request.await.unwrap().status() }
    };
    let chunk = |num: usize| data.chunks(CHUNK).nth(num - 1).unwrap().to_vec();
    let (third, fifth, second) = tokio::join!(put(3, chunk(3)), put(5, chunk(5)), put(2, vec![7u8; CHUNK]));
    assert_eq!((third.as_u16(), fifth.as_u16(), second.as_u16()), (200, 200, 400));
    assert!(std::fs::read(&linked).unwrap() == data, "the linked bytes did not change");
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(&linked).unwrap()), 1, "a new file");

    // the upload goes on in its new file with the two parts sent since, and completes
    let again = cam.post_ok("multipart", start()).await;
    assert_eq!(again["upload_id"], started["upload_id"]);
    assert_eq!(received(&again), [false, false, true, false, true, false]);
    let parts = send_missing(&app, &data, &again).await;
    let done = cam.post("multipart_complete", completion(&again["upload_id"], &parts)).await;
    assert_eq!(done.status(), 201);
    assert_stored(&app, &data);
    assert!(std::fs::read(&linked).unwrap() == data);
    assert_eq!(app.upload_staging_files().len(), 0);
}

#[tokio::test]
async fn a_completion_racing_the_parts_it_follows_stores_the_file_at_its_address() {
    // the whole-file hash follows the parts as they are recorded; a completion sent the
    // moment the last part is answered finds it anywhere from the start to the end, and
    // parts recorded out of order, or sent again, only move where it can get to
    for round in 0..4 {
        let app = spawn_app().await;
        let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
        let (data, plan) = file_and_plan();
        let start = || json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan});
        let started = cam.post_ok("multipart", start()).await;
        let put = |num: usize| {
            let url = started["signed_url_list"][num - 1]["url"].as_str().unwrap().to_owned();
            let request = app.client.put(url).body(data.chunks(CHUNK).nth(num - 1).unwrap().to_vec()).send();
            async move {
                let answer = request.await.unwrap();
                assert_eq!(answer.status(), 200, "part {num}");
                json!({"part_num": num, "etag": answer.headers()["etag"].to_str().unwrap()})
            }
        };
        let mut parts = match round {
            // the last parts first: nothing is followed until part 1 is there
            0 => vec![put(6).await, put(5).await, put(4).await, put(3).await, put(2).await, put(1).await],
            // every part at once
            1 => {
                let (a, b, c, d, e, f) = tokio::join!(put(1), put(2), put(3), put(4), put(5), put(6));
                vec![a, b, c, d, e, f]
            }
            // in order, then parts 1 and 4 sent again after the hash got past them
            _ => {
                let mut sent = Vec::new();
                for num in 1..=6 {
                    sent.push(put(num).await);
                }
                tokio::join!(put(1), put(4));
                sent
            }
        };
        parts.sort_by_key(|p| p["part_num"].as_u64());
        let done = cam.post("multipart_complete", completion(&started["upload_id"], &parts)).await;
        assert_eq!(done.status(), 201, "round {round}: {:?}", done.text().await);
        assert_stored(&app, &data);
        let created = cam.create("/big.bin", FILE_HASH, SIZE).await;
        assert_eq!(created.status(), 200, "round {round}: the file is named by its device hash");
    }
}
