//! Gallery pages sent again from memory (`gallery_page_cache`) are never older than what
//! they list: every change — through the API, or by another process such as the admin CLI —
//! shows in the very next page, and a page is only ever sent to the account it was read for.

use ferry::catalog::JobStatus;
use serde_json::Value;

use crate::gallery::{Gallery, expect_gallery_error};
use crate::helpers::*;

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];

fn ids(page: &Value) -> Vec<&str> {
    page.as_array().unwrap().iter().map(|event| event["id"].as_str().unwrap()).collect()
}

/// Waits (ten seconds at most) until no job is waiting or running — the server's own runner
/// may hold one — so media processing's results, which change a page, have landed.
async fn jobs_settled(app: &TestApp) {
    for _ in 0..1000 {
        app.state.jobs.run_until_idle().await.unwrap();
        let busy = [JobStatus::Pending, JobStatus::Running];
        let mut left = 0;
        for status in busy {
            left += app.catalog().list_jobs(Some(status)).await.unwrap().len();
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("jobs still waiting or running after ten seconds");
}

/// Pages answered so far, as `/metrics` counts them: (sent from memory, read).
async fn pages_answered(app: &TestApp) -> (u64, u64) {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |answer: &str| {
        let series = format!("ferry_gallery_pages_total{{answer=\"{answer}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(&series));
        line.unwrap_or_else(|| panic!("{series} missing from:\n{text}")).parse().unwrap()
    };
    (count("kept"), count("read"))
}

#[tokio::test]
async fn a_page_asked_for_again_shows_every_change_at_once() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let first = g.upload_ok("one", bytes_of(300, 1)).await;
    // media processing's results change the page too: let them land first
    jobs_settled(&app).await;
    let page = g.get_json("events").await;
    assert_eq!(ids(&page), [first.as_str()]);
    assert_eq!(g.get_json("events").await, page, "asked again: the same page");

    // a new event, through a signed upload URL that also takes a thumbnail after it
    let urls = g.get_json("upload-url?filename=two.jpg&thumbnail=true").await;
    let (file_url, thumb_url) = (urls["upload_url"].as_str().unwrap(), urls["thumbnail_upload_url"].as_str().unwrap());
    let put: Value = app.client.put(file_url).body(bytes_of(400, 2)).send().await.unwrap().json().await.unwrap();
    let second = put["eventId"].as_str().unwrap().to_owned();
    let page = g.get_json("events").await;
    assert_eq!(ids(&page), [second.as_str(), first.as_str()], "the new event is listed at once");
    assert_eq!(page[0]["has_thumbnail"], false);
    assert_eq!(g.get_json("events?limit=1").await[0]["id"], second.as_str());

    // its thumbnail arrives: the next page is read, not sent from memory
    assert_eq!(app.client.put(thumb_url).body(PNG.to_vec()).send().await.unwrap().status(), 200);
    let (_, read_before) = pages_answered(&app).await;
    assert_eq!(g.get_json("events").await[0]["has_thumbnail"], true, "the thumbnail shows at once");
    assert_eq!(pages_answered(&app).await.1, read_before + 1, "a page after a change is read afresh");

    // a deletion
    let deleted = app.client.delete(g.url(&format!("events/{first}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(ids(&g.get_json("events").await), [second.as_str()], "the deleted event is gone at once");
    assert_eq!(ids(&g.get_json("events?offset=1").await), Vec::<&str>::new());

    // another process writes to the catalog: the admin CLI renames alice's device
    let renamed = ferry_bin()
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .args(["admin", "device", "rename", "alice/Front Door", "Porch", "--json"])
        .envs(app.settings_env())
        .output()
        .unwrap();
    assert!(renamed.status.success(), "{}", String::from_utf8_lossy(&renamed.stderr));
    expect_gallery_error(g.get("events").await, 404, "no_such_device").await;
    let porch = Gallery { app: &app, token: g.token.clone(), device: "Porch".into() };
    assert_eq!(ids(&porch.get_json("events").await), [second.as_str()]);
}

#[tokio::test]
async fn a_kept_page_goes_only_to_the_account_it_was_read_for() {
    let app = spawn_app().await;
    // two accounts, each with a device of the same name
    let (alice, bob) = (Gallery::new(&app, "alice").await, Gallery::new(&app, "bob").await);
    let alices = alice.upload_ok("alice's", bytes_of(300, 1)).await;
    let bobs = bob.upload_ok("bob's", bytes_of(300, 2)).await;
    jobs_settled(&app).await;
    // pages come from memory once read while nothing changes; a commit in the background
    // (none is expected on an idle server) would only send a round to the catalog, so try a
    // few rounds until one is answered wholly from memory
    let mut from_memory = false;
    for _ in 0..10 {
        let (kept_before, _) = pages_answered(&app).await;
        for _ in 0..2 {
            assert_eq!(ids(&alice.get_json("events").await), [alices.as_str()]);
            assert_eq!(ids(&bob.get_json("events").await), [bobs.as_str()]);
        }
        if pages_answered(&app).await.0 == kept_before + 2 {
            from_memory = true;
            break;
        }
    }
    let backend = &app.state.config.database_url;
    if backend.starts_with("sqlite:") {
        assert!(from_memory, "the second round of pages is sent from memory");
    } else {
        assert!(!from_memory, "on PostgreSQL every page is read: {backend}");
    }
}

#[tokio::test]
async fn with_the_cache_off_pages_are_read_afresh_all_the_same() {
    let app = spawn_app_with(|layer| {
        layer.insert("gallery_page_cache", "0".into());
    })
    .await;
    let g = Gallery::new(&app, "alice").await;
    let first = g.upload_ok("one", bytes_of(300, 1)).await;
    assert_eq!(ids(&g.get_json("events").await), [first.as_str()]);
    assert_eq!(ids(&g.get_json("events").await), [first.as_str()]);
    let second = g.upload_ok("two", bytes_of(300, 2)).await;
    assert_eq!(ids(&g.get_json("events").await), [second.as_str(), first.as_str()]);
    assert_eq!(pages_answered(&app).await, (0, 3), "none from memory");
}
