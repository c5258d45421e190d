//! The web gallery's sign-in (issue 25), server side: one-time links, the session cookie and
//! what it may do, CSRF, sign-out, revocation and expiry, and the admin commands. The page
//! itself is driven in a real browser by `browser.rs` (`tests/clients/gallery_browser.py`).

mod browser;
mod cli;
mod signin;
mod timeline;

use ferry::auth::{secrets, web};
use ferry::domain::UserId;
use reqwest::header::{HeaderMap, SET_COOKIE};

use crate::helpers::*;

/// A client that follows no redirects (the tests look at each answer).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A sign-in link for `user`, good for `ttl_ms`: (its secret, its URL on `app`).
async fn link(app: &TestApp, user: UserId, ttl_ms: i64) -> String {
    let link = web::new_link();
    let expires = ferry::clock::now_ms() + ttl_ms;
    app.catalog().create_web_link(user, &link.hash, expires).await.unwrap();
    link.secret
}

/// The `ferry_session` cookie an answer sets, with its attributes.
fn set_cookie(headers: &HeaderMap) -> String {
    let cookies: Vec<&str> = headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies.len(), 1, "one cookie: {cookies:?}");
    cookies[0].to_owned()
}

/// A signed-in browser: its session secret (the cookie's value) and the page's CSRF token.
struct Browser {
    secret: String,
    csrf: String,
}

impl Browser {
    fn cookie(&self) -> String {
        format!("ferry_session={}", self.secret)
    }
}

/// Signs in with `field=value` (link or token) and returns the session.
async fn sign_in(app: &TestApp, field: &str, value: &str) -> Browser {
    let response = browser().post(app.url("/web/signin")).form(&[(field, value)]).send().await.unwrap();
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    assert_eq!(response.headers()["location"], "/");
    let cookie = set_cookie(response.headers());
    let secret = cookie.split(';').next().unwrap().strip_prefix("ferry_session=").unwrap().to_owned();
    let page = page(app, Some(&secret)).await;
    let csrf = page.split(r#"<meta name="ferry-csrf" content=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(csrf, web::csrf_token(&secret), "the page carries the session's CSRF token");
    // the catalog keeps the secret's hash, never the secret: a stolen catalog opens no session
    let catalog = app.catalog();
    assert!(catalog.web_session_by_hash(&secret).await.unwrap().is_none(), "the secret itself is no key");
    assert!(catalog.web_session_by_hash(&secrets::hash(&secret)).await.unwrap().is_some(), "its hash is");
    Browser { secret, csrf }
}

/// `GET /` as a browser with (or without) a session cookie.
async fn page(app: &TestApp, secret: Option<&str>) -> String {
    let mut request = browser().get(app.url("/")).header("accept", "text/html");
    if let Some(secret) = secret {
        request = request.header("cookie", format!("ferry_session={secret}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    response.text().await.unwrap()
}
