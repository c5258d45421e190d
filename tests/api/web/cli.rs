use super::*;

#[tokio::test]
async fn admin_web_link_prints_a_one_time_url_and_web_session_lists_and_revokes() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let (code, _) = admin_json(data, &["user", "add", "ann", "--level", "uploader"]);
    assert_eq!(code, 0);
    let server = FerryProcess::start(data, &[]);
    let public = |args: &[&str]| {
        let out = ferry_bin()
            .env("FERRY_PUBLIC_URL", &server.address)
            .arg("--data-dir")
            .arg(data)
            .arg("admin")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let before = ferry::clock::now_secs();
    let printed = public(&["web-link", "--user", "ann", "--ttl", "10m"]);
    let url = printed["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/web/signin?link=fry_l_", server.address)), "{url}");
    let expires = printed["expires"].as_i64().unwrap();
    assert!((before + 600..=before + 602).contains(&expires), "expires as Unix seconds, like sign-upload: {printed}");

    let secret = url.split("link=").nth(1).unwrap();
    let response =
        browser().post(format!("{}/web/signin", server.address)).form(&[("link", secret)]).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let timeline = || {
        let request = browser().get(format!("{}/api/timeline", server.address)).header("cookie", cookie.clone());
        async move { request.send().await.unwrap() }
    };
    assert_eq!(timeline().await.status(), 200, "signed in");

    let (code, listed) = admin_json(data, &["web-session", "list", "--user", "ann"]);
    assert_eq!(code, 0);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    for key in ["session_id", "user_id", "via", "scopes", "created", "expires", "is_revoked"] {
        assert!(items[0].get(key).is_some(), "{key} in {listed}");
    }
    let id = items[0]["session_id"].as_i64().unwrap().to_string();
    let (code, revoked) = admin_json(data, &["web-session", "revoke", &id]);
    assert_eq!((code, &revoked["is_revoked"]), (0, &serde_json::json!(true)), "{revoked}");
    // the server (another process) refuses the browser within a second of the revocation
    refused_within_a_second(timeline, 401, "unauthorized").await;
    let (_, listed) = admin_json(data, &["web-session", "list"]);
    assert_eq!(listed["items"], serde_json::json!([]));

    let (code, error) = admin_json(data, &["web-link", "--user", "nobody"]);
    assert_eq!((code, error["error"].as_str()), (1, Some("not_found")));
    let (code, error) = admin_json(data, &["web-link", "--user", "ann", "--ttl", "soon"]);
    assert_eq!((code, error["error"].as_str()), (1, Some("invalid_argument")));
    let (code, error) = admin_json(data, &["web-session", "revoke", "999"]);
    assert_eq!((code, error["error"].as_str()), (1, Some("not_found")));
}
