//! `ferry push` and `ferry pull` (issue 26): the real binary as the client, a real server on
//! loopback behind a counting proxy (so every request the client makes is seen).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::sync_proxy::{Proxy, Seen, spawn_behind_proxy};

/// The real client for one device and grant, with its own state directory.
pub struct SyncCli {
    pub server: String,
    pub key: String,
    pub grant: String,
    pub state: tempfile::TempDir,
}

/// What a run of the client printed.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn json(&self) -> Value {
        assert_eq!(self.stdout.trim_end().lines().count(), 1, "one JSON line on stdout: {self:?}");
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl SyncCli {
    pub fn new(server: &str, cam: &DeviceClient<'_>) -> Self {
        Self {
            server: server.to_owned(),
            key: cam.key.clone(),
            grant: cam.grant.clone(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// `ferry COMMAND DIR --server … --device-key … --grant … --state-dir … EXTRA`.
    pub fn command(&self, command: &str, dir: &Path, extra: &[&str]) -> std::process::Command {
        let mut cmd = ferry_bin();
        cmd.arg(command).arg(dir).args(["--server", &self.server, "--device-key", &self.key, "--grant", &self.grant]);
        cmd.arg("--state-dir").arg(self.state.path()).args(extra);
        cmd
    }

    /// Starts it with its output piped, killed when dropped (for a run the test stops).
    pub fn spawn(&self, command: &str, dir: &Path, extra: &[&str]) -> tokio::process::Child {
        tokio::process::Command::from(self.command(command, dir, extra))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    pub async fn run(&self, command: &str, dir: &Path, extra: &[&str]) -> Ran {
        let out = tokio::process::Command::from(self.command(command, dir, extra)).output().await.unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `--json` and expects exit 0; the summary.
    pub async fn ok(&self, command: &str, dir: &Path, extra: &[&str]) -> Value {
        self.ended(command, dir, extra, 0).await
    }

    /// Runs with `--json` and expects exit `code` (1: a failure or a conflict left); the summary.
    pub async fn ended(&self, command: &str, dir: &Path, extra: &[&str], code: i32) -> Value {
        let ran = self.run(command, dir, &[extra, &["--json"]].concat()).await;
        assert_eq!(ran.code, code, "{command}: {ran:?}");
        ran.json()
    }
}

/// A fixed mtime with whole milliseconds (what the server keeps), distinct per file.
fn mtime_of(n: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123 + n * 1_001)
}

/// Writes `files` (relative path → bytes) under `root` with known mtimes.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (n, (rel, bytes)) in files.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime_of(n as u64)).unwrap();
    }
}

/// Every file under `root` (hidden `.ferry-partial` included, so leftovers show): path → (bytes, mtime).
fn read_tree(root: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    files_under(root)
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            (rel, (std::fs::read(&path).unwrap(), mtime))
        })
        .collect()
}

fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("Fotos/Été 2024/plage à midi.jpg", bytes_of(300_000, 1)),
        ("deep/er/and deeper/日本語 ファイル.bin", bytes_of(70_000, 2)),
        ("big/clip 40 MiB.mov", bytes_of(40 << 20, 3)),
    ]
}

const SUMMARY_KEYS: [&str; 10] = [
    "bytes_deduplicated",
    "bytes_sent",
    "conflicts",
    "failures",
    "files_behind",
    "files_hashed",
    "files_present",
    "files_seen",
    "files_updated",
    "files_uploaded",
];

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

fn ops(seen: &[Seen]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in seen {
        *counts.entry(format!("{} {}", s.method, s.op())).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_pushed_tree_pulls_back_identical_and_a_second_push_sends_nothing() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), &tree());
    let total: u64 = tree().iter().map(|(_, b)| b.len() as u64).sum();

    let first = cli.ok("push", source.path(), &["--to", "/trip"]).await;
    let mut expected = SUMMARY_KEYS.to_vec();
    expected.sort();
    assert_eq!(keys(&first), expected, "exactly the keys the issue lists: {first}");
    assert_eq!(first["files_seen"], 5);
    assert_eq!(first["files_hashed"], 5);
    assert_eq!(first["files_uploaded"], 5);
    assert_eq!(first["bytes_sent"], total);
    assert_eq!(first["failures"], json!([]));
    let seen = proxy.take();
    assert_eq!(Proxy::count(&seen, "multipart"), 1, "the 40 MiB file goes in parts: {:?}", ops(&seen));
    assert_eq!(seen.iter().filter(|s| s.part().is_some()).count(), 5, "40 MiB is 5 parts of 8 MiB");
    assert_eq!(Proxy::count(&seen, "media"), 5);

    let second = cli.ok("push", source.path(), &["--to", "/trip"]).await;
    assert_eq!(
        (&second["files_hashed"], &second["files_uploaded"], &second["bytes_sent"], &second["files_present"]),
        (&json!(0), &json!(0), &json!(0), &json!(5)),
        "nothing hashed again, nothing sent: {second}"
    );
    assert_eq!(second["bytes_deduplicated"], total);
    let seen = proxy.take();
    assert_eq!(Proxy::count(&seen, "upload"), 1, "one batch for 5 files: {:?}", ops(&seen));
    assert!(seen.iter().all(|s| s.method == "POST" && s.bytes < 100_000), "no file bytes: {:?}", ops(&seen));
    assert_eq!(Proxy::count(&seen, "media"), 0, "files already in place are not created again");

    let target = tempfile::tempdir().unwrap();
    let pulled = cli.ok("pull", target.path(), &["--from", "/trip"]).await;
    let mut pull_keys = keys(&pulled);
    pull_keys.sort();
    assert_eq!(
        pull_keys,
        ["bytes_received", "conflicts", "failures", "files_ahead", "files_deleted", "files_downloaded", "files_seen"]
    );
    assert_eq!((&pulled["files_seen"], &pulled["files_downloaded"]), (&json!(5), &json!(5)));
    assert_eq!(pulled["bytes_received"], total);
    let (mut want, got) = (read_tree(source.path()), read_tree(target.path()));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "same files, no leftovers");
    for (rel, (bytes, mtime)) in got {
        let (want_bytes, want_mtime) = want.remove(&rel).unwrap();
        assert!(bytes == want_bytes, "{rel}: identical bytes");
        assert_eq!(mtime, want_mtime, "{rel}: same mtime");
    }
    let again = cli.ok("pull", target.path(), &["--from", "/trip"]).await;
    assert_eq!((&again["files_downloaded"], &again["bytes_received"]), (&json!(0), &json!(0)));
}

#[tokio::test]
async fn an_unreachable_server_or_a_wrong_key_exits_2_saying_so() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a.txt", b"a".to_vec())]);

    let mut wrong = SyncCli::new(&proxy.address, &cam);
    wrong.key = "fry_d_not-a-key".into();
    for command in ["push", "pull"] {
        let ran = wrong.run(command, dir.path(), &["--json"]).await;
        assert_eq!(ran.code, 2, "{ran:?}");
        assert!(ran.stderr.contains("refused the device key"), "{ran:?}");
        assert!(ran.stdout.is_empty(), "no summary for a run that never started: {ran:?}");
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let ran = SyncCli::new(&nowhere, &cam).run("push", dir.path(), &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains(&format!("cannot reach the Ferry server at {nowhere}")), "{ran:?}");

    // a server address with a path: Ferry's 404 for an unknown route says which flag to check
    let mirror = dir.path().join("not yet");
    let ran = SyncCli::new(&format!("{}/ferry", app.address), &cam).run("pull", &mirror, &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("is not a Ferry device API (HTTP 404); check --server"), "{ran:?}");
    assert!(!mirror.exists(), "a pull that never started creates no folder");

    let mut other_grant = SyncCli::new(&proxy.address, &cam);
    other_grant.grant = "999".into();
    let ran = other_grant.run("push", dir.path(), &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("no media grant 999"), "{ran:?}");

    let ran = SyncCli::new(&proxy.address, &cam).run("push", dir.path(), &["--to", "relative"]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(app.blob_files().is_empty());
}

#[tokio::test]
async fn dry_run_reports_what_would_be_sent_and_sends_no_bytes() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let held = cam.upload(b"already here").await;
    assert_eq!(cam.create("/x/held.txt", &held, 12).await.status(), 200);
    proxy.take();
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("held.txt", b"already here".to_vec()), ("new.bin", bytes_of(20 << 20, 9))]);

    let cli = SyncCli::new(&proxy.address, &cam);
    let summary = cli.ok("push", dir.path(), &["--to", "/x", "--dry-run"]).await;
    assert_eq!((&summary["files_uploaded"], &summary["files_present"]), (&json!(1), &json!(1)), "{summary}");
    assert_eq!(summary["bytes_sent"], 0);
    let seen = proxy.take();
    let asked: Vec<String> = ops(&seen).into_keys().collect();
    assert_eq!(asked, ["POST /device/1/media_grant", "POST media_list", "POST upload"], "questions only");
    assert!(seen.iter().all(|s| s.bytes < 10_000), "no file bytes: {seen:?}");
    assert_eq!(app.blob_files().len(), 1, "only what was there before");
}

#[tokio::test]
async fn each_conflict_policy() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let theirs = cam.upload(b"their version").await;
    assert_eq!(cam.create("/doc.txt", &theirs, 13).await.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("doc.txt", b"my version".to_vec())]);
    let mine = sha256_hex(b"my version");
    let at = |path: &str| {
        let cam = &cam;
        let path = path.to_owned();
        async move {
            let (items, _) = cam.feed_from(String::new(), 1000).await;
            items
                .into_iter()
                .rev()
                .find(|i| i["media_path"] == path)
                .map(|i| i["file_hash"].as_str().unwrap().to_owned())
        }
    };

    let cli = SyncCli::new(&proxy.address, &cam);
    // a file left off the server is not "all done": exit 1
    let skipped = cli.ended("push", dir.path(), &[], 1).await;
    assert_eq!((&skipped["conflicts"], &skipped["failures"]), (&json!(1), &json!([])), "{skipped}");
    assert_eq!((&skipped["files_uploaded"], &skipped["bytes_sent"]), (&json!(0), &json!(0)), "not sent: {skipped}");
    assert_eq!(at("/doc.txt").await.as_deref(), Some(theirs.as_str()), "skip leaves theirs");

    let renamed = cli.ok("push", dir.path(), &["--on-conflict", "rename"]).await;
    assert_eq!(renamed["conflicts"], 1);
    assert_eq!(at("/doc (1).txt").await.as_deref(), Some(mine.as_str()), "ours beside theirs");
    assert_eq!(at("/doc.txt").await.as_deref(), Some(theirs.as_str()));
    let again = cli.ok("push", dir.path(), &["--on-conflict", "rename"]).await;
    assert_eq!(again["failures"], json!([]), "renaming again finds its earlier copy: {again}");
    assert!(at("/doc (2).txt").await.is_none());

    let overwritten = cli.ok("push", dir.path(), &["--on-conflict", "overwrite"]).await;
    assert_eq!(overwritten["conflicts"], 1);
    assert_eq!(at("/doc.txt").await.as_deref(), Some(mine.as_str()), "overwritten");
    let updates: Vec<Seen> = proxy.take().into_iter().filter(|s| s.op().starts_with("media/")).collect();
    assert_eq!(updates.len(), 1, "one guarded update");
    assert_eq!(updates[0].status, 200);
}

#[tokio::test]
async fn an_incremental_pull_follows_changes_and_deletes() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let source = tempfile::tempdir().unwrap();
    write_tree(
        source.path(),
        &[("keep.txt", b"keep".to_vec()), ("gone.txt", b"gone".to_vec()), ("edit.txt", b"v1".to_vec())],
    );
    cli.ok("push", source.path(), &[]).await;
    let target = tempfile::tempdir().unwrap();
    assert_eq!(cli.ok("pull", target.path(), &["--delete"]).await["files_downloaded"], 3);

    // remote changes: one deleted, one changed, one added (by another client of the volume)
    let (items, _) = cam.feed_from(String::new(), 1000).await;
    let gone = items.iter().find(|i| i["media_path"] == "/gone.txt").unwrap()["media_id"].as_i64().unwrap();
    let deleted = app.client.delete(format!("{}?device_session_key={}", cam.url(&format!("media/{gone}")), cam.key));
    assert_eq!(deleted.send().await.unwrap().status(), 200);
    let other = tempfile::tempdir().unwrap();
    write_tree(other.path(), &[("edit.txt", b"v2, longer".to_vec()), ("new.txt", b"new".to_vec())]);
    let other_cli = SyncCli::new(&proxy.address, &cam);
    other_cli.ok("push", other.path(), &["--on-conflict", "overwrite"]).await;
    proxy.take();

    let pulled = cli.ok("pull", target.path(), &["--delete"]).await;
    assert_eq!(
        (&pulled["files_seen"], &pulled["files_downloaded"], &pulled["files_deleted"]),
        (&json!(3), &json!(2), &json!(1)),
        "{pulled}"
    );
    assert_eq!(pulled["bytes_received"], 13, "only the changed and the new file");
    let seen = proxy.take();
    let feed: Vec<&Seen> = seen.iter().filter(|s| s.op() == "media_list").collect();
    assert_eq!(feed.len(), 1, "one page of changes");
    assert_eq!(std::fs::read(target.path().join("edit.txt")).unwrap(), b"v2, longer");
    assert_eq!(std::fs::read(target.path().join("new.txt")).unwrap(), b"new");
    assert!(!target.path().join("gone.txt").exists());
    assert_eq!(std::fs::read(target.path().join("keep.txt")).unwrap(), b"keep");

    // without --delete a deleted item's file stays; a locally changed file is never deleted
    std::fs::write(target.path().join("keep.txt"), b"changed here").unwrap();
    let (items, _) = cam.feed_from(String::new(), 1000).await;
    let keep = items.iter().find(|i| i["media_path"] == "/keep.txt").unwrap()["media_id"].as_i64().unwrap();
    let deleted = app.client.delete(format!("{}?device_session_key={}", cam.url(&format!("media/{keep}")), cam.key));
    assert_eq!(deleted.send().await.unwrap().status(), 200);
    assert_eq!(cli.ok("pull", target.path(), &["--delete"]).await["files_deleted"], 0);
    assert!(target.path().join("keep.txt").exists());
}

#[tokio::test]
async fn watch_pushes_new_files_once_they_settle() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("first.txt", b"first".to_vec())]);
    let mut child =
        tokio::process::Command::from(cli.command("push", dir.path(), &["--watch", "--settle", "300ms", "--json"]))
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
    let mut found = Vec::new();
    for round in 0..100 {
        if round == 10 {
            std::fs::write(dir.path().join("later.txt"), b"dropped in later").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (items, _) = cam.feed_from(String::new(), 1000).await;
        found = items.iter().map(|i| i["media_path"].as_str().unwrap().to_owned()).collect();
        if found.contains(&"/later.txt".to_owned()) {
            break;
        }
    }
    child.kill().await.unwrap();
    assert_eq!(found, ["/first.txt", "/later.txt"]);
}
