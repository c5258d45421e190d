//! `ferry push` at scale and under interruption: a push killed mid-file resumes without
//! re-sending parts, batches hold at most 10,000 files, progress bars only on a terminal.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::device_client::DeviceClient;
use crate::helpers::*;
use crate::push_pull::{SyncCli, write_tree};
use crate::sync_proxy::{Proxy, spawn_behind_proxy};
use ferry::domain::GrantId;

#[tokio::test]
async fn a_push_killed_mid_file_resumes_and_the_server_receives_each_part_once() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (owner, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    let data = bytes_of(40 << 20, 5);
    write_tree(dir.path(), &[("clip.mov", data.clone())]);
    let size = data.len() as u64;
    let hash = ferry::sync_client::content::hash_file(&dir.path().join("clip.mov"), size, &|_| {}).unwrap();
    assert_eq!(hash.parts.len(), 5);

    // parts 1 and 2 go through; 3 and 4 are held mid-body when the client is killed
    proxy.hold_parts_from(3);
    let mut child = tokio::process::Command::from(cli.command("push", dir.path(), &["--concurrency", "2", "--json"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let grant: GrantId = cam.grant.parse().unwrap();
    let catalog = app.catalog();
    let mut upload = None;
    for _ in 0..600 {
        if let Some(open) = catalog.open_device_upload(owner.user_id, grant, &hash.file_hash, size).await.unwrap()
            && catalog.parts(&open.upload_id).await.unwrap().len() == 2
            && proxy.held() == 2
        {
            upload = Some(open);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload = upload.expect("two parts received and two held within a minute");
    child.kill().await.unwrap();
    let held: Vec<u32> = catalog.parts(&upload.upload_id).await.unwrap().iter().map(|p| p.part_num).collect();
    assert_eq!(held, [1, 2], "the server holds the first two parts");
    proxy.release();
    let killed = proxy.take();

    let ran = cli.run("push", dir.path(), &["--concurrency", "2", "--json"]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("resuming clip.mov: 2 of 5 parts already on the server"), "{ran:?}");
    let summary = ran.json();
    assert_eq!((&summary["files_uploaded"], &summary["failures"]), (&json!(1), &json!([])));
    assert_eq!(summary["bytes_sent"], size - 2 * (8 << 20), "parts 3–5 only");
    assert_eq!(summary["files_hashed"], 0, "the hash cache survived the kill");
    let resumed = proxy.take();
    assert_eq!(Proxy::count(&resumed, "multipart"), 1);
    let same_upload = format!("upload={}", upload.upload_id);
    assert!(resumed.iter().filter(|s| s.part().is_some()).all(|s| s.query.contains(&same_upload)), "same upload");

    let mut received: BTreeMap<u32, usize> = BTreeMap::new();
    for seen in killed.iter().chain(&resumed).filter(|s| s.status == 200) {
        if let Some(part) = seen.part() {
            *received.entry(part).or_default() += 1;
        }
    }
    assert_eq!(received, BTreeMap::from([(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]), "each part received once");
    assert!(catalog.upload(&upload.upload_id).await.unwrap().unwrap().completed);
    let blobs = app.blob_files();
    assert_eq!(blobs.len(), 1);
    assert!(std::fs::read(&blobs[0]).unwrap() == data, "the stored file is the local one");
}

#[tokio::test]
async fn ten_thousand_and_one_files_take_two_batches_and_a_second_push_sends_nothing() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10_001u32 {
        let folder = dir.path().join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&folder).unwrap();
        }
        std::fs::write(folder.join(format!("{i}.txt")), format!("file number {i}")).unwrap();
    }

    let first = cli.ok("push", dir.path(), &["--concurrency", "16"]).await;
    assert_eq!((&first["files_uploaded"], &first["failures"]), (&json!(10_001), &json!([])));
    assert_eq!(Proxy::count(&proxy.take(), "upload"), 2, "10,000 + 1");

    let second = cli.ok("push", dir.path(), &["--concurrency", "16"]).await;
    assert_eq!((&second["files_uploaded"], &second["files_present"]), (&json!(0), &json!(10_001)));
    let seen = proxy.take();
    assert_eq!(Proxy::count(&seen, "upload"), 2, "one batch request per 10,000 files");
    assert!(seen.iter().all(|s| s.method == "POST"), "no bytes");
    assert_eq!(Proxy::count(&seen, "media"), 0);
}

/// The command line, quoted for `sh -c`.
fn shell_line(cmd: &std::process::Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    std::iter::once(quote(cmd.get_program())).chain(cmd.get_args().map(quote)).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn progress_bars_render_on_a_terminal_and_not_when_piped() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        tool_missing("the progress bar test", "apt-get install bsdutils (for `script`)");
        return;
    }
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("big.bin", bytes_of(24 << 20, 7)), ("small.txt", b"small".to_vec())]);

    let line = shell_line(&cli.command("push", dir.path(), &["--to", "/tty"]));
    let out = tokio::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("TERM", "xterm-256color")
        .output()
        .await
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for drawn in ["hashing", "uploading", "ETA", "MiB/s", "\x1b["] {
        assert!(screen.contains(drawn), "{drawn:?} on the terminal: {screen:?}");
    }

    // a fresh state directory, so this run hashes too
    let piped = SyncCli::new(&proxy.address, &cam).run("push", dir.path(), &["--to", "/piped"]).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(!piped.stderr.contains("ETA") && !piped.stderr.contains('\x1b'), "no bars when piped: {piped:?}");
    assert!(piped.stderr.contains("hashing: 2/2 files"), "plain lines instead: {piped:?}");
    assert!(piped.stdout.contains("2 files seen"), "{piped:?}");
}

#[tokio::test]
async fn a_busy_server_is_asked_again_after_the_time_it_names() {
    // a catalog outage answers 503 with Retry-After: the client waits that long (not its own
    // half-second backoff) and then finishes the run
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a.txt", b"first".to_vec()), ("b.txt", b"second".to_vec())]);
    proxy.busy_for("upload", 2, 2);
    let summary = SyncCli::new(&proxy.address, &cam).ok("push", dir.path(), &["--to", "/busy"]).await;
    assert_eq!(summary["files_uploaded"], 2, "{summary}");
    let checks: Vec<_> = proxy.take().into_iter().filter(|s| s.op() == "upload").collect();
    let statuses: Vec<u16> = checks.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [503, 503, 200], "asked again until it answered");
    for pair in checks.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(waited >= Duration::from_millis(1950), "waited {waited:?} of the 2 s asked");
    }
}

#[tokio::test]
async fn a_part_the_server_stops_reading_is_given_up_after_the_stall_timeout_and_sent_again() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("clip.mov", bytes_of(20 << 20, 6))]);

    // part 2 stalls mid-body: without a stall timeout the client would wait for ever
    proxy.hold_parts_from(2);
    let push = ["--concurrency", "1", "--stall-timeout", "1s", "--json"];
    let child = cli.spawn("push", dir.path(), &push);
    // a second held attempt: the first was given up and the part sent again
    let given_up = parts_held(&proxy, 2).await;
    proxy.release();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(given_up, "the stalled part was tried again within 30 s: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&summary["files_uploaded"], &summary["failures"]), (&json!(1), &json!([])), "{summary}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_saying_so() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    // accepts every connection and never sends a byte
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let (dir, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let started = std::time::Instant::now();
    let mut push = ferry_bin();
    push.arg("push").arg(dir.path()).args(["--server", &server, "--device-key", "key", "--grant", "1"]);
    push.arg("--state-dir").arg(state.path()).args(["--stall-timeout", "1s"]);
    let run = tokio::process::Command::from(push).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("gave up within a minute").unwrap();
    silent.abort();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Ferry server")
            && stderr.contains("no answer in the time allowed (see --stall-timeout)"),
        "{stderr}"
    );
    // five attempts of a second each and the pauses between them, not for ever
    assert!(started.elapsed() < Duration::from_secs(40), "{:?}", started.elapsed());
}

/// Whether the proxy holds `parts` part PUTs (or more) within 30 s.
async fn parts_held(proxy: &Proxy, parts: u32) -> bool {
    for _ in 0..300 {
        if proxy.held() >= parts {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether the volume shows `path` within 30 s.
async fn appears_on_server(cam: &DeviceClient<'_>, path: &str) -> bool {
    for _ in 0..300 {
        let (items, _) = cam.feed_from(String::new(), 1000).await;
        if items.iter().any(|i| i["media_path"] == path) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn watch_pushes_what_its_first_round_did_not_take() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("clip.mov", bytes_of(20 << 20, 7))]);
    // the first round uploads the clip slowly, and the server cannot create it then
    proxy.hold_parts_from(2);
    proxy.busy_for("media", 5, 0);
    let mut child = cli.spawn("push", dir.path(), &["--watch", "--settle", "200ms"]);
    let uploading = parts_held(&proxy, 1).await;
    std::fs::write(dir.path().join("during.txt"), b"saved while the clip was uploading").unwrap();
    proxy.release(); // the held part answers 503 and is sent again
    let (clip, during) = (appears_on_server(&cam, "/clip.mov").await, appears_on_server(&cam, "/during.txt").await);
    child.start_kill().unwrap();
    let stderr = String::from_utf8_lossy(&child.wait_with_output().await.unwrap().stderr).into_owned();
    assert!(uploading, "the first round reached its upload within 30 s: {stderr}");
    assert!(during, "a file made while the first round ran was pushed by the watch: {stderr}");
    assert!(stderr.contains("1 file waiting for the server, tried again in 5 s"), "{stderr}");
    assert!(clip, "the clip the first round could not create was tried again: {stderr}");
}

#[tokio::test]
async fn watch_outlasts_a_server_outage_and_pushes_what_waited() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("first.txt", b"first".to_vec())]);
    let mut child = cli.spawn("push", dir.path(), &["--watch", "--settle", "200ms"]);
    let on_server = |path: &'static str| appears_on_server(&cam, path);
    assert!(on_server("/first.txt").await, "the first round pushed first.txt");

    // the server answers 503 to every attempt of the next round
    proxy.busy_for("upload", 5, 0);
    std::fs::write(dir.path().join("later.txt"), b"written during the outage").unwrap();
    let pushed = on_server("/later.txt").await;
    // and an outage that only the creation of the file meets (a failure of that file alone)
    proxy.busy_for("media", 5, 0);
    std::fs::write(dir.path().join("third.txt"), b"created during the second outage").unwrap();
    let third = on_server("/third.txt").await;
    child.start_kill().unwrap();
    let stderr = String::from_utf8_lossy(&child.wait_with_output().await.unwrap().stderr).into_owned();
    assert!(pushed, "later.txt was pushed once the server was back: {stderr}");
    assert!(stderr.contains("1 file waiting, tried again in 5 s"), "{stderr}");
    assert!(third, "third.txt was tried again, not taken for pushed: {stderr}");
    assert!(stderr.contains("1 file waiting for the server, tried again in 5 s"), "{stderr}");
    let seen = proxy.take();
    let checks: Vec<u16> = seen.iter().filter(|s| s.op() == "upload").map(|s| s.status).collect();
    assert_eq!(checks.iter().filter(|s| **s == 503).count(), 5, "{checks:?}");
}

#[tokio::test]
async fn a_download_that_keeps_breaking_off_fails_that_file_alone_and_resumes_later() {
    let (app, proxy) = spawn_behind_proxy().await;
    let (_, cam) = DeviceClient::setup(&app, "alice", "/").await;
    let cli = SyncCli::new(&proxy.address, &cam);
    let source = tempfile::tempdir().unwrap();
    let big = bytes_of(300_000, 7);
    write_tree(source.path(), &[("fine.txt", b"fine".to_vec()), ("big.bin", big.clone())]);
    cli.ok("push", source.path(), &[]).await;

    // every download breaks off after 20,000 bytes: the small file arrives, the big one not
    proxy.cut_downloads_after(Some(20_000));
    let target = tempfile::tempdir().unwrap();
    let ran = cli.run("pull", target.path(), &["--json"]).await;
    assert_eq!(ran.code, 1, "one file failed, the run went on: {ran:?}");
    let summary = ran.json();
    assert_eq!(summary["files_downloaded"], 1, "{summary}");
    assert_eq!(std::fs::read(target.path().join("fine.txt")).unwrap(), b"fine");
    assert_eq!(summary["failures"][0]["path"], "big.bin", "{summary}");
    let reason = summary["failures"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("the download broke off"), "{reason}");
    assert!(!target.path().join("big.bin").exists(), "nothing unverified is put in place");

    // the connection is good again: the next pull goes on from what arrived
    proxy.cut_downloads_after(None);
    let again = cli.ok("pull", target.path(), &[]).await;
    assert_eq!(again["files_downloaded"], 1, "{again}");
    assert_eq!(std::fs::read(target.path().join("big.bin")).unwrap(), big);
    // what the broken attempts received was kept (each got up to 20,000 bytes through)
    let received = again["bytes_received"].as_u64().unwrap();
    assert!(received < 300_000, "only what was missing: {again}");
}
