use ferry::domain::Level;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn a_sign_in_link_opens_one_session_and_the_page_shows_the_gallery_only_then() {
    let app = spawn_app().await;
    let ann = app.user("ann", Level::Uploader, "read").await;

    let anonymous = page(&app, None).await;
    assert!(anonymous.contains(r#"<form method="post" action="/web/signin">"#), "the sign-in form");
    assert!(!anonymous.contains("ann") && !anonymous.contains("ferry-csrf"), "no data without a session");
    assert_eq!(page(&app, Some("fry_w_forged")).await, anonymous, "a forged cookie is no session");

    let secret = link(&app, ann.user_id, 60_000).await;
    // opening the link only shows a form that spends it: a link preview leaves it unused
    let opened = browser().get(app.url(&format!("/web/signin?link={secret}"))).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.headers().get(SET_COOKIE).is_none());
    assert_eq!(opened.headers()["referrer-policy"], "no-referrer", "the link's secret never leaves in a Referer");
    let confirm = opened.text().await.unwrap();
    assert!(confirm.contains(&format!(r#"name="link" value="{secret}""#)), "{confirm}");
    // it names the account and waits for a click: a link someone else sent cannot switch a
    // browser to their account unseen
    assert!(confirm.contains("Sign in as <strong>ann</strong>") && !confirm.contains("<script"), "{confirm}");

    let response = browser().post(app.url("/web/signin")).form(&[("link", secret.as_str())]).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = set_cookie(response.headers());
    for attribute in ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=2592000"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: a Secure cookie would never come back");
    let secret_cookie = cookie.split(';').next().unwrap().strip_prefix("ferry_session=").unwrap().to_owned();
    let gallery = page(&app, Some(&secret_cookie)).await;
    assert!(gallery.contains(r#"<span class="who">ann</span>"#) && gallery.contains("ferry-csrf"), "{gallery}");
    assert_eq!(page(&app, Some(&secret_cookie)).await, gallery, "/web/ and / are one page");

    // the link is spent: a second use, even at once, opens nothing
    let again = browser().post(app.url("/web/signin")).form(&[("link", secret.as_str())]).send().await.unwrap();
    expect_error(again, 401, "unauthorized").await;
    let sessions = app.catalog().list_web_sessions(Some(ann.user_id)).await.unwrap();
    assert_eq!(sessions.len(), 1, "one session from one link");
    assert_eq!(sessions[0].via, "link");

    // an expired link opens nothing either, and a browser gets the form back with the reason
    let expired = link(&app, ann.user_id, -1).await;
    let refused = browser()
        .post(app.url("/web/signin"))
        .header("accept", "text/html")
        .form(&[("link", expired.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("unknown, used or expired"));
    let spent = browser().get(app.url(&format!("/web/signin?link={secret}"))).send().await.unwrap();
    assert!(spent.text().await.unwrap().contains("unknown, used or expired"), "a spent link says so when opened");
    let empty = browser().post(app.url("/web/signin")).form(&[("link", "")]).send().await.unwrap();
    expect_error(empty, 400, "invalid_form").await;
}

#[tokio::test]
async fn the_cookie_acts_as_its_user_within_its_scopes_and_every_change_needs_the_csrf_token() {
    let app = spawn_app().await;
    let ann = app.user("ann", Level::Uploader, "upload,read").await;
    app.device(&ann, "cam").await;
    let event = gallery_upload(&app, &ann.token, "a.bin", &bytes_of(1000, 1)).await;
    let anns = sign_in(&app, "link", &link(&app, ann.user_id, 60_000).await).await;

    let me: Value =
        browser().get(app.url("/api/me")).header("cookie", anns.cookie()).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["name"], "ann");
    assert!(me["web_session_id"].as_i64().is_some() && me.get("token_id").is_none(), "{me}");
    let events =
        browser().get(app.url("/api/gallery/cam/events")).header("cookie", anns.cookie()).send().await.unwrap();
    assert_eq!(events.status(), 200, "the page reads with the cookie");

    // another site's form or script can send the cookie (were it not SameSite) but not the token
    let delete = format!("/api/gallery/cam/events/{event}");
    let forged = browser().delete(app.url(&delete)).header("cookie", anns.cookie()).send().await.unwrap();
    expect_error(forged, 403, "csrf_refused").await;
    let wrong = browser()
        .delete(app.url(&delete))
        .header("cookie", anns.cookie())
        .header("x-csrf-token", web::csrf_token("fry_w_other"))
        .send()
        .await
        .unwrap();
    expect_error(wrong, 403, "csrf_refused").await;
    let listed: Vec<Value> = app
        .client
        .get(app.url("/api/gallery/cam/events"))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "the refused deletes removed nothing");

    // a second account's session sees none of ann's items
    let bob = app.user("bob", Level::Uploader, "read").await;
    app.device(&bob, "cam").await;
    let bobs = sign_in(&app, "link", &link(&app, bob.user_id, 60_000).await).await;
    let file = browser()
        .get(app.url(&format!("/api/gallery/cam/events/{event}/file")))
        .header("cookie", bobs.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 404, "bob's cam has no such event");
    let theirs = browser()
        .delete(app.url(&delete))
        .header("cookie", bobs.cookie())
        .header("x-csrf-token", &bobs.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);

    let deleted = browser()
        .delete(app.url(&delete))
        .header("cookie", anns.cookie())
        .header("x-csrf-token", &anns.csrf)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());

    // signed in with a read-only token, the page may read and nothing more
    let reader = app.token_for(ann.user_id, "read").await;
    let readonly = sign_in(&app, "token", &reader).await;
    let upload = reqwest::multipart::Form::new()
        .text("name", "b.bin")
        .part("event", reqwest::multipart::Part::bytes(vec![1; 10]));
    let refused = browser()
        .post(app.url("/api/gallery/cam/upload"))
        .header("cookie", readonly.cookie())
        .header("x-csrf-token", &readonly.csrf)
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "the session has the token's scopes, never more");
    let bad = browser().post(app.url("/web/signin")).form(&[("token", "fry_t_mistyped")]).send().await.unwrap();
    expect_error(bad, 401, "unauthorized").await;
}

#[tokio::test]
async fn signing_out_or_revoking_ends_the_session_within_a_second_and_sessions_expire() {
    let app = spawn_app_with(|layer| {
        layer.insert("web_session_ttl", "2s".into());
    })
    .await;
    let ann = app.user("ann", Level::Uploader, "read").await;
    let me = |web: &Browser| {
        let request = browser().get(app.url("/api/me")).header("cookie", web.cookie());
        async move { request.send().await.unwrap() }
    };

    let first = sign_in(&app, "link", &link(&app, ann.user_id, 60_000).await).await;
    assert_eq!(me(&first).await.status(), 200);
    // sign-out is a change: it needs the page's token too
    let forged = browser().post(app.url("/web/signout")).header("cookie", first.cookie()).send().await.unwrap();
    expect_error(forged, 403, "csrf_refused").await;
    let out = browser()
        .post(app.url("/web/signout"))
        .header("cookie", first.cookie())
        .form(&[("csrf", first.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(set_cookie(out.headers()).starts_with("ferry_session=; "), "the cookie is removed");
    assert!(set_cookie(out.headers()).contains("Max-Age=0"));
    refused_within_a_second(|| me(&first), 401, "unauthorized").await;

    let second = sign_in(&app, "token", &ann.token).await;
    let listed = app.catalog().list_web_sessions(Some(ann.user_id)).await.unwrap();
    assert_eq!(listed.len(), 1, "the signed-out session is not listed");
    app.catalog().revoke_web_session(listed[0].session_id).await.unwrap();
    refused_within_a_second(|| me(&second), 401, "unauthorized").await;
    assert!(!page(&app, Some(&second.secret)).await.contains("ferry-csrf"), "the page asks to sign in again");

    // a session opened with a token lives only as long as the token
    let token = app.token_for(ann.user_id, "read").await;
    let by_token = sign_in(&app, "token", &token).await;
    assert_eq!(me(&by_token).await.status(), 200);
    let tokens = app.catalog().list_tokens().await.unwrap();
    app.catalog().revoke_token(tokens.last().unwrap().token_id).await.unwrap();
    refused_within_a_second(|| me(&by_token), 401, "unauthorized").await;

    let third = sign_in(&app, "token", &ann.token).await;
    assert_eq!(me(&third).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    expect_error(me(&third).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_sign_in_form_posted_from_another_site_is_refused() {
    let app = spawn_app().await;
    let ann = app.user("ann", Level::Uploader, "read").await;
    let host = app.address.strip_prefix("http://").unwrap().to_owned();
    let forged = [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ];
    for (header, value) in forged {
        let response = browser()
            .post(app.url("/web/signin"))
            .header(header, value)
            .form(&[("token", ann.token.as_str())])
            .send()
            .await
            .unwrap();
        expect_error(response, 403, "csrf_refused").await;
    }
    let same = browser()
        .post(app.url("/web/signin"))
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", ann.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 303);
    assert!(app.catalog().list_web_sessions(None).await.unwrap().len() == 1, "only the same-site form signed in");
    // the page's routes do not swallow other paths
    let unknown = browser().get(app.url("/web/nope")).send().await.unwrap();
    expect_error(unknown, 404, "not_found").await;
    let asset = browser().get(app.url("/web/assets/nope.js")).send().await.unwrap();
    expect_error(asset, 404, "not_found").await;
    let css = browser().get(app.url("/web/assets/ferry.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let etag = css.headers()["etag"].clone();
    let again = browser().get(app.url("/web/assets/ferry.css")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
}
