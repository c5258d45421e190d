//! What the server's log says (issue 29): one line per request, a refusal with its error
//! code, a failure once with what went wrong inside (a blob that cannot be read names the
//! blob), and events that happen outside requests (a watch-folder ingest).

use std::time::Duration;

use crate::helpers::*;
use crate::lifecycle::session_upload;

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test]
async fn refusals_carry_their_code_and_a_failure_is_logged_once_naming_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (data, watched, log) = (dir.path().join("data"), dir.path().join("incoming"), dir.path().join("serve.log"));
    std::fs::create_dir_all(&watched).unwrap();
    admin_json(&data, &["user", "add", "kim", "--level", "uploader"]);
    let token = admin_json(&data, &["token", "add", "--user", "kim", "--scopes", "upload,read"]).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = format!("{}=kim/cam", watched.display());
    let env = [("FERRY_WATCH", watch.as_str()), ("FERRY_WATCH_SETTLE_MS", "100")];
    // the watched folder of a device that no longer exists (removed) is left alone
    let ghost = data.join("gallery/1/99/incoming");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("ghost.jpg"), bytes_of(1000, 63)).unwrap();
    let mut server = FerryProcess::start_logging(&data, &env, &log);
    let client = reqwest::Client::new();

    let refused = client.get(format!("{}/api/usage", server.address)).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    // a stored file whose bytes went missing behind the server's back
    let bytes = bytes_of(3000, 61);
    let file_id = session_upload(&server.address, &token, &bytes).await;
    let sha256 = sha256_hex(&bytes);
    std::fs::remove_file(data.join("blobs/sha256").join(&sha256[0..2]).join(&sha256[2..4]).join(&sha256)).unwrap();
    let failed = client.get(format!("{}/api/files/{file_id}", server.address)).bearer_auth(&token);
    assert_eq!(failed.send().await.unwrap().status(), 500);

    std::fs::write(watched.join("door.jpg"), bytes_of(2000, 62)).unwrap();
    for _ in 0..200 {
        if watched.join("done").join("door.jpg").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.signal("TERM");
    server.wait_exit(20).expect("the server stops");
    let log = std::fs::read_to_string(&log).unwrap();

    let refusals = lines_with(&log, "request refused");
    assert!(refusals.iter().any(|l| l.contains("status=401") && l.contains("unauthorized")), "{log}");
    let errors: Vec<_> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one line for the failed request: {errors:#?}");
    assert!(errors[0].contains("request failed") && errors[0].contains(&sha256), "{}", errors[0]);
    assert!(lines_with(&log, "ingest failed").is_empty(), "{log}");
    assert!(ghost.join("ghost.jpg").exists(), "a removed device's file is not taken");
    let ingested = lines_with(&log, "watch folder file ingested");
    assert!(ingested.len() == 1 && ingested[0].contains("door.jpg"), "{log}");
}
