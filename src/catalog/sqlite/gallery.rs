//! Gallery events and pull sources on SQLite.

use sqlx::{AssertSqlSafe, SqlitePool};

use super::on_unique;
use crate::catalog::rows::{EVENT_WITH_MEDIA_JSON_ARRAY, EventRow, EventWithMediaArray, EventWithMediaRow};
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::DeviceId;

const COLUMNS: &str = "id, user_id, device_id, name, media_type, content_type, sha256, size, thumbnail_sha256, metadata, source_name, created_ms";

pub async fn set_pull_url(writer: &SqlitePool, device: DeviceId, url: Option<&str>) -> CatalogResult<()> {
    let done =
        sqlx::query("update devices set pull_url = ? where id = ?").bind(url).bind(device.0).execute(writer).await?;
    if done.rows_affected() == 0 {
        return Err(CatalogError::NotFound(format!("device {device}")));
    }
    Ok(())
}

async fn insert(conn: &mut sqlx::SqliteConnection, event: &NewEvent, or_ignore: bool) -> CatalogResult<u64> {
    let size = column_size(event.size)?;
    let verb = if or_ignore { "insert or ignore" } else { "insert" };
    let done = sqlx::query(AssertSqlSafe(format!(
        "{verb} into events (id, user_id, device_id, name, media_type, content_type, sha256, size, thumbnail_sha256,
                             metadata, source_name, watch_key, created_ms, inserted_ms)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(&event.id)
    .bind(event.user_id.0)
    .bind(event.device_id.0)
    .bind(&event.name)
    .bind(&event.media_type)
    .bind(&event.content_type)
    .bind(event.blob.as_ref().map(|b| b.sha256.as_str()))
    .bind(size)
    .bind(event.thumbnail.as_ref().map(|b| b.sha256.as_str()))
    .bind(event.metadata.as_ref().map(|m| m.to_string()))
    .bind(&event.source_name)
    .bind(&event.watch_key)
    .bind(event.created_ms)
    .bind(now_ms())
    .execute(conn)
    .await
    .map_err(|e| on_unique(e, || format!("event {} exists already", event.id)))?;
    Ok(done.rows_affected())
}

pub async fn add_event(writer: &SqlitePool, event: &NewEvent) -> CatalogResult<Event> {
    let mut conn = writer.acquire().await?;
    insert(&mut conn, event, false).await?;
    drop(conn);
    get(writer, event.device_id, &event.id).await?.ok_or_else(|| CatalogError::NotFound(format!("event {}", event.id)))
}

pub async fn harvest(writer: &SqlitePool, events: &[NewEvent]) -> CatalogResult<usize> {
    let mut tx = writer.begin().await?;
    let mut created = 0;
    for event in events {
        created += insert(&mut tx, event, true).await? as usize;
    }
    tx.commit().await?;
    Ok(created)
}

pub async fn list(
    reader: &SqlitePool,
    device: DeviceId,
    media_type: Option<&str>,
    limit: u32,
    offset: u64,
) -> CatalogResult<Vec<(Event, Option<MediaInfo>)>> {
    // One row holding the whole page as JSON: sqlx's SQLite driver hands every row from its
    // worker thread to the request's task as a separate message, which cost more than the
    // query itself (P5 in BENCHMARKS.md).
    let (page,): (String,) = sqlx::query_as(AssertSqlSafe(format!(
        "select json_group_array(json(row) order by created_ms desc, id desc) from (
           select {EVENT_WITH_MEDIA_JSON_ARRAY} as row, e.created_ms, e.id
           from events e left join blob_media m on m.sha256 = e.sha256
           where e.device_id = ? and e.is_deleted = 0 and (? is null or e.media_type = ?)
           order by e.created_ms desc, e.id desc limit ? offset ?)"
    )))
    .bind(device.0)
    .bind(media_type)
    .bind(media_type)
    .bind(i64::from(limit))
    .bind(offset as i64)
    .fetch_one(reader)
    .await?;
    let rows: Vec<EventWithMediaArray> =
        serde_json::from_str(&page).map_err(|e| CatalogError::Schema(format!("event page: {e}")))?;
    rows.into_iter().map(|row| EventWithMediaRow::from(row).into_parts()).collect()
}

pub async fn get(pool: &SqlitePool, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
    let row: Option<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from events where device_id = ? and id = ? and is_deleted = 0"
    )))
    .bind(device.0)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(EventRow::into_event).transpose()
}

pub async fn set_thumbnail(
    writer: &SqlitePool,
    device: DeviceId,
    id: &str,
    thumbnail: &BlobRecord,
) -> CatalogResult<bool> {
    let done = sqlx::query("update events set thumbnail_sha256 = ? where device_id = ? and id = ? and is_deleted = 0")
        .bind(thumbnail.sha256.as_str())
        .bind(device.0)
        .bind(id)
        .execute(writer)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_content(
    writer: &SqlitePool,
    device: DeviceId,
    id: &str,
    blob: &BlobRecord,
    content_type: &str,
) -> CatalogResult<bool> {
    let done = sqlx::query(
        "update events set sha256 = ?, size = ?, content_type = ? where device_id = ? and id = ? and is_deleted = 0",
    )
    .bind(blob.sha256.as_str())
    .bind(blob.size as i64)
    .bind(content_type)
    .bind(device.0)
    .bind(id)
    .execute(writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(writer: &SqlitePool, device: DeviceId, id: &str) -> CatalogResult<bool> {
    let done = sqlx::query(
        "update events set is_deleted = 1, deleted_ms = ? where device_id = ? and id = ? and is_deleted = 0",
    )
    .bind(now_ms())
    .bind(device.0)
    .bind(id)
    .execute(writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn stats(reader: &SqlitePool, device: DeviceId) -> CatalogResult<Vec<TypeStats>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select media_type, count(*), coalesce(sum(size), 0) from events
         where device_id = ? and is_deleted = 0 group by media_type order by media_type",
    )
    .bind(device.0)
    .fetch_all(reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(media_type, count, size)| TypeStats { media_type, count: count as u64, size: size as u64 })
        .collect())
}
