//! Gallery events: a device's media, newest first, with or without their bytes yet (a
//! harvested event waits to be pulled).

use async_trait::async_trait;

use super::db::Exec;
use super::identities::{ACCOUNT_DEVICE, account_device_params};
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, EVENT, EVENT_COLUMNS, MEDIA_RESULT, RENDITION_JOIN};
use super::*;
use crate::clock::now_ms;
use crate::domain::{DeviceId, MediaType, UserId};

#[async_trait]
pub trait Gallery: Send + Sync {
    /// Records an event; an existing id, watch key or (device, source name) is a `Conflict`.
    async fn add_event(&self, event: &NewEvent) -> CatalogResult<Event>;
    /// Records harvested events, skipping names already known; returns how many are new.
    async fn harvest_events(&self, events: &[NewEvent]) -> CatalogResult<usize>;
    /// A page of the events of the account's device named or numbered `raw` (`None`: no such
    /// device), newest first (ties by id, so pages are deterministic), not deleted, each with
    /// what media processing recorded for its file. One statement finds the device and reads
    /// the page; only a page that comes back empty asks whether the device exists.
    async fn device_events(
        &self,
        user: UserId,
        raw: &str,
        media_type: Option<MediaType>,
        limit: u32,
        offset: u64,
    ) -> CatalogResult<Option<Vec<(Event, Option<MediaInfo>)>>>;
    async fn event(&self, device: DeviceId, id: &str) -> CatalogResult<Option<Event>>;
    async fn set_event_thumbnail(&self, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool>;
    /// Gives a harvested event its bytes (a pull finished).
    async fn set_event_content(
        &self,
        device: DeviceId,
        id: &str,
        blob: &BlobRecord,
        content_type: &str,
    ) -> CatalogResult<bool>;
    async fn delete_event(&self, device: DeviceId, id: &str) -> CatalogResult<bool>;
    /// Counts and sizes per media type in one aggregate query (deleted excluded).
    async fn event_stats(&self, device: DeviceId) -> CatalogResult<Vec<TypeStats>>;
    /// [`Gallery::event_stats`] of the account's device named or numbered `raw` (`None`: no
    /// such device), in one statement that finds the device too.
    async fn account_device_stats(&self, user: UserId, raw: &str) -> CatalogResult<Option<Vec<TypeStats>>>;
    /// A count that holds only while nothing in the catalog changed (`db::Db::generation`),
    /// so a page read at it may be sent again while it holds; `None` where that is not known
    /// cheaply (PostgreSQL).
    async fn generation(&self) -> CatalogResult<Option<u64>>;
}

fn type_stats(row: &db::Row) -> CatalogResult<TypeStats> {
    Ok(TypeStats { media_type: row.get(0)?, count: row.get(1)?, size: row.get(2)? })
}

/// Inserts an event; with `or_ignore` an event that exists already is skipped (0 rows).
async fn insert(exec: &mut dyn Exec, event: &NewEvent, or_ignore: bool) -> CatalogResult<u64> {
    let conflict = if or_ignore { " on conflict do nothing" } else { "" };
    let sql = format!(
        "insert into events (id, user_id, device_id, name, media_type, content_type, sha256, size, thumbnail_sha256,
                             metadata, source_name, watch_key, created_ms, inserted_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14){conflict}"
    );
    exec.exec(
        &sql,
        params![
            &event.id,
            event.user_id.0,
            event.device_id.0,
            &event.name,
            event.media_type.as_str(),
            &event.content_type,
            event.blob.as_ref().map(|b| &b.sha256),
            event.size,
            event.thumbnail.as_ref().map(|b| &b.sha256),
            event.metadata.as_ref().map(|m| m.to_string()),
            &event.source_name,
            &event.watch_key,
            event.created_ms,
            now_ms()
        ],
    )
    .await
    .map_err(|e| e.on_unique(|| format!("event {} exists already", event.id)))
}

async fn event_in(exec: &mut dyn Exec, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
    let sql = format!("select {EVENT} from events e where e.device_id = $1 and e.id = $2 and not e.is_deleted");
    exec.opt(&sql, params![device.0, id]).await?.map(|mut r| rows::event(&mut r, 0)).transpose()
}

/// A page of a device's events, newest first: `$1`–`$3` find the account's device (see
/// `identities::ACCOUNT_DEVICE`), `$4` is the offset, `$5` the media type when `by_type`. The
/// device is a constant to the page, so the plan walks `events_listing` (`events_by_type` for
/// one type) in its order and stops after the page; `is_deleted = false` (not `not
/// is_deleted`) is what lets it use the index — otherwise every event of the device was read
/// and sorted on each request.
fn events_page_sql(by_type: bool, limit: u32) -> String {
    let filter = if by_type { " and e.media_type = $5" } else { "" };
    format!(
        "select {EVENT}, {MEDIA_RESULT} from events e left join blob_media bm on bm.sha256 = e.sha256
         {RENDITION_JOIN} where e.device_id = (select d.id from devices d where {ACCOUNT_DEVICE} limit 1)
         and e.is_deleted = false{filter} order by e.created_ms desc, e.id desc limit {limit} offset $4"
    )
}

impl SqlCatalog {
    async fn update_event(&self, sql: &str, params: &[db::Value]) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let changed = tx.exec(sql, params).await?;
        tx.commit().await?;
        Ok(changed == 1)
    }
}

#[async_trait]
impl Gallery for SqlCatalog {
    async fn add_event(&self, event: &NewEvent) -> CatalogResult<Event> {
        let mut tx = self.db.begin().await?;
        insert(&mut tx, event, false).await?;
        let stored = event_in(&mut tx, event.device_id, &event.id).await?;
        tx.commit().await?;
        stored.ok_or_else(|| CatalogError::NotFound(format!("event {}", event.id)))
    }

    async fn harvest_events(&self, events: &[NewEvent]) -> CatalogResult<usize> {
        let mut tx = self.db.begin().await?;
        let mut created = 0;
        for event in events {
            created += insert(&mut tx, event, true).await? as usize;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn device_events(
        &self,
        user: UserId,
        raw: &str,
        media_type: Option<MediaType>,
        limit: u32,
        offset: u64,
    ) -> CatalogResult<Option<Vec<(Event, Option<MediaInfo>)>>> {
        // the limit is in the text: SQLite plans a bound limit by its value, so it re-prepared
        // the statement on every request (see db/sqlite.rs); it is a number of a few distinct
        // values. With and without the type filter are two texts, each with its own plan.
        let mut params = account_device_params(user, raw).to_vec();
        // SQL integers are signed: an offset past them is past every event all the same
        params.push(db::Value::Int(Some(offset.min(i64::MAX as u64) as i64)));
        if let Some(kind) = media_type {
            params.push(db::Value::Text(Some(kind.as_str().to_owned())));
        }
        let sql = events_page_sql(media_type.is_some(), limit);
        let mut conn = self.db.read().await?;
        let rows = conn.rows(&sql, &params).await?;
        if rows.is_empty() {
            // no such device, or no events on this page: the device alone tells which
            let sql = format!("select d.id from devices d where {ACCOUNT_DEVICE}");
            if conn.opt(&sql, &params[..3]).await?.is_none() {
                return Ok(None);
            }
        }
        let page =
            rows.into_iter().map(|mut r| Ok((rows::event(&mut r, 0)?, rows::media_result(&mut r, EVENT_COLUMNS)?)));
        Ok(Some(page.collect::<CatalogResult<_>>()?))
    }

    async fn event(&self, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
        event_in(&mut self.db.read().await?, device, id).await
    }

    async fn set_event_thumbnail(&self, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool> {
        let mut tx = self.db.begin().await?;
        let Some(event) = event_in(&mut tx, device, id).await? else { return Ok(false) };
        let sql = "update events set thumbnail_sha256 = $1 where device_id = $2 and id = $3";
        tx.exec(sql, params![&thumbnail.sha256, device.0, id]).await?;
        // a replaced thumbnail stays held for the retention, like a deleted item's content
        if let Some(old) = event.thumbnail_sha256.filter(|old| *old != thumbnail.sha256) {
            check_hold(&mut tx, event.user_id, &old, HoldCheck::Deleted, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_event_content(
        &self,
        device: DeviceId,
        id: &str,
        blob: &BlobRecord,
        content_type: &str,
    ) -> CatalogResult<bool> {
        let sql = "update events set sha256 = $1, size = $2, content_type = $3
                   where device_id = $4 and id = $5 and not is_deleted";
        self.update_event(sql, params![&blob.sha256, blob.size, content_type, device.0, id]).await
    }

    async fn delete_event(&self, device: DeviceId, id: &str) -> CatalogResult<bool> {
        let sql = "update events set is_deleted = true, deleted_ms = $1
                   where device_id = $2 and id = $3 and not is_deleted";
        self.update_event(sql, params![now_ms(), device.0, id]).await
    }

    async fn event_stats(&self, device: DeviceId) -> CatalogResult<Vec<TypeStats>> {
        let sql = "select media_type, count(*), cast(coalesce(sum(size), 0) as bigint) from events
                   where device_id = $1 and is_deleted = false group by media_type order by media_type";
        let rows = self.db.read().await?.rows(sql, params![device.0]).await?;
        rows.iter().map(type_stats).collect()
    }

    async fn account_device_stats(&self, user: UserId, raw: &str) -> CatalogResult<Option<Vec<TypeStats>>> {
        // the device's row joined to its events: no row is no device; one row without a media
        // type is a device without events
        let sql = format!(
            "select e.media_type, count(e.id), cast(coalesce(sum(e.size), 0) as bigint) from devices d
             left join events e on e.device_id = d.id and e.is_deleted = false
             where {ACCOUNT_DEVICE} group by e.media_type order by e.media_type"
        );
        let rows = self.db.read().await?.rows(&sql, &account_device_params(user, raw)).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut stats = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.get::<Option<MediaType>>(0)?.is_some() {
                stats.push(type_stats(row)?);
            }
        }
        Ok(Some(stats))
    }

    async fn generation(&self) -> CatalogResult<Option<u64>> {
        self.db.generation().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::open::sqlite_plan;

    #[tokio::test]
    async fn a_page_of_events_walks_the_listing_index_without_sorting() {
        for (by_type, index) in [(false, "events_listing"), (true, "events_by_type")] {
            let steps = sqlite_plan(&events_page_sql(by_type, 50)).await;
            assert!(!steps.iter().any(|s| s.starts_with("SCAN")), "{steps:#?}");
            assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "{steps:#?}");
            assert!(steps.iter().any(|s| s.contains(&format!("SEARCH e USING INDEX {index}"))), "{steps:#?}");
        }
    }

    #[test]
    fn the_event_columns_are_counted_right() {
        assert_eq!(EVENT.split(',').count(), EVENT_COLUMNS);
    }
}
