//! The authorization matrix (issue 27): every operation `/openapi.json` describes (every
//! route the server serves: tests/api/openapi.rs) has a row in [`ROUTES`] naming its guard,
//! an entry of the permission table (`ferry::auth::permissions`) or a signature. The
//! credentials each guard must refuse follow from its rule, and every one is tried against
//! another account's real items: no credential, a malformed one, a revoked token, a token
//! without the scope, a user below the level, another account's credential, a disabled
//! device, a disabled grant, a tampered and an expired signature. Each must get the
//! documented refusal and no byte of the items; a credential the rule admits must pass.

use std::collections::BTreeSet;

use ferry::auth::permissions::{Accepts, Endpoint, rule_for};
use ferry::catalog::DeviceFlag;
use ferry::domain::{Level, Scope};
use serde_json::Value;

use crate::helpers::*;

mod world;
use world::*;

#[derive(Clone, Copy, Debug)]
enum Guard {
    /// No credential: health, metrics, the document, tus discovery, the web gallery's page
    /// and sign-in (which show nothing without a session: tests/api/web).
    Open,
    /// A URL Ferry signed.
    Signed,
    Table(Endpoint),
}

use Endpoint::*;
use Guard::{Open, Signed, Table};

const GRANT: &str = "/device/1/media_grant/{media_grant_id}";

/// Every operation and its guard: a route served without a row here fails the test.
const ROUTES: &[(&str, &str, Guard)] = &[
    ("get", "/healthz", Open),
    ("get", "/readyz", Open),
    ("get", "/metrics", Open),
    ("get", "/openapi.json", Open),
    ("options", "/files", Open),
    ("options", "/files/", Open),
    ("options", "/files/{id}", Open),
    ("put", "/signed/blob", Signed),
    ("get", "/signed/blob/{sha256}", Signed),
    ("put", "/signed/part", Signed),
    ("put", "/signed/file", Signed),
    ("put", "/signed/gallery", Signed),
    ("post", "/signed/session/{ulid}", Signed),
    ("post", "/device/1/current", Table(DeviceStatus)),
    ("post", "/device/1/media_grant", Table(DeviceStatus)),
    ("post", "/device/1/media_grant/{media_grant_id}/upload", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/s3_object", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart_complete", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/multipart_abort", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media/{media_id}", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/download", Table(DeviceFamily)),
    ("post", "/device/1/media_grant/{media_grant_id}/media_list", Table(DeviceFamily)),
    ("delete", "/device/1/media_grant/{media_grant_id}/media/{media_id}", Table(DeviceMediaDelete)),
    ("get", "/api/users/multipart_upload_start/{file_id}", Table(Multipart)),
    ("post", "/api/users/multipart_upload_complete/{file_id}", Table(Multipart)),
    ("delete", "/api/users/multipart_upload/{file_id}", Table(Multipart)),
    ("get", "/api/users/uploads/{file_id}", Table(Multipart)),
    ("get", "/api/users/files/{file_id}", Table(OwnFile)),
    ("delete", "/api/users/files/{file_id}", Table(FileDelete)),
    ("post", "/api/upload/id", Table(SessionUpload)),
    ("delete", "/api/upload/id", Table(SessionUpload)),
    ("delete", "/api/upload/id/{ulid}", Table(SessionUpload)),
    ("post", "/api/file/{ulid}", Table(SessionUpload)),
    ("post", "/api/upload/remote", Table(SessionUpload)),
    ("get", "/api/upload/remote/{job_id}", Table(SessionUpload)),
    ("post", "/api/upload/blob", Table(SessionUpload)),
    ("post", "/upload/id", Table(SessionUpload)),
    ("delete", "/upload/id", Table(SessionUpload)),
    ("delete", "/upload/id/{ulid}", Table(SessionUpload)),
    ("post", "/file/{ulid}", Table(SessionUpload)),
    ("post", "/upload/remote", Table(SessionUpload)),
    ("get", "/upload/remote/{job_id}", Table(SessionUpload)),
    ("post", "/upload/blob", Table(SessionUpload)),
    ("get", "/api/files/{file_id}", Table(OwnFile)),
    ("delete", "/api/files/{file_id}", Table(FileDelete)),
    ("get", "/api/files/{file_id}/rendition", Table(OwnFile)),
    ("get", "/api/gallery/{device}/paths", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events/{event_id}/file", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events/{event_id}/thumbnail", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/events/{event_id}/rendition", Table(GalleryRead)),
    ("get", "/api/gallery/{device}/stats", Table(GalleryRead)),
    ("delete", "/api/gallery/{device}/events/{event_id}", Table(GalleryDelete)),
    ("post", "/api/gallery/{device}/upload", Table(GalleryUpload)),
    ("get", "/api/gallery/{device}/upload-url", Table(GalleryUpload)),
    ("post", "/api/gallery/{device}/harvest", Table(GalleryUpload)),
    ("post", "/api/gallery/{device}/pull/{event_id}", Table(GalleryUpload)),
    ("post", "/files", Table(Tus)),
    ("post", "/files/", Table(Tus)),
    ("head", "/files/{id}", Table(Tus)),
    ("patch", "/files/{id}", Table(Tus)),
    ("delete", "/files/{id}", Table(Tus)),
    ("post", "/files/{id}", Table(Tus)),
    ("get", "/api/me", Table(AccountInfo)),
    ("get", "/api/usage", Table(UsageRead)),
    ("get", "/api/devices", Table(DevicesRead)),
    ("get", "/api/timeline", Table(TimelineRead)),
    ("get", "/api/sources", Table(TimelineRead)),
    ("get", "/api/timeline/{item}/{variant}", Table(TimelineRead)),
    ("delete", "/api/timeline/{item}", Table(TimelineDelete)),
    ("get", "/", Open),
    ("get", "/web/", Open),
    ("get", "/web/assets/{name}", Open),
    ("get", "/web/signin", Open),
    ("post", "/web/signin", Open),
    ("post", "/web/signout", Open),
];

#[tokio::test]
async fn every_route_refuses_every_credential_its_guard_does_not_admit_and_shows_nothing() {
    let app = spawn_app_with(|layer| {
        layer.insert("remote_allow", "127.0.0.1/32".into());
    })
    .await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.clone(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = served.difference(&table).collect();
    assert!(missing.is_empty(), "routes served but missing from the table: {missing:?}");
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(stale.is_empty(), "rows for routes no longer served: {stale:?}");

    let world = World::build(&app).await;
    let mut verdicts = Verdicts { world: &world, doc: &doc, failures: Vec::new(), tried: 0 };
    let victim_key = Cred::DeviceKey(world.cam.key.clone());
    let victim_token = bearer(&world.victim.token);
    for &(method, path, guard) in ROUTES {
        match guard {
            Open => {}
            Signed => signed_cases(&mut verdicts, method, path).await,
            Table(endpoint) => {
                let rule = rule_for(endpoint);
                let key_ok = matches!(rule.accepts, Accepts::DeviceKey | Accepts::DeviceKeyOrToken);
                let token_ok = matches!(rule.accepts, Accepts::Token | Accepts::DeviceKeyOrToken);
                // the device family answers an unknown credential 403, as its documentation says
                let anonymous = if key_ok { 403 } else { 401 };
                let v = &mut verdicts;
                let unauthorized = Some("unauthorized");
                v.expect(method, path, "no credential", &Cred::None, anonymous, unauthorized).await;
                v.expect(method, path, "forged token", &bearer("fry_t_forged"), anonymous, unauthorized).await;
                let basic = Cred::Header(format!("Basic {}", world.victim.token));
                v.expect(method, path, "unknown scheme", &basic, anonymous, unauthorized).await;
                v.expect(method, path, "revoked token", &bearer(&world.revoked_token), anonymous, unauthorized).await;
                if key_ok {
                    let forged = Cred::DeviceKey("fry_d_forged".into());
                    v.expect(method, path, "forged device key", &forged, 403, unauthorized).await;
                } else {
                    v.expect(method, path, "a device key for a token", &victim_key, 403, Some("forbidden")).await;
                }
                if !token_ok {
                    v.expect(method, path, "a token for a device key", &victim_token, 403, unauthorized).await;
                }
                if token_ok && let Some(scope) = rule.scope {
                    let others = Scope::ALL.into_iter().filter(|s| *s != scope);
                    let token = app.token_for(world.victim.user_id, &scopes_text(others)).await;
                    v.expect(method, path, "token without the scope", &bearer(&token), 403, Some("forbidden")).await;
                }
                if token_ok && rule.min_level > Level::Viewer {
                    let below = bearer(&world.viewer_token);
                    v.expect(method, path, "user below the level", &below, 403, Some("forbidden")).await;
                }
                if names_victims_item(method, path) && token_ok {
                    let mallory = bearer(&world.mallory_token);
                    v.expect(method, path, "another account's token", &mallory, 404, None).await;
                    let browser = &world.mallory_web;
                    v.expect(method, path, "another account's web session", browser, 404, None).await;
                }
                // routes a web session may not call refuse even the page's own, CSRF token and all
                if token_ok && !rule.web_ok {
                    let browser = &world.victim_web;
                    v.expect(method, path, "web session where only tokens go", browser, 403, Some("forbidden")).await;
                }
                // a signed-in browser's cookie without the page's token: another site's request
                if token_ok && rule.web_ok && !["get", "head", "options"].contains(&method) {
                    let forged = world.victim_web.without_csrf();
                    v.expect(method, path, "web session without CSRF token", &forged, 403, Some("csrf_refused")).await;
                }
                if names_victims_item(method, path) && key_ok && path.contains("{media_grant_id}") {
                    let mallory = Cred::DeviceKey(world.mallory_device_key.clone());
                    v.expect(method, path, "another account's device", &mallory, 404, Some("no_such_grant")).await;
                }
            }
        }
    }

    // a disabled grant, then a disabled device (refused within the principal cache's lifetime)
    let grant_id = world.cam.grant.parse().unwrap();
    app.catalog().set_grant_disabled(grant_id, true).await.unwrap();
    for &(method, path, _) in ROUTES.iter().filter(|(_, p, _)| p.starts_with(GRANT)) {
        verdicts.expect(method, path, "disabled grant", &victim_key, 403, Some("grant_disabled")).await;
    }
    app.catalog().set_grant_disabled(grant_id, false).await.unwrap();
    app.catalog().set_device_flag(world.device_id, DeviceFlag::Disabled, true).await.unwrap();
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL + std::time::Duration::from_millis(50)).await;
    for &(method, path, guard) in ROUTES {
        let Table(endpoint) = guard else { continue };
        let rule = rule_for(endpoint);
        if rule.accepts == Accepts::Token {
            continue;
        }
        if rule.disabled_device_ok {
            // its own status: answered, with the flags saying it is disabled
            verdicts.admitted(method, path, "disabled device, own status", &victim_key).await;
        } else {
            verdicts.expect(method, path, "disabled device", &victim_key, 412, Some("device_disabled")).await;
        }
    }
    app.catalog().set_device_flag(world.device_id, DeviceFlag::Disabled, false).await.unwrap();
    tokio::time::sleep(ferry::auth::PRINCIPAL_TTL + std::time::Duration::from_millis(50)).await;

    // what the rule admits passes (last, and deletes after the rest: they remove the items)
    let (deletes, others): (Vec<_>, Vec<_>) = ROUTES.iter().partition(|(method, ..)| *method == "delete");
    for &&(method, path, guard) in others.iter().chain(&deletes) {
        match guard {
            Open => verdicts.admitted(method, path, "no credential needed", &Cred::None).await,
            Signed => {}
            Table(endpoint) => {
                let rule = rule_for(endpoint);
                if rule.accepts != Accepts::Token {
                    verdicts.admitted(method, path, "the device's key", &victim_key).await;
                }
                // the page's own session, with its CSRF token (deletes: the token's turn below)
                if rule.accepts != Accepts::DeviceKey && rule.web_ok && method != "delete" {
                    verdicts.admitted(method, path, "a signed-in browser", &world.victim_web).await;
                }
                if rule.accepts != Accepts::DeviceKey {
                    let scope = rule.scope.unwrap_or(Scope::Basic);
                    let token = app.token_for(world.victim.user_id, scope.as_str()).await;
                    verdicts.admitted(method, path, "a token with just the scope", &bearer(&token)).await;
                }
            }
        }
    }
    let Verdicts { failures, tried, .. } = verdicts;
    assert!(failures.is_empty(), "{} of {tried} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(tried > 400, "only {tried} cases tried");
}

/// A signed target: no signature, a tampered one (another user's id put in, or the signature
/// itself changed) and an expired one are each refused 403.
async fn signed_cases(verdicts: &mut Verdicts<'_>, method: &str, path: &str) {
    let world = verdicts.world;
    let victim = world.victim.user_id.to_string();
    let (target, params): (String, Vec<(&str, String)>) = match path {
        "/signed/blob/{sha256}" => (format!("/signed/blob/{}", world.content_hash), vec![]),
        "/signed/session/{ulid}" => (format!("/signed/session/{}", world.id("ulid")), vec![("user", victim.clone())]),
        "/signed/part" => {
            (path.to_owned(), vec![("upload", "u".into()), ("part", "1".into()), ("user", victim.clone())])
        }
        _ => (path.to_owned(), vec![("user", victim.clone()), ("file", MARKER.into())]),
    };
    let signer = &world.app.state.signer;
    let base = &world.app.address;
    let method_name = method.to_uppercase();
    let now = ferry::clock::now_secs();
    let valid = signer.sign(base, &method_name, &target, &params, now + 600);
    let expired = signer.sign(base, &method_name, &target, &params, now - 60);
    let mut flipped = valid.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let mut cases = vec![
        ("no signature", format!("{base}{target}"), "invalid_signature"),
        ("signature changed", flipped, "invalid_signature"),
        ("expired", expired, "expired_signature"),
    ];
    if valid.contains(&format!("user={victim}&")) {
        cases.push((
            "another user put in",
            valid.replace(&format!("user={victim}&"), "user=999&"),
            "invalid_signature",
        ));
    }
    for (case, url, code) in cases {
        verdicts.expect_at(method, path, &url, case, &Cred::None, 403, Some(code)).await;
    }
}
