//! Gallery pages sent again from memory (`gallery_page_cache`) are never older than what
//! they list: every change — through the API, or by another process such as the admin CLI —
//! shows in the very next page.

use serde_json::Value;

use crate::gallery::{Gallery, expect_gallery_error};
use crate::helpers::*;

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];

fn ids(page: &Value) -> Vec<&str> {
    page.as_array().unwrap().iter().map(|event| event["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_page_asked_for_again_shows_every_change_at_once() {
    let app = spawn_app().await;
    let g = Gallery::new(&app, "alice").await;
    let first = g.upload_ok("one", bytes_of(300, 1)).await;
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

    // its thumbnail arrives
    assert_eq!(app.client.put(thumb_url).body(PNG.to_vec()).send().await.unwrap().status(), 200);
    assert_eq!(g.get_json("events").await[0]["has_thumbnail"], true, "the thumbnail shows at once");

    // a deletion
    let deleted = app.client.delete(g.url(&format!("events/{first}"))).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(ids(&g.get_json("events").await), [second.as_str()], "the deleted event is gone at once");
    assert_eq!(ids(&g.get_json("events?offset=1").await), Vec::<&str>::new());

    // another account's device of the same name lists its own events, not alice's page
    let bob = Gallery::new(&app, "bob").await;
    assert_eq!(bob.get_json("events").await, Value::Array(vec![]));
    let bobs = bob.upload_ok("bob's", bytes_of(200, 3)).await;
    assert_eq!(ids(&bob.get_json("events").await), [bobs.as_str()]);
    assert_eq!(ids(&g.get_json("events").await), [second.as_str()]);

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
async fn with_the_cache_off_pages_are_read_afresh_all_the_same() {
    let app = spawn_app_with(|layer| {
        layer.insert("gallery_page_cache", "0".into());
    })
    .await;
    let g = Gallery::new(&app, "alice").await;
    let first = g.upload_ok("one", bytes_of(300, 1)).await;
    assert_eq!(ids(&g.get_json("events").await), [first.as_str()]);
    let second = g.upload_ok("two", bytes_of(300, 2)).await;
    assert_eq!(ids(&g.get_json("events").await), [second.as_str(), first.as_str()]);
}
