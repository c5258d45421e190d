//! The real `ferry` binary, as a user or a script drives it.

use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn help_explains_every_command() {
    let out = ferry_bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "admin"] {
        assert!(text.contains(word), "{word} missing from --help");
    }
    let out = ferry_bin().args(["admin", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["user", "token", "device", "volume", "grant", "jobs", "sign-upload", "check", "collect", "files"] {
        assert!(text.contains(word), "{word} missing from admin --help");
    }
    for word in ["backup", "restore", "FERRY_DATA_DIR"] {
        assert!(text.contains(word), "{word} missing from admin --help");
    }
    let out = ferry_bin().args(["admin", "user", "add", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for what in ["<NAME>  The user's name", "viewer, uploader, manager or admin"] {
        assert!(text.contains(what), "user add --help says nothing like {what:?}:\n{text}");
    }
}

#[test]
fn identities_are_managed_with_one_json_object_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (code, user) = admin_json(d, &["user", "add", "alice", "--level", "uploader"]);
    assert_eq!(code, 0);
    assert_eq!(user["name"], "alice");
    assert_eq!(user["level"], "uploader");
    assert!(user["user_id"].is_i64());

    let (_, token) = admin_json(d, &["token", "add", "--user", "alice", "--scopes", "upload,read,delete"]);
    assert!(token["token_id"].is_i64());
    assert!(token["token"].as_str().unwrap().len() > 32);
    assert_eq!(token["scopes"], serde_json::json!(["upload", "read", "delete"]));

    let (_, device) = admin_json(d, &["device", "add", "--user", "alice", "--name", "cam"]);
    assert_eq!(device["device_name"], "cam");
    assert_eq!(device["user_id"], user["user_id"]);
    assert!(device["device_session_key"].as_str().unwrap().len() > 32);
    assert!(device["device_id"].is_i64());

    let (_, volume) = admin_json(d, &["volume", "add", "photos", "--user", "alice"]);
    assert_eq!(volume["name"], "photos");
    assert_eq!(volume["user_id"], user["user_id"]);
    assert!(volume["volume_id"].is_i64());

    let (_, grant) = admin_json(d, &["grant", "add", "--device", "cam", "--volume", "photos"]);
    assert!(grant["media_grant_id"].is_string());
    assert_eq!(grant["grant_name"], "photos");
    assert_eq!(grant["device_id"], device["device_id"]);
    assert_eq!(grant["volume_id"], volume["volume_id"]);
    assert_eq!(grant["prefix_path"], "/");
    let (_, grant2) = admin_json(
        d,
        &["grant", "add", "--device", "alice/cam", "--volume", "photos", "--prefix", "/dcim", "--name", "camera roll"],
    );
    assert_eq!(grant2["prefix_path"], "/dcim");
    assert_eq!(grant2["grant_name"], "camera roll");

    for (kind, count) in [("user", 1), ("token", 1), ("device", 1), ("volume", 1), ("grant", 2)] {
        let (code, list) = admin_json(d, &[kind, "list"]);
        assert_eq!(code, 0);
        assert_eq!(list["items"].as_array().unwrap().len(), count, "{kind} list: {list}");
    }
    // secrets are never listed
    let (_, tokens) = admin_json(d, &["token", "list"]);
    assert!(!tokens.to_string().contains(token["token"].as_str().unwrap()));
}

#[test]
fn switches_return_the_updated_object() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    admin_json(d, &["user", "add", "bob", "--level", "manager"]);
    let (_, device) = admin_json(d, &["device", "add", "--user", "bob", "--name", "dashcam"]);
    let id = device["device_id"].to_string();

    let (_, off) = admin_json(d, &["device", "disable", "dashcam"]);
    assert_eq!(off["is_disabled"], true);
    let (_, on) = admin_json(d, &["device", "enable", &id]);
    assert_eq!(on["is_disabled"], false);
    let (_, uploads_off) = admin_json(d, &["device", "uploads", "off", "bob/dashcam"]);
    assert_eq!(uploads_off["is_upload_disabled"], true);
    let (_, uploads_on) = admin_json(d, &["device", "uploads", "on", "dashcam"]);
    assert_eq!(uploads_on["is_upload_disabled"], false);

    let (_, token) = admin_json(d, &["token", "add", "--user", "bob", "--scopes", "read"]);
    let (_, revoked) = admin_json(d, &["token", "revoke", &token["token_id"].to_string()]);
    assert_eq!(revoked["is_revoked"], true);

    admin_json(d, &["volume", "add", "clips", "--user", "bob"]);
    let (_, grant) = admin_json(d, &["grant", "add", "--device", "dashcam", "--volume", "clips"]);
    let grant_id = grant["media_grant_id"].as_str().unwrap();
    let (_, disabled) = admin_json(d, &["grant", "disable", grant_id]);
    assert_eq!(disabled["is_disabled"], true);
    let (_, enabled) = admin_json(d, &["grant", "enable", grant_id]);
    assert_eq!(enabled["is_disabled"], false);
}

#[test]
fn failures_exit_1_with_a_json_error_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    admin_json(d, &["user", "add", "alice", "--level", "uploader"]);
    admin_json(d, &["user", "add", "carol", "--level", "uploader"]);
    let cases: &[(&[&str], &str)] = &[
        (&["user", "add", "alice", "--level", "uploader"], "conflict"),
        (&["user", "add", "dave", "--level", "root"], "invalid_argument"),
        (&["user", "add", "12", "--level", "viewer"], "invalid_argument"),
        (&["token", "add", "--user", "nobody", "--scopes", "read"], "not_found"),
        (&["token", "add", "--user", "alice", "--scopes", "read,everything"], "invalid_argument"),
        (&["token", "revoke", "999"], "not_found"),
        (&["device", "disable", "ghost"], "not_found"),
        (&["grant", "add", "--device", "ghost", "--volume", "v"], "not_found"),
        (&["grant", "enable", "abc"], "invalid_argument"),
        // what the command line itself refuses keeps the contract too
        (&["token", "add", "--user", "alice"], "invalid_argument"),
        (&["frobnicate"], "invalid_argument"),
        (&["user", "set-quota", "alice"], "invalid_argument"),
    ];
    for (args, code) in cases {
        let (exit, err) = admin_json(d, args);
        assert_eq!(exit, 1, "{args:?}");
        assert_eq!(err["error"], *code, "{args:?}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // a device name two users share is ambiguous; USER/NAME or the id resolves it
    admin_json(d, &["device", "add", "--user", "alice", "--name", "cam"]);
    admin_json(d, &["device", "add", "--user", "carol", "--name", "cam"]);
    assert_eq!(admin_json(d, &["device", "disable", "cam"]).1["error"], "ambiguous");
    assert_eq!(admin_json(d, &["device", "disable", "carol/cam"]).1["device_name"], "cam");
    // a duplicate device name for one user, and a grant on another user's volume
    assert_eq!(admin_json(d, &["device", "add", "--user", "alice", "--name", "cam"]).1["error"], "conflict");
    admin_json(d, &["volume", "add", "carols", "--user", "carol"]);
    assert_eq!(admin_json(d, &["grant", "add", "--device", "alice/cam", "--volume", "carols"]).1["error"], "not_found");
}

#[test]
fn readable_output_without_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["admin", "user", "add", "erin", "--level", "viewer"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("erin") && text.contains("viewer") && !text.trim_start().starts_with('{'), "{text}");
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["admin", "user", "add", "erin", "--level", "viewer"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn a_reader_that_stops_early_is_no_failure() {
    // `ferry admin user list --json | head -c 0`: the reader is gone before the answer is written
    let dir = tempfile::tempdir().unwrap();
    let mut add = ferry_bin();
    let add =
        add.arg("--data-dir").arg(dir.path()).args(["admin", "user", "add", "erin", "--level", "viewer"]).output();
    let add = add.unwrap();
    assert!(add.status.success());
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ferry_bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["admin", "user", "list", "--json"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_prints_its_address_first_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = FerryProcess::start(dir.path(), &[]);
    assert!(server.address.starts_with("http://127.0.0.1:"));
    let health =
        std::process::Command::new("curl").args(["-sf", &format!("{}/healthz", server.address)]).output().unwrap();
    assert!(health.status.success(), "curl reaches the server");

    // the admin CLI works against the catalog the running server uses
    let (code, user) = admin_json(dir.path(), &["user", "add", "frank", "--level", "uploader"]);
    assert_eq!(code, 0, "{user}");
    let (_, token) = admin_json(dir.path(), &["token", "add", "--user", "frank", "--scopes", "read"]);
    let me = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: Token {}", token["token"].as_str().unwrap()),
            &format!("{}/api/me", server.address),
        ])
        .output()
        .unwrap();
    let me: Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["name"], "frank");

    // a second server on the same data dir is refused
    let second =
        ferry_bin().arg("--data-dir").arg(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already using"));

    // beside the server, an admin jobs run leaves blob collection to it (the SQLite catalog
    // keeps collection and commits apart only inside one process)
    let (code, ran) = admin_json(dir.path(), &["jobs", "run", "--until-idle"]);
    assert_eq!((code, &ran["blob_collection"]), (0, &json!(false)), "{ran}");

    server.signal("TERM");
    let status = server.wait_exit(10).expect("the server stops within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let (code, ran) = admin_json(dir.path(), &["jobs", "run", "--until-idle"]);
    assert_eq!((code, &ran["blob_collection"]), (0, &json!(true)), "without a server it collects: {ran}");
}

#[test]
fn settings_layer_flags_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(&file, "public_url = \"http://from-file.example\"\nlisten = \"127.0.0.1:1\"\n").unwrap();
    // env overrides the file's listen; flag overrides env's data dir
    let data = dir.path().join("data");
    let mut server = {
        let mut cmd = ferry_bin();
        cmd.arg("--config").arg(&file).arg("--data-dir").arg(&data).arg("serve");
        cmd.env("FERRY_LISTEN", "127.0.0.1:0")
            .env("FERRY_DATA_DIR", dir.path().join("elsewhere"))
            .env("FERRY_LOG", "warn");
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.starts_with("listening on http://127.0.0.1:") && !line.contains(":1\n"), "{line}");
        child
    };
    assert!(data.join("ferry.db").exists(), "the flag's data dir is used");
    assert!(!dir.path().join("elsewhere").exists());
    // an unknown key in the file is a clear error
    std::fs::write(&file, "lisen = \"x\"\n").unwrap();
    let out = ferry_bin().arg("--config").arg(&file).args(["admin", "user", "list", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn reading_commands_never_create_a_data_dir() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("not").join("here");
    for args in [&["user", "list"][..], &["files", "list"], &["jobs", "list"], &["usage"]] {
        let (code, err) = admin_json(&missing, args);
        assert_eq!((code, &err["error"]), (1, &json!("data_dir")), "{args:?}: {err}");
        assert!(err["message"].as_str().unwrap().contains(&missing.display().to_string()), "names the place: {err}");
    }
    assert!(!missing.exists(), "no data dir was created");
    // a command that writes makes the data dir, as before
    assert_eq!(admin_json(&missing, &["user", "add", "alice", "--level", "viewer"]).0, 0);
    assert_eq!(admin_json(&missing, &["user", "list"]).0, 0);
}

/// `(exit code, JSON line)` of `ferry admin ARGS --json` with `env`.
fn admin_with_env(data_dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, Value) {
    let mut cmd = ferry_bin();
    cmd.arg("--data-dir").arg(data_dir).arg("admin").args(args).arg("--json").envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(if code == 0 { &out.stdout } else { &out.stderr }).into_owned();
    (code, serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

#[test]
fn links_never_name_port_0_or_all_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    admin_json(dir.path(), &["user", "add", "alice", "--level", "uploader"]);
    for listen in ["127.0.0.1:0", "0.0.0.0:9000", "[::]:9000"] {
        let (code, refused) =
            admin_with_env(dir.path(), &[("FERRY_LISTEN", listen)], &["sign-upload", "--user", "alice"]);
        assert_eq!((code, refused["error"].as_str()), (1, Some("config")), "{listen}: {refused}");
        assert!(refused["message"].as_str().unwrap().contains("FERRY_PUBLIC_URL"), "{refused}");
    }
    let public = [("FERRY_LISTEN", "0.0.0.0:9000"), ("FERRY_PUBLIC_URL", "http://ferry.lan:9000")];
    let (code, signed) = admin_with_env(dir.path(), &public, &["sign-upload", "--user", "alice"]);
    assert_eq!(code, 0, "{signed}");
    assert!(signed["url"].as_str().unwrap().starts_with("http://ferry.lan:9000/signed/"), "{signed}");

    // a server on port 0 names its real port, and says where its data is
    let log = dir.path().join("serve.log");
    let mut server = FerryProcess::start_logging(dir.path(), &[], &log);
    // the line follows the address on stdout: wait for it (a TERM before the server's signal
    // handler is in place would end it before it logs anything)
    for _ in 0..100 {
        if std::fs::read_to_string(&log).unwrap().contains("ferry is serving") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.signal("TERM");
    server.wait_exit(10).expect("the server stops");
    let log = std::fs::read_to_string(&log).unwrap();
    let serving = log.lines().find(|l| l.contains("ferry is serving")).expect("a start line");
    assert!(serving.contains(&format!("public_url={}", server.address)), "{serving}");
    let data_dir = format!("data_dir={}", dir.path().display());
    assert!(
        serving.contains(&data_dir) && serving.contains("catalog=") && serving.contains("blob_store="),
        "{serving}"
    );
}

#[test]
fn a_stop_signal_right_after_start_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let mut server = FerryProcess::start(dir.path(), &[]);
        server.signal("TERM"); // at once: the address was printed, nothing more is awaited
        let status = server.wait_exit(20).expect("the server stops");
        assert!(status.success(), "round {round}: {status:?} (killed by the signal, not stopped by it)");
    }
}
