//! The page's scripts and styles, compiled into the binary (nothing fetched at run time, no
//! build step): each file is served with its type and revalidated by its ETag.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// Name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("ferry.css", "text/css; charset=utf-8", include_str!("assets/ferry.css")),
    ("gallery.js", "text/javascript; charset=utf-8", include_str!("assets/gallery.js")),
];

/// One of the page's files.
#[utoipa::path(get, path = "/web/assets/{name}", tag = crate::http::openapi::tag::WEB,
    params(("name" = String, Path, description = "ferry.css, gallery.js, …")),
    responses(
        (status = 200, description = "The file", content_type = "text/plain"),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 404, description = "No such file"),
    ))]
pub(super) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, content_type, body) =
        ASSETS.iter().find(|(n, ..)| *n == name).ok_or_else(|| ApiError::not_found(format!("no web asset {name}")))?;
    // the binary's version names the bytes: a new release is a new tag
    let etag =
        format!("\"{}-{}\"", env!("CARGO_PKG_VERSION"), crate::auth::secrets::hash(body).get(..16).unwrap_or_default());
    let unchanged = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut response = if unchanged { StatusCode::NOT_MODIFIED.into_response() } else { (*body).into_response() };
    let answer = response.headers_mut();
    answer.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a header value"));
    answer.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    answer.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
