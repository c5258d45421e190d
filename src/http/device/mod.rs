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

use utoipa_axum::routes;

use super::openapi::ApiRouter;

/// The family's routes, relative to `/device/1` (the caller nests them there). No family
/// layer of its own: the plain error shape is applied above.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(identity::current))
        .routes(routes!(identity::media_grants))
        .routes(routes!(upload::upload))
        .routes(routes!(upload::s3_object))
        .routes(routes!(multipart::start))
        .routes(routes!(multipart::complete))
        .routes(routes!(multipart::abort))
        .routes(routes!(media::create))
        .routes(routes!(media::update, media::delete))
        .routes(routes!(sync::download))
        .routes(routes!(sync::media_list))
}
