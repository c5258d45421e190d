//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, collected from the
//! handlers' `#[utoipa::path]` as the router is built ([`ApiRouter`] registers a route and its
//! description together, so one cannot exist without the other).
//!
//! Handlers describe what is theirs: success answers, request bodies, parameters and the
//! refusals particular to them. What every route of a family shares is added here once, from
//! the operation's tag: the family's error body on every refusal, the refusals every route of
//! the family can answer, and the family's credential.

use std::collections::BTreeMap;

use axum::response::IntoResponse;
use serde_json::json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema};

use super::AppState;
use super::error::{ErrorCode, Family};

/// A router whose routes carry their description (see the module documentation).
pub type ApiRouter = utoipa_axum::router::OpenApiRouter<AppState>;

/// Operation tags: one per API family (its error shape and credential follow from it).
pub mod tag {
    pub const DEVICE: &str = "device";
    pub const MULTIPART: &str = "multipart";
    pub const SESSION: &str = "session";
    pub const GALLERY: &str = "gallery";
    pub const TUS: &str = "tus";
    /// Signed URLs Ferry hands out: the signature is the credential.
    pub const SIGNED: &str = "signed";
    /// Ferry's own token routes (`/api/me`, `/api/usage`).
    pub const ACCOUNT: &str = "account";
    /// Health, metrics and this document: no credential.
    pub const SERVER: &str = "server";
    /// The web gallery's pages and sign-in (the `ferry_session` cookie, not a token).
    pub const WEB: &str = "web";
}

/// Security scheme names.
pub mod scheme {
    /// `Authorization: Bearer <token>`.
    pub const BEARER: &str = "bearer";
    /// `Authorization: Token <token>` or `Authorization: Private-Token <token>`.
    pub const TOKEN_HEADER: &str = "token_header";
    /// A device's key in the query string (or the JSON body, which OpenAPI cannot say).
    pub const DEVICE_KEY: &str = "device_session_key";
    /// A user's API token in the query string (or the JSON body) of a device-family call.
    pub const USER_KEY: &str = "user_session_key";
    /// A URL Ferry signed: `expires` and `sig` in its query.
    pub const SIGNED_URL: &str = "signed_url";
    /// The web gallery's `ferry_session` cookie (`/web/signin`).
    pub const WEB_SESSION: &str = "web_session";
    /// `FERRY_METRICS_TOKEN`, when set.
    pub const METRICS_TOKEN: &str = "metrics_token";
}

/// Error body schema names, one per family shape (API.md "Conventions").
const PLAIN_ERROR: &str = "Error";
const SESSION_ERROR: &str = "SessionError";
const GALLERY_ERROR: &str = "GalleryError";

/// The document as served: built once with the router.
#[derive(Clone)]
struct DocumentJson(bytes::Bytes);

/// The routes with `/openapi.json` among them, serving their finished document.
pub fn serve_document(routes: ApiRouter) -> axum::Router<AppState> {
    let (router, doc) = document(routes);
    let json = serde_json::to_vec(&doc).expect("an OpenAPI document serialises");
    router.layer(axum::Extension(DocumentJson(json.into())))
}

/// The finished document and the routes it describes, `/openapi.json` among them.
pub fn document(routes: ApiRouter) -> (axum::Router<AppState>, OpenApi) {
    let (router, mut doc) = routes.routes(utoipa_axum::routes!(openapi_json)).split_for_parts();
    doc.info.title = "Ferry".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Self-hosted media ingest server: four device upload API families (device grant + volume, \
         presigned multipart, upload sessions, device gallery) and tus over one \
         content-addressed, deduplicated store. The wire contract is docs/API.md."
            .into(),
    );
    add_components(doc.components.get_or_insert_with(Components::new));
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            complete(path, method, operation);
        }
    }
    unique_operation_ids(&mut doc);
    (router, doc)
}

/// Each operation of a path with its method's name.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// The document, as built with the router.
#[utoipa::path(get, path = "/openapi.json", tag = tag::SERVER, responses(
    (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json"),
))]
async fn openapi_json(axum::Extension(doc): axum::Extension<DocumentJson>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.0)
}

/// Adds what every operation of its family shares (see the module documentation).
fn complete(path: &str, method: &str, operation: &mut Operation) {
    let family = operation.tags.as_ref().and_then(|t| t.first()).cloned();
    let family = family.unwrap_or_else(|| panic!("{method} {path} has no family tag"));
    let error_schema = match family.as_str() {
        tag::SESSION => SESSION_ERROR,
        tag::GALLERY => GALLERY_ERROR,
        _ => PLAIN_ERROR,
    };
    let requirements: Vec<serde_json::Value> =
        operation.security.iter().flatten().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
    // `security(())`: no credential at all (tus discovery)
    let anonymous =
        operation.security.is_some() && requirements.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty()));
    // a family's signed target answers in the family's shape but takes only its signature
    let signed = family == tag::SIGNED || requirements.iter().any(|r| r.get(scheme::SIGNED_URL).is_some());
    let unavailable = ("503", "A dependency (catalog, blob store) is unreachable; retry after Retry-After");
    let mut shared: Vec<(&str, &str)> = match family.as_str() {
        _ if anonymous => vec![],
        tag::SERVER | tag::WEB => vec![],
        _ if signed => vec![
            ("400", "Malformed input, or a body that differs from what the URL is bound to"),
            ("403", "The signature is invalid, altered or expired"),
            unavailable,
        ],
        tag::DEVICE => vec![
            ("400", "Malformed input (a bad hash, path or body)"),
            ("403", "No valid device_session_key, or not allowed for this grant"),
            ("413", "The JSON body is over 16 MiB"),
            unavailable,
        ],
        _ => vec![
            ("400", "Malformed input"),
            ("401", "No valid API token"),
            ("403", "The token's level or scopes do not allow this"),
            unavailable,
        ],
    };
    // the device's own status (`current`, `media_grant`) answers a disabled device with 200
    if family == tag::DEVICE && path.contains("{media_grant_id}") {
        shared.extend([("404", "No such grant or item in this account"), ("412", "The device is disabled")]);
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses.entry(status.into()).or_insert_with(|| ResponseBuilder::new().description(description).into());
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(answer) = response else { continue };
        let Ok(code) = status.parse::<u16>() else { continue };
        if answer.description.is_empty() {
            let reason = axum::http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason());
            answer.description = reason.unwrap_or("Answer").into();
        }
        // a HEAD answer has no body
        if code >= 400 && answer.content.is_empty() && method != "head" {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name(error_schema))).build();
            answer.content.insert("application/json".into(), body.into());
        }
    }
    if operation.security.is_none() {
        let schemes: &[&str] = match family.as_str() {
            tag::SERVER => &[],
            tag::DEVICE => &[scheme::DEVICE_KEY],
            tag::SIGNED => &[scheme::SIGNED_URL],
            // the page's own routes answer without a session too (the sign-in form)
            tag::WEB => &["", scheme::WEB_SESSION],
            _ => &[scheme::BEARER, scheme::TOKEN_HEADER, scheme::WEB_SESSION],
        };
        if !schemes.is_empty() {
            let requirement = |s: &str| match s {
                "" => SecurityRequirement::default(),
                s => SecurityRequirement::new(s, Vec::<String>::new()),
            };
            let any_of = schemes.iter().map(|s| requirement(s)).collect();
            operation.security = Some(any_of);
        }
    }
    // ids a generated client names its methods by: `session_register`, `tus_patch`, …
    let id = operation.operation_id.get_or_insert_with(String::new);
    if !id.starts_with(&format!("{family}_")) {
        *id = format!("{family}_{id}");
    }
}

/// The session family is served under `/api` and at the root: the same handler twice, so
/// the root copy's id says so. Any other repeated id is a mistake in a description.
fn unique_operation_ids(doc: &mut OpenApi) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            let Some(id) = operation.operation_id.as_mut() else { continue };
            if let Some(first) = seen.get(id.as_str()) {
                assert_eq!(
                    first.strip_prefix("/api"),
                    Some(path.as_str()),
                    "{method} {path} repeats the id {id} of {first}"
                );
                id.push_str("_unprefixed");
            }
            seen.insert(id.clone(), path.clone());
        }
    }
}

fn add_components(components: &mut Components) {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let error = |extra: &[(&str, Schema)]| {
        let mut body = ObjectBuilder::new()
            .property(
                "error",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes.clone()))
                    .description(Some("Stable snake_case code")),
            )
            .required("error")
            .property(
                "message",
                ObjectBuilder::new().schema_type(Type::String).description(Some("What went wrong, for people")),
            )
            .required("message");
        for (name, schema) in extra {
            body = body.property(*name, schema.clone()).required(*name);
        }
        Schema::from(body.description(Some("An error (a 409 also carries the current state's fields)")))
    };
    let constant = |schema_type: Type, value: serde_json::Value| {
        Schema::from(ObjectBuilder::new().schema_type(schema_type).enum_values(Some([value])))
    };
    components.schemas.insert(PLAIN_ERROR.into(), error(&[]).into());
    // referenced by name from optional raw bodies (tus creation), not only through routes
    components.schemas.insert("Binary".into(), <Binary as utoipa::PartialSchema>::schema());
    let session_extra = [
        ("status", constant(Type::String, json!("error"))),
        ("user_message", Schema::from(ObjectBuilder::new().schema_type(Type::String))),
    ];
    components.schemas.insert(SESSION_ERROR.into(), error(&session_extra).into());
    let gallery_extra = [("success", constant(Type::Boolean, json!(false)))];
    components.schemas.insert(GALLERY_ERROR.into(), error(&gallery_extra).into());

    let header_key = |name: &str, description: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, description)))
    };
    let query_key = |name: &str, description: &str| {
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(name, description)))
    };
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An API token (`ferry admin token create`); scheme name case-insensitive"))
        .build();
    components.add_security_scheme(scheme::BEARER, SecurityScheme::Http(bearer));
    components.add_security_scheme(
        scheme::TOKEN_HEADER,
        header_key("Authorization", "`Token <token>` or `Private-Token <token>`: the same API token"),
    );
    components.add_security_scheme(
        scheme::DEVICE_KEY,
        query_key("device_session_key", "A device's key; also accepted as a JSON body field"),
    );
    components.add_security_scheme(
        scheme::USER_KEY,
        query_key("user_session_key", "The owner's API token; also accepted as a JSON body field"),
    );
    components.add_security_scheme(
        scheme::SIGNED_URL,
        query_key("sig", "A URL Ferry signed (with its `expires`); use it exactly as handed out"),
    );
    components.add_security_scheme(
        scheme::WEB_SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "ferry_session",
            "A signed-in browser (the web gallery); changes also need the page's X-CSRF-Token",
        ))),
    );
    let metrics = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("`FERRY_METRICS_TOKEN`, required only when it is set"))
        .build();
    components.add_security_scheme(scheme::METRICS_TOKEN, SecurityScheme::Http(metrics));
}

/// The routes of a family's router, answering errors in the family's shape. The document
/// picks an operation's error body by its tag, so the tag must name the same family.
pub fn family_router(family: Family, routes: ApiRouter) -> ApiRouter {
    let (router, mut doc) = routes.split_for_parts();
    let shape_tag = match family {
        Family::Session => Some(tag::SESSION),
        Family::Gallery => Some(tag::GALLERY),
        Family::Plain => None,
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            let tag = operation.tags.iter().flatten().next().map(String::as_str);
            let agrees = match shape_tag {
                Some(expected) => tag == Some(expected),
                None => tag != Some(tag::SESSION) && tag != Some(tag::GALLERY),
            };
            assert!(agrees, "{method} {path} is tagged {tag:?} but answers in the {family:?} error shape");
        }
    }
    let mut layered = ApiRouter::from(family.layer(router));
    *layered.get_openapi_mut() = doc;
    layered
}

/// A body of raw bytes (an upload's content), as `content = Binary` of a request body or
/// response.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
        let binary =
            ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)));
        Schema::from(binary).into()
    }
}

impl utoipa::ToSchema for Binary {}

/// A string that is one of `names`.
fn one_of_names(names: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    let names: Vec<&str> = names.into_iter().collect();
    Schema::from(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names))).into()
}

/// `#[schema(value_type = MediaTypeName, inline)]`: a [`MediaType`](crate::domain::MediaType)
/// by name, the names taken from the type.
pub struct MediaTypeName;

impl utoipa::PartialSchema for MediaTypeName {
    fn schema() -> RefOr<Schema> {
        one_of_names(crate::domain::MediaType::ALL.map(|t| t.as_str()))
    }
}

impl utoipa::ToSchema for MediaTypeName {}

/// `#[schema(value_type = LevelName, inline)]`: a user's [`Level`](crate::domain::Level) by name.
pub struct LevelName;

impl utoipa::PartialSchema for LevelName {
    fn schema() -> RefOr<Schema> {
        one_of_names(crate::domain::Level::ALL.map(|l| l.as_str()))
    }
}

impl utoipa::ToSchema for LevelName {}
