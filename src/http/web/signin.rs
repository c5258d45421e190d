//! Signing a browser in and out. Both sign-in ways end the same: a new session, its secret in
//! the `ferry_session` cookie, a redirect to `/`. Failures answer the sign-in form again for a
//! browser (it asked for HTML) and the JSON error for anything else.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{html, pages};
use crate::auth::secrets;
use crate::auth::web::{LINK_PARAMETER, csrf_token, new_session};
use crate::catalog::NewWebSession;
use crate::domain::{ErrorCode, Scope, ScopeSet};
use crate::http::AppState;
use crate::http::body_idle::stalled;
use crate::http::error::ApiError;
use crate::http::extract::{CSRF_HEADER, QueryParams, SESSION_COOKIE, cookie};

/// A sign-in or sign-out form is a few hundred bytes.
const FORM_LIMIT: usize = 16 * 1024;

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(super) struct LinkQuery {
    /// The link's secret, as `ferry admin web-link` printed it.
    link: Option<String>,
}

// Schema only: the forms are read field by field (`read_form`).
/// Sign in with a link's secret or an API token (one of them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SignInForm {
    /// The secret of a link from `ferry admin web-link` (what follows `link=` in it).
    link: Option<String>,
    /// One of the user's API tokens.
    token: Option<String>,
}

// Schema only, as `SignInForm`.
/// Signing out: the page's CSRF token (or send it as `X-CSRF-Token`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SignOutForm {
    csrf: Option<String>,
}

/// A sign-in link lands here: a page that names the account and spends the link with a POST
/// when the person clicks (a link preview that only fetches it leaves it unused, and a link
/// someone else sent cannot switch a browser to their account unseen).
#[utoipa::path(get, path = "/web/signin", tag = crate::http::openapi::tag::WEB, params(LinkQuery), responses(
    (status = 200, description = "The page that completes the sign-in, or the sign-in form", content_type = "text/html"),
))]
pub(super) async fn confirm_link(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<LinkQuery>,
) -> Result<Response, ApiError> {
    let Some(link) = query.link.filter(|l| !l.is_empty()) else {
        return Ok(html(StatusCode::OK, pages::sign_in(None)));
    };
    Ok(match state.catalog.web_link_user(&secrets::hash(&link)).await? {
        Some(user) => html(StatusCode::OK, pages::confirm_link(&link, &user)),
        None => html(StatusCode::OK, pages::sign_in(Some(UNUSABLE_LINK))),
    })
}

const UNUSABLE_LINK: &str = "this sign-in link is unknown, used or expired: ask for a new one";

/// Signs in with a link's secret (`link`) or an API token (`token`), form-encoded; answers
/// 303 to `/` with the session cookie.
#[utoipa::path(post, path = "/web/signin", tag = crate::http::openapi::tag::WEB,
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: the `ferry_session` cookie is set; on to `/`"),
        (status = 400, description = "Neither a link nor a token (`invalid_form`)"),
        (status = 401, description = "The link is unknown, used or expired, or the token is not valid (`unauthorized`)"),
        (status = 403, description = "The form was posted from another site (`csrf_refused`)"),
    ))]
pub(super) async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    match open_session(&state, request).await {
        Ok(secret) => signed_in_redirect(&state, &secret),
        Err(error) => refusal(&headers, error),
    }
}

async fn open_session(state: &AppState, request: Request) -> Result<String, ApiError> {
    refuse_cross_site(request.headers())?;
    let form = read_form(request.into_body()).await?;
    let field = |name: &str| form.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str());
    let session = new_session();
    let expires_ms = crate::clock::now_ms().saturating_add(state.config.web_session_ttl.as_millis() as i64);
    if let Some(link) = field(LINK_PARAMETER) {
        let scopes: ScopeSet = [Scope::Read, Scope::Upload, Scope::Delete].into_iter().collect();
        let new = NewWebSession { secret_hash: &session.hash, scopes, token: None, expires_ms };
        state
            .catalog
            .redeem_web_link(&secrets::hash(link), new)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, UNUSABLE_LINK))?;
    } else if let Some(token) = field("token") {
        let (token, user) = state.catalog.token_by_hash(&secrets::hash(token.trim())).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, "this API token is not valid (revoked or mistyped?)")
        })?;
        // the page may do what the token may, never more
        let new =
            NewWebSession { secret_hash: &session.hash, scopes: token.scopes, token: Some(token.token_id), expires_ms };
        state.catalog.open_web_session(user.user_id, new).await?;
    } else {
        return Err(ApiError::new(
            ErrorCode::InvalidForm,
            "sign in with a link or an API token (form field link or token)",
        ));
    }
    Ok(session.secret)
}

/// Ends this browser's session: the cookie goes and the session is refused everywhere within
/// a second. Needs the page's CSRF token (form field `csrf` or `X-CSRF-Token`).
#[utoipa::path(post, path = "/web/signout", tag = crate::http::openapi::tag::WEB,
    request_body(content = SignOutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out (or was not signed in); on to `/`"),
        (status = 403, description = "Without the page's CSRF token (`csrf_refused`)"),
    ))]
pub(super) async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let ended = async {
        let Some(secret) = cookie(&headers, SESSION_COOKIE).map(str::to_owned) else { return Ok(()) };
        let form = read_form(request.into_body()).await?;
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| form.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v))
            .unwrap_or_default();
        if !secrets::same(&sent, &csrf_token(&secret)) {
            return Err(ApiError::new(ErrorCode::CsrfRefused, "signing out needs the page's CSRF token"));
        }
        if let Some((session, _)) = state.catalog.web_session_by_hash(&secrets::hash(&secret)).await? {
            state.catalog.revoke_web_session(session.session_id).await?;
        }
        Ok(())
    }
    .await;
    match ended {
        Ok(()) => redirect_home(cookie_header(&state, "", 0)),
        Err(error) => refusal(&headers, error),
    }
}

fn signed_in_redirect(state: &AppState, secret: &str) -> Response {
    redirect_home(cookie_header(state, secret, state.config.web_session_ttl.as_secs()))
}

fn redirect_home(set_cookie: HeaderValue) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    headers.insert(header::SET_COOKIE, set_cookie);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session cookie: script cannot read it, another site's requests never carry it, and
/// behind HTTPS it only travels encrypted. An empty value with age 0 removes it.
fn cookie_header(state: &AppState, secret: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    let value = format!("{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&value).expect("a cookie of hex and fixed text is a header value")
}

/// A form posted by another site's page (a login-CSRF attempt), as the browser tells: its
/// `Sec-Fetch-Site`, else an `Origin` that is not this host.
fn refuse_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let cross = match (text(HeaderName::from_static("sec-fetch-site")), text(header::ORIGIN)) {
        // `same-site` is a sibling host, which is another site's page here too
        (Some(site), _) => !["same-origin", "none"].contains(&site),
        (None, Some(origin)) => {
            let host = origin.split_once("://").map(|(_, host)| host);
            host.is_none() || host != text(header::HOST)
        }
        (None, None) => false,
    };
    if cross {
        return Err(ApiError::new(ErrorCode::CsrfRefused, "a sign-in form posted from another site is refused"));
    }
    Ok(())
}

async fn read_form(body: Body) -> Result<Vec<(String, String)>, ApiError> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|e| {
        stalled(&e)
            .unwrap_or_else(|| ApiError::new(ErrorCode::TooLarge, format!("the form exceeds {FORM_LIMIT} bytes")))
    })?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The sign-in form again with the reason for a browser; the JSON error for anyone else.
fn refusal(headers: &HeaderMap, error: ApiError) -> Response {
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && error.status.is_client_error() {
        return html(error.status, pages::sign_in(Some(&error.message)));
    }
    error.into_response()
}
