//! Device grant + volume family (API.md §1), under `/device/1`. Device clients send their
//! `device_session_key` in the query string or the JSON body; [`call::DeviceCall`] finds it.
//! One file per group of operations: identity, upload, multipart, media, sync.

mod call;
mod identity;
mod media;
mod mount;
mod multipart;
mod sync;
mod upload;

use axum::Router;
use axum::routing::post;

use super::AppState;

pub fn router() -> Router<AppState> {
    let grant = |op: &str| format!("/media_grant/{{media_grant_id}}/{op}");
    Router::new()
        .route("/current", post(identity::current))
        .route("/media_grant", post(identity::media_grants))
        .route(&grant("upload"), post(upload::upload))
        .route(&grant("s3_object"), post(upload::s3_object))
        .route(&grant("multipart"), post(multipart::start))
        .route(&grant("multipart_complete"), post(multipart::complete))
        .route(&grant("multipart_abort"), post(multipart::abort))
        .route(&grant("media"), post(media::create))
        .route(&grant("media/{media_id}"), post(media::update).delete(media::delete))
        .route(&grant("download"), post(sync::download))
        .route(&grant("media_list"), post(sync::media_list))
}
