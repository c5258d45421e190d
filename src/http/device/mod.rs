//! Device grant + volume family (API.md §1), under `/device/1`. Device clients send their
//! `device_session_key` in the query string or the JSON body; [`call::DeviceCall`] finds it.

mod call;
mod identity;

use axum::Router;
use axum::routing::post;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/current", post(identity::current))
        .route("/media_grant", post(identity::media_grants))
}
