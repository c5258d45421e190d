//! Edits on either side: a pull never replaces a local file the server never had (changed
//! here, or there before the first pull) unless told to, and a push of a file edited since
//! it was last pushed or pulled updates the server's copy, while a change someone else made
//! there stays a conflict.

use serde_json::json;

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::push_pull::{SyncCli, write_tree};
use crate::sync_proxy::spawn_behind_proxy;

/// The content the volume holds at `path` now.
async fn server_holds(cam: &DeviceClient<'_>, path: &str) -> Option<String> {
    let (items, _) = cam.feed_from(String::new(), 1000).await;
    let item = items.into_iter().rev().find(|i| i["media_path"] == path)?;
    (item["is_deleted"] != true).then(|| item["file_hash"].as_str().unwrap().to_owned())
}

fn read(dir: &tempfile::TempDir, rel: &str) -> Vec<u8> {
    std::fs::read(dir.path().join(rel)).unwrap()
}

#[tokio::test]
async fn a_pull_keeps_what_was_changed_here_and_replaces_only_what_it_left_alone() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let laptop = SyncCli::new(&proxy.address, &cam);
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &[("a.txt", b"a1".to_vec()), ("b.txt", b"b1".to_vec()), ("c.txt", b"c1".to_vec())]);
    laptop.ok("push", source.path(), &[]).await;

    // a folder that already holds a c.txt of its own
    let mirror = SyncCli::new(&proxy.address, &cam);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("c.txt"), b"mine, from before").unwrap();
    // and what an interrupted pull left of a content the server no longer has
    let partials = target.path().join(".ferry-partial");
    std::fs::create_dir(&partials).unwrap();
    std::fs::write(partials.join(format!("{}-9", sha256_hex(b"gone now"))), b"gone").unwrap();
    let first = mirror.ended("pull", target.path(), &[], 1).await;
    assert_eq!((&first["files_downloaded"], &first["conflicts"]), (&json!(2), &json!(1)), "{first}");
    assert_eq!(read(&target, "c.txt"), b"mine, from before", "a file the pull did not write is kept");
    assert!(!partials.exists(), "a stale partial download is cleared");

    // an edit here, nothing new on the server: the edit stays, waiting to be pushed (no conflict)
    std::fs::write(target.path().join("a.txt"), b"edited in the mirror").unwrap();
    let second = mirror.ended("pull", target.path(), &[], 1).await;
    let counts = (&second["files_downloaded"], &second["files_ahead"], &second["conflicts"]);
    assert_eq!(counts, (&json!(0), &json!(1), &json!(1)), "{second}");
    assert_eq!(read(&target, "a.txt"), b"edited in the mirror");

    // the laptop edits b.txt and pushes: its own earlier copy is updated, no conflict
    std::fs::write(source.path().join("b.txt"), b"b2, edited on the laptop").unwrap();
    let pushed = laptop.ok("push", source.path(), &[]).await;
    assert_eq!((&pushed["files_updated"], &pushed["conflicts"]), (&json!(1), &json!(0)), "{pushed}");
    assert_eq!(server_holds(&cam, "/b.txt").await, Some(sha256_hex(b"b2, edited on the laptop")));

    // the mirror's b.txt is as the pull left it: replaced; its edited a.txt is not
    let third = mirror.ended("pull", target.path(), &[], 1).await;
    let counts = (&third["files_downloaded"], &third["files_ahead"], &third["conflicts"]);
    assert_eq!(counts, (&json!(1), &json!(1), &json!(1)), "{third}");
    assert_eq!(read(&target, "b.txt"), b"b2, edited on the laptop");
    assert_eq!(read(&target, "a.txt"), b"edited in the mirror");

    // asked to, the pull replaces both
    let forced = mirror.ok("pull", target.path(), &["--overwrite"]).await;
    assert_eq!((&forced["files_downloaded"], &forced["conflicts"]), (&json!(2), &json!(0)), "{forced}");
    assert_eq!((read(&target, "a.txt"), read(&target, "c.txt")), (b"a1".to_vec(), b"c1".to_vec()));
    let settled = mirror.ok("pull", target.path(), &[]).await;
    assert_eq!((&settled["files_downloaded"], &settled["conflicts"]), (&json!(0), &json!(0)), "{settled}");
}

#[tokio::test]
async fn a_push_updates_its_own_copy_but_not_one_someone_else_changed() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let laptop = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("doc.txt", b"v1".to_vec())]);
    laptop.ok("push", dir.path(), &[]).await;

    std::fs::write(dir.path().join("doc.txt"), b"v2, edited here").unwrap();
    let dry = laptop.ok("push", dir.path(), &["--dry-run"]).await;
    assert_eq!((&dry["files_updated"], &dry["conflicts"]), (&json!(1), &json!(0)), "{dry}");
    let edited = laptop.ok("push", dir.path(), &[]).await;
    assert_eq!((&edited["files_updated"], &edited["conflicts"]), (&json!(1), &json!(0)), "{edited}");
    assert_eq!(server_holds(&cam, "/doc.txt").await, Some(sha256_hex(b"v2, edited here")));

    // another client of the volume replaces it; the laptop's next edit is a conflict
    let other = tempfile::tempdir().unwrap();
    write_tree(other.path(), &[("doc.txt", b"theirs".to_vec())]);
    SyncCli::new(&proxy.address, &cam).ok("push", other.path(), &["--on-conflict", "overwrite"]).await;
    std::fs::write(dir.path().join("doc.txt"), b"v3, edited here").unwrap();
    let refused = laptop.ended("push", dir.path(), &[], 1).await;
    assert_eq!((&refused["files_updated"], &refused["conflicts"]), (&json!(0), &json!(1)), "{refused}");
    assert_eq!(server_holds(&cam, "/doc.txt").await, Some(sha256_hex(b"theirs")), "their change stays");
}

#[tokio::test]
async fn a_new_file_under_a_pushed_name_is_a_conflict_not_an_update() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let laptop = SyncCli::new(&proxy.address, &cam);
    let card = tempfile::tempdir().unwrap();
    write_tree(card.path(), &[("IMG_0001.JPG", b"last summer".to_vec())]);
    laptop.ok("push", card.path(), &[]).await;

    // the card is formatted and the camera numbers its next photo the same
    std::fs::remove_file(card.path().join("IMG_0001.JPG")).unwrap();
    std::fs::write(card.path().join("IMG_0001.JPG"), b"this winter").unwrap();
    let ran = laptop.run("push", card.path(), &[]).await;
    assert_eq!(ran.code, 1, "the new photo is not on the server: {ran:?}");
    assert!(ran.stdout.contains("0 updated, 1 conflict"), "{ran:?}");
    assert!(ran.stderr.contains("the file here is another file now"), "the conflict says why: {ran:?}");
    assert_eq!(server_holds(&cam, "/IMG_0001.JPG").await, Some(sha256_hex(b"last summer")), "last summer's stays");
}

#[tokio::test]
async fn a_pull_knows_each_path_of_a_shared_content_and_state_from_before_the_upgrade() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let laptop = SyncCli::new(&proxy.address, &cam);
    let source = tempfile::tempdir().unwrap();
    write_tree(
        source.path(),
        &[("a/x.txt", b"same".to_vec()), ("b/x.txt", b"same".to_vec()), ("c.txt", b"c1".to_vec())],
    );
    laptop.ok("push", source.path(), &[]).await;
    let mirror = SyncCli::new(&proxy.address, &cam);
    let target = tempfile::tempdir().unwrap();
    assert_eq!(mirror.ok("pull", target.path(), &[]).await["files_downloaded"], 3);

    // the laptop changes the second path of the shared content
    std::fs::write(source.path().join("b/x.txt"), b"b changed").unwrap();
    laptop.ok("push", source.path(), &[]).await;
    let pulled = mirror.ok("pull", target.path(), &[]).await;
    assert_eq!((&pulled["files_downloaded"], &pulled["conflicts"]), (&json!(1), &json!(0)), "{pulled}");
    assert_eq!((read(&target, "b/x.txt"), read(&target, "a/x.txt")), (b"b changed".to_vec(), b"same".to_vec()));

    // state as a version before `synced` wrote it, and a change on the server since
    let hashes = files_under(mirror.state.path()).into_iter().find(|p| p.ends_with("hashes.json")).unwrap();
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&hashes).unwrap()).unwrap();
    for entry in state["files"].as_object_mut().unwrap().values_mut() {
        assert!(entry.as_object_mut().unwrap().remove("synced").is_some(), "{entry}");
    }
    std::fs::write(&hashes, state.to_string()).unwrap();
    std::fs::write(source.path().join("c.txt"), b"c2").unwrap();
    laptop.ok("push", source.path(), &[]).await;
    let upgraded = mirror.ok("pull", target.path(), &[]).await;
    assert_eq!((&upgraded["files_downloaded"], &upgraded["conflicts"]), (&json!(1), &json!(0)), "{upgraded}");
    assert_eq!(read(&target, "c.txt"), b"c2");
}

#[tokio::test]
async fn an_out_of_date_copy_never_undoes_a_newer_change_even_when_told_to_overwrite() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (laptop, desktop) = (SyncCli::new(&proxy.address, &cam), SyncCli::new(&proxy.address, &cam));
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tree(here.path(), &[("doc.txt", b"v1".to_vec())]);
    laptop.ok("push", here.path(), &[]).await;
    desktop.ok("pull", there.path(), &[]).await;

    // the laptop edits and pushes; the desktop's copy, untouched, is now the old one
    std::fs::write(here.path().join("doc.txt"), b"v2 from the laptop").unwrap();
    assert_eq!(laptop.ok("push", here.path(), &[]).await["files_updated"], 1);
    for policy in ["skip", "overwrite", "rename"] {
        let pushed = desktop.ok("push", there.path(), &["--on-conflict", policy]).await;
        assert_eq!((&pushed["files_behind"], &pushed["conflicts"]), (&json!(1), &json!(0)), "{policy}: {pushed}");
    }
    assert_eq!(server_holds(&cam, "/doc.txt").await, Some(sha256_hex(b"v2 from the laptop")), "the edit stays");
    assert_eq!(server_holds(&cam, "/doc (1).txt").await, None, "no copy of the old one beside it");
    desktop.ok("pull", there.path(), &[]).await;
    assert_eq!(read(&there, "doc.txt"), b"v2 from the laptop");

    // nor brings back what was deleted on the server since
    let (items, _) = cam.feed_from(String::new(), 1000).await;
    let id = items.iter().rev().find(|i| i["media_path"] == "/doc.txt").unwrap()["media_id"].as_i64().unwrap();
    let url = format!("{}?device_session_key={}", cam.url(&format!("media/{id}")), cam.key);
    assert_eq!(app.client.delete(url).send().await.unwrap().status(), 200);
    let pushed = desktop.ok("push", there.path(), &["--on-conflict", "overwrite"]).await;
    assert_eq!(pushed["files_behind"], 1, "{pushed}");
    assert_eq!(server_holds(&cam, "/doc.txt").await, None, "still deleted");
}

/// Writes `bytes` over the file at `rel` and gives it back its mtime, as some editors and copy
/// tools do: size and mtime alone then say nothing changed.
fn edit_keeping_size_and_mtime(dir: &tempfile::TempDir, rel: &str, bytes: &[u8]) {
    let path = dir.path().join(rel);
    let before = std::fs::metadata(&path).unwrap();
    assert_eq!(before.len(), bytes.len() as u64, "the edit keeps the size");
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(before.modified().unwrap()).unwrap();
}

#[tokio::test]
async fn an_edit_that_puts_the_mtime_back_is_still_an_edit() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let (laptop, desktop) = (SyncCli::new(&proxy.address, &cam), SyncCli::new(&proxy.address, &cam));
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = [("doc.txt", b"v1".to_vec()), ("memo.txt", b"m1".to_vec()), ("note.txt", b"n1".to_vec())];
    write_tree(here.path(), &files);
    laptop.ok("push", here.path(), &[]).await;
    desktop.ok("pull", there.path(), &[]).await;
    std::fs::write(here.path().join("doc.txt"), b"v2 from the laptop").unwrap();
    std::fs::write(here.path().join("memo.txt"), b"m2 from the laptop").unwrap();
    assert_eq!(laptop.ok("push", here.path(), &[]).await["files_updated"], 2);

    // the desktop edits its copies too, in a way only their bytes show: pushed, the edited
    // memo is a conflict (the untouched doc is behind); pulled, the edited doc is kept
    edit_keeping_size_and_mtime(&there, "memo.txt", b"m9");
    let pushed = desktop.ended("push", there.path(), &[], 1).await;
    assert_eq!((&pushed["files_behind"], &pushed["conflicts"]), (&json!(1), &json!(1)), "{pushed}");
    assert_eq!(pushed["files_hashed"], 1, "only the edited file is read: {pushed}");
    let again = desktop.ended("push", there.path(), &[], 1).await;
    assert_eq!((&again["files_hashed"], &again["files_behind"]), (&json!(0), &json!(1)), "{again}");
    edit_keeping_size_and_mtime(&there, "doc.txt", b"v9");
    let pulled = desktop.ended("pull", there.path(), &[], 1).await;
    assert_eq!((&pulled["files_downloaded"], &pulled["conflicts"]), (&json!(0), &json!(2)), "{pulled}");
    assert_eq!((read(&there, "doc.txt"), read(&there, "memo.txt")), (b"v9".to_vec(), b"m9".to_vec()), "kept");
    assert_eq!(server_holds(&cam, "/doc.txt").await, Some(sha256_hex(b"v2 from the laptop")), "and so is the laptop's");
    assert_eq!(server_holds(&cam, "/memo.txt").await, Some(sha256_hex(b"m2 from the laptop")));

    // nor is such an edit deleted with the server's copy
    let (items, _) = cam.feed_from(String::new(), 1000).await;
    let id = items.iter().rev().find(|i| i["media_path"] == "/note.txt").unwrap()["media_id"].as_i64().unwrap();
    let url = format!("{}?device_session_key={}", cam.url(&format!("media/{id}")), cam.key);
    assert_eq!(app.client.delete(url).send().await.unwrap().status(), 200);
    edit_keeping_size_and_mtime(&there, "note.txt", b"n9");
    let pulled = desktop.ended("pull", there.path(), &["--delete"], 1).await;
    assert_eq!(pulled["files_deleted"], 0, "{pulled}");
    assert_eq!(read(&there, "note.txt"), b"n9");
}
