//! The web gallery (issue 25): the page at `/` and `/web/`, its embedded assets, and signing
//! in (a one-time link from `ferry admin web-link`, or an API token typed into the form) and
//! out. A signed-in browser carries the `ferry_session` cookie (HttpOnly, SameSite=Strict),
//! which the API routes accept as its user, within the scopes it signed in with; every
//! change it makes needs the page's CSRF token in `X-CSRF-Token` (see `extract`).

mod assets;
mod pages;
mod signin;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::{SESSION_COOKIE, cookie};
use super::openapi::{ApiRouter, tag};
use crate::auth::{Presented, Principal};
use crate::catalog::{User, WebSession};

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(home))
        .routes(routes!(web_home))
        .routes(routes!(assets::asset))
        .routes(routes!(signin::confirm_link, signin::sign_in))
        .routes(routes!(signin::sign_out))
}

/// The page's rules for the browser: its own files only, never inside another site's frame,
/// and no Referer (a sign-in link's secret is in its URL).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
                                       style-src 'self'; script-src 'self'; frame-ancestors 'none'; \
                                       form-action 'self'; base-uri 'none'";

/// An HTML page with the headers every page carries.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The signed-in user of this browser, if its cookie names a live session.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<(User, WebSession, String)>, ApiError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let presented = Presented { web_session: Some(secret.to_owned()), ..Presented::default() };
    Ok(match state.principals.resolve(state.catalog.as_ref(), &presented).await? {
        Some(Principal::Web { user, session }) => Some((user, session, secret.to_owned())),
        _ => None,
    })
}

/// The gallery for a signed-in browser, else the sign-in form (never any data).
#[utoipa::path(get, path = "/", tag = tag::WEB, operation_id = "page", responses(
    (status = 200, description = "The gallery page, or the sign-in form without a session", content_type = "text/html"),
))]
async fn home(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = match signed_in(&state, &headers).await? {
        Some((user, _, secret)) => pages::gallery(&user.name, &crate::auth::web::csrf_token(&secret)),
        None => pages::sign_in(None),
    };
    Ok(html(StatusCode::OK, page))
}

/// The same page under `/web/`.
#[utoipa::path(get, path = "/web/", tag = tag::WEB, operation_id = "page_under_web", responses(
    (status = 200, description = "As `/`", content_type = "text/html"),
))]
async fn web_home(state: axum::extract::State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    home(state, headers).await
}
