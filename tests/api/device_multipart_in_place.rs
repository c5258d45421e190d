//! Device multipart parts written in place (the local disk writes every part into one
//! staging file at its offset; S3 keeps a part per object): a failed re-send never reaches
//! the file unnoticed, and a file a completion already linked to a blob is never written
//! again.

use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::device_multipart::{
    CHUNK, FILE_HASH, SIZE, ServedDevice, assert_stored, file_and_plan, received, send_missing,
};
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

/// Puts part `num` of `started` (the test file's chunk); its completion entry.
async fn put_part(app: &TestApp, data: &[u8], started: &Value, num: usize) -> Value {
    let url = started["signed_url_list"][num - 1]["url"].as_str().unwrap();
    let answer = app.client.put(url).body(data.chunks(CHUNK).nth(num - 1).unwrap().to_vec()).send().await.unwrap();
    assert_eq!(answer.status(), 200, "part {num}");
    json!({"part_num": num, "etag": answer.headers()["etag"].to_str().unwrap()})
}

#[tokio::test]
async fn a_completion_racing_the_parts_it_follows_stores_the_file_at_its_address() {
    // the whole-file hash follows the parts as they are recorded; a completion sent the
    // moment the last part is answered finds it anywhere from the start to the end, and
    // parts recorded out of order, or sent again, only move where it can get to
    for round in ["last parts first", "all at once", "in order, then two again"] {
        let app = spawn_app().await;
        if !app.state.store.writes_parts_in_place() {
            return; // a part per object there: no file whose hash could follow its parts
        }
        let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
        let (data, plan) = file_and_plan();
        let started =
            cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
        let put = |num: usize| put_part(&app, &data, &started, num);
        let mut parts = Vec::new();
        match round {
            "last parts first" => {
                for num in (1..=6).rev() {
                    parts.push(put(num).await);
                }
            }
            "all at once" => {
                let (a, b, c, d, e, f) = tokio::join!(put(1), put(2), put(3), put(4), put(5), put(6));
                parts = vec![a, b, c, d, e, f];
            }
            _ => {
                for num in 1..=6 {
                    parts.push(put(num).await);
                }
                tokio::join!(put(1), put(4));
            }
        }
        parts.sort_by_key(|p| p["part_num"].as_u64());
        let done = cam.post("multipart_complete", completion(&started["upload_id"], &parts)).await;
        assert_eq!(done.status(), 201, "{round}: {:?}", done.text().await);
        assert_stored(&app, &data);
    }
}

#[tokio::test]
async fn a_part_whose_region_lost_its_bytes_is_refused_at_completion() {
    // the state a power loss can leave: the catalog rolled back forgetting a part whose wrong
    // re-send had reached the disk, so part 2's record stands over other bytes. The restarted
    // server did not write that part, so nothing vouches for its region but its record
    for sent_after_restart in [0, 1] {
        let mut served = ServedDevice::start();
        let (data, plan) = file_and_plan();
        let body = json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan});
        let started: Value = served.post("multipart", body).await.json().await.unwrap();
        let mut parts = Vec::new();
        for num in 1..=6 - sent_after_restart {
            parts.push(served.put_part(&data, &started, num).await);
        }
        let staging = files_under(&served.data_dir.join("staging/uploads"));
        served.restart(|| {
            let file = std::fs::OpenOptions::new().write(true).open(&staging[0]).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, b"not the bytes of part 2", (CHUNK + 1000) as u64).unwrap();
        });
        if sent_after_restart == 1 {
            // part 6 lets the whole-file hash follow parts 1..6; given the time to get there,
            // it checks part 2's region against the record (not written here) and stops
            parts.push(served.put_part(&data, &started, 6).await);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        // else the completion reads the whole file, each part's region on its own too
        let done = served.post("multipart_complete", completion(&started["upload_id"], &parts)).await;
        let refused = expect_error(done, 400, "hash_mismatch").await;
        assert!(refused["message"].as_str().unwrap().contains("file hash"), "{refused}");
        assert!(files_under(&served.data_dir.join("blobs")).is_empty(), "nothing stored");
    }
}

#[tokio::test]
async fn a_failed_re_send_takes_its_part_out_of_the_hash_that_follows_the_parts() {
    // part 3 sent right, then again with wrong bytes (refused, but they reached its region):
    // the hash that follows the parts must not take that region on the first send's word,
    // or the file would be stored at the address of bytes it never held
    let app = spawn_app().await;
    if !app.state.store.writes_parts_in_place() {
        return; // a part per object there: no file whose hash could follow its parts
    }
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (data, plan) = file_and_plan();
    let started = cam.post_ok("multipart", json!({"file_size": SIZE, "file_hash": FILE_HASH, "part_list": plan})).await;
    let mut parts = Vec::new();
    for num in 2..=6 {
        parts.push(put_part(&app, &data, &started, num).await);
    }
    let url = started["signed_url_list"][2]["url"].as_str().unwrap();
    expect_error(app.client.put(url).body(vec![7u8; CHUNK]).send().await.unwrap(), 400, "hash_mismatch").await;
    parts.insert(0, put_part(&app, &data, &started, 1).await);
    // time for the hash to follow parts 1.. as far as it may (~40 MB)
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    put_part(&app, &data, &started, 3).await;
    let done = cam.post("multipart_complete", completion(&started["upload_id"], &parts)).await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    assert_stored(&app, &data);
}
