//! The device gallery as a service: where a device's watched folders live, harvesting a
//! device's pull source (`index.json` → events without bytes yet) and the pull job that
//! fetches one event's file through the pipeline.
//!
//! A pull source is a [`UrlBase`]: the names its index lists are file paths under it, never
//! URLs of their own, checked when harvested (a bad name is skipped) and again by the pull
//! job (a bad name fails it); the source may be on the LAN, and only that base is allowed
//! there, so a redirect out of it is refused like any other private address.

mod events;
mod pages;
mod pull;

pub use events::{EventError, GalleryEvents, NewGalleryEvent, new_event_id};
pub use pages::PageKey;
pub use pull::{GalleryPulls, pull_dedup_key, pull_payload};

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{CatalogError, Device, Gallery, Identities, NewEvent};
use crate::clock::now_ms;
use crate::domain::{MAX_BLOB_SIZE, MediaType, ParseError};
use crate::media::sniff;
use crate::remote::{FetchError, RemotePolicy, UrlBase, fetch_small};

const INDEX_LIMIT: usize = 16 * 1024 * 1024;

/// `user`'s device `raw`: the exact device name within the account, else the id of one of
/// its devices; `None` for anything else (another user's device is not theirs to name).
pub async fn find_device(
    catalog: &dyn Identities,
    user: &crate::catalog::User,
    raw: &str,
) -> Result<Option<Device>, CatalogError> {
    catalog.account_device(user.user_id, raw).await
}

/// `<data_dir>/gallery/<user>/<device>`; its `incoming/` and `thumbnails/` are watched.
pub fn device_dir(data_dir: &Path, device: &Device) -> PathBuf {
    data_dir.join("gallery").join(device.user_id.to_string()).join(device.device_id.to_string())
}

/// Why a device's pull source could not be harvested or pulled from.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the device has no pull source")]
    NoSource,
    #[error("the pull source is not a base URL: {0}")]
    NotABase(ParseError),
    #[error("not a file of the pull source: {0}")]
    Outside(ParseError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("index.json is not a list of files: {0}")]
    BadIndex(serde_json::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The device's pull source, with the policy that allows it.
fn source(policy: &RemotePolicy, device: &Device) -> Result<(UrlBase, RemotePolicy), SourceError> {
    let raw = device.pull_url.as_deref().ok_or(SourceError::NoSource)?;
    let base = UrlBase::parse(raw).map_err(SourceError::NotABase)?;
    // the operator registered this source for this device: allow it, and nothing more
    let allowed = policy.with_base(&base);
    Ok((base, allowed))
}

#[derive(Deserialize)]
struct IndexEntry {
    name: String,
    size: Option<serde_json::Value>,
    media_type: Option<String>,
    created: Option<serde_json::Value>,
}

/// The size an index declares: a hint shown until the pull records the real one. One that
/// no file can have (negative, fractional, beyond an i64) counts as unknown, 0.
fn declared_size(value: Option<&serde_json::Value>) -> u64 {
    value.and_then(serde_json::Value::as_u64).filter(|size| *size <= MAX_BLOB_SIZE).unwrap_or(0)
}

fn created_ms(value: Option<&serde_json::Value>) -> i64 {
    use time::format_description::well_known::Rfc3339;
    match value {
        Some(serde_json::Value::String(s)) => time::OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or_else(|_| now_ms()),
        // seconds, or milliseconds when larger than any seconds of this era; a time no date
        // can show (a crafted index says -10^17) counts as unknown
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|s| if s > 1_000_000_000_000 { Some(s) } else { s.checked_mul(1000) })
            .filter(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).is_ok())
            .unwrap_or_else(now_ms),
        _ => now_ms(),
    }
}

/// Reads the device's `index.json` and records events for names not seen before.
pub async fn harvest<G: Gallery + ?Sized>(
    catalog: &G,
    policy: &RemotePolicy,
    device: &Device,
    timeout: Duration,
) -> Result<usize, SourceError> {
    let (base, policy) = source(policy, device)?;
    let index_url = base.resolve("index.json").map_err(SourceError::Outside)?;
    let body = fetch_small(&policy, index_url, INDEX_LIMIT, timeout).await?;
    let events = index_events(&body, &base, device.user_id, device.device_id)?;
    Ok(catalog.harvest_events(&events).await?)
}

/// The events an `index.json` of the pull source `base` lists for a device: names outside the
/// base are skipped (logged), sizes and times no file can have count as unknown.
pub fn index_events(
    body: &[u8],
    base: &UrlBase,
    user_id: crate::domain::UserId,
    device_id: crate::domain::DeviceId,
) -> Result<Vec<NewEvent>, SourceError> {
    let entries: Vec<IndexEntry> = serde_json::from_slice(body).map_err(SourceError::BadIndex)?;
    let events = entries
        .into_iter()
        .filter(|entry| match base.resolve(&entry.name) {
            Ok(_) => true,
            Err(why) => {
                tracing::warn!(device = %device_id, name = %why, "index.json names a file outside the pull source; skipped");
                false
            }
        })
        .map(|entry| {
            let guessed = sniff(&[], Some(&entry.name));
            let media_type = entry
                .media_type
                .as_deref()
                .and_then(|t| MediaType::parse(t).ok())
                .unwrap_or(guessed.media_type);
            NewEvent {
                id: new_event_id(),
                user_id,
                device_id,
                name: entry.name.clone(),
                media_type,
                content_type: guessed.content_type,
                blob: None,
                size: declared_size(entry.size.as_ref()),
                thumbnail: None,
                metadata: None,
                source_name: Some(entry.name.clone()),
                watch_key: None,
                created_ms: created_ms(entry.created.as_ref()),
            }
        })
        .collect();
    Ok(events)
}

/// Harvests every device that has a pull source (the periodic step).
pub async fn harvest_all<C: Identities + Gallery + ?Sized>(
    catalog: &C,
    policy: &RemotePolicy,
    timeout: Duration,
) -> Result<usize, CatalogError> {
    let mut created = 0;
    for device in catalog.devices_with_pull_url().await? {
        match harvest(catalog, policy, &device, timeout).await {
            Ok(n) => created += n,
            Err(e) => tracing::warn!(device = %device.device_id, error = %e, "harvest failed"),
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_times_are_seconds_or_milliseconds_and_impossible_ones_are_unknown() {
        let at = |v: serde_json::Value| created_ms(Some(&v));
        assert_eq!(at(serde_json::json!(1_767_225_600)), 1_767_225_600_000);
        assert_eq!(at(serde_json::json!(1_767_225_600_123_i64)), 1_767_225_600_123);
        assert_eq!(at(serde_json::json!("2026-01-01T00:00:00Z")), 1_767_225_600_000);
        let before = now_ms();
        // no date shows these (the first overflowed as milliseconds): counted as unknown, i.e. now
        for impossible in
            [serde_json::json!(-100_000_000_000_000_000_i64), serde_json::json!(i64::MIN), serde_json::json!(i64::MAX)]
        {
            assert!(at(impossible.clone()) >= before, "{impossible}");
        }
    }
}
