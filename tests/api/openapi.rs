//! `GET /openapi.json` (issue 23): the document describes exactly the routes the server
//! serves, and says for each what a client needs: its credential, its answers and the error
//! body of every refusal. (Routes can only be registered with their description:
//! tests/structure.rs; schemathesis checks the answers against it in `.ci/run`.)

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "options", "head"];

async fn document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// `path` with each `{param}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("probe");
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether the router itself refused: no route for the path, or not this method.
async fn unrouted(app: &TestApp, method: &str, path: &str) -> Option<String> {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    // tus routes refuse a request without its version before routing the method
    let request = app.client.request(method.clone(), app.url(path)).header("Tus-Resumable", "1.0.0");
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let no_route = status == 404 && body["message"] == "no such route";
    (no_route || status == 405).then(|| format!("{method} {path} → {status} {body}"))
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1: {}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in paths {
        let url = concrete(path);
        for method in METHODS {
            let documented = item.get(method).is_some();
            // axum answers HEAD for every GET (documented with the GET)
            let implied = method == "head" && item.get("get").is_some();
            match (documented || implied, unrouted(&app, method, &url).await) {
                (true, Some(refusal)) => problems.push(format!("documented but not served: {refusal}")),
                (false, None) => problems.push(format!("served but not documented: {method} {path}")),
                _ => {}
            }
            operations += documented as usize;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the four families, tus, the signed targets, health, usage, metrics and the document
    assert!(operations >= 60, "only {operations} operations documented");
    for must in [
        "/device/1/media_grant/{media_grant_id}/upload",
        "/api/users/multipart_upload_start/{file_id}",
        "/api/upload/id",
        "/upload/id",
        "/api/gallery/{device}/events",
        "/files/{id}",
        "/signed/blob",
        "/healthz",
        "/api/usage",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(must), "{must} is missing from the document");
    }
}

#[tokio::test]
async fn each_operation_says_its_credential_answers_and_error_bodies() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["bearer", "token_header", "device_session_key", "user_session_key", "signed_url"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme} missing");
    }
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"].as_array().unwrap();
    assert!(codes.iter().any(|c| c == "hash_mismatch") && codes.iter().any(|c| c == "unavailable"));
    let session_error = &doc["components"]["schemas"]["SessionError"]["required"];
    assert!(session_error.as_array().unwrap().iter().any(|f| f == "user_message"));

    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
            if !ids.insert(id.clone()) {
                problems.push(format!("{name}: operationId {id} is not unique"));
            }
            let tag = operation["tags"][0].as_str().unwrap_or_default();
            if tag.is_empty() {
                problems.push(format!("{name}: no family tag"));
            }
            let open = ["/healthz", "/readyz", "/openapi.json", "/metrics"].contains(&path.as_str());
            let anonymous = operation["security"].as_array().is_none_or(|s| s.is_empty());
            if anonymous && !open && method != "options" {
                problems.push(format!("{name}: no credential described"));
            }
            let responses = operation["responses"].as_object().unwrap();
            // a form post's success is its redirect (the web gallery's sign-in and sign-out)
            if !responses.keys().any(|s| s.starts_with('2') || s == "303") {
                problems.push(format!("{name}: no success answer"));
            }
            for (status, response) in responses {
                let Ok(code) = status.parse::<u16>() else { continue };
                // a HEAD answer has no body
                if code >= 400 && method != "head" && response["content"]["application/json"]["schema"].is_null() {
                    problems.push(format!("{name}: {status} has no error body"));
                }
            }
            for param in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == param && p["in"] == "path"));
                if !declared {
                    problems.push(format!("{name}: path parameter {param} not declared"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // a family's refusals in its own shape
    let gallery = &doc["paths"]["/api/gallery/{device}/events"]["get"]["responses"]["401"];
    assert_eq!(gallery["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/GalleryError");
    let session = &doc["paths"]["/api/upload/id"]["post"]["responses"]["401"];
    assert_eq!(session["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/SessionError");
    let device = &doc["paths"]["/device/1/media_grant/{media_grant_id}/upload"]["post"];
    assert!(device["responses"]["412"].is_object(), "a disabled device's 412 is described");
    assert_eq!(device["security"][0]["device_session_key"], serde_json::json!([]));
    // the device's own status answers a disabled device 200, and tus discovery takes no credential
    assert!(doc["paths"]["/device/1/current"]["post"]["responses"]["412"].is_null());
    assert!(doc["paths"]["/files/"]["options"]["responses"]["401"].is_null());
}
