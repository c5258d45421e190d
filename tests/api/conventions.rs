//! API.md "Conventions": JSON errors everywhere, health, CORS, request ids.

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = spawn_app().await;
    expect_error(app.client.get(app.url("/no/such/thing")).send().await.unwrap(), 404, "not_found").await;
    expect_error(app.client.get(app.url("/device/1/current")).send().await.unwrap(), 405, "method_not_allowed").await;
}

#[tokio::test]
async fn malformed_json_is_a_json_400_not_a_plain_422() {
    let app = spawn_app().await;
    let owner = app.user("alice", ferry::domain::Level::Uploader, "upload").await;
    let device = app.device(&owner, "cam").await;
    let url = app.url(&format!("/device/1/current?device_session_key={}", device.key));
    for body in ["{not json", "[1,", "\"unterminated"] {
        let response =
            app.client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        expect_error(response, 400, "invalid_json").await;
    }
    // a JSON value of the wrong shape is also a JSON 400
    let response = app
        .client
        .post(app.url("/device/1/media_grant"))
        .body(format!("{{\"device_session_key\":\"{}\",\"version\":", device.key))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_json").await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(response.headers().get("x-request-id").is_some());
    let response = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn cors_preflight_for_configured_origins_exposes_upload_headers() {
    let app = spawn_app_with(|layer| {
        layer.insert("cors_origins", "https://gallery.example".into());
    })
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/signed/blob"))
        .header("origin", "https://gallery.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://gallery.example");
    let allowed = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(allowed.contains("PUT"), "{allowed}");

    let simple = app.client.get(app.url("/healthz")).header("origin", "https://gallery.example").send().await.unwrap();
    let exposed = simple.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    for header in ["etag", "location", "upload-offset"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    let other = app.client.get(app.url("/healthz")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
