//! Gallery events and pull sources on PostgreSQL.

use sqlx::{AssertSqlSafe, PgPool};

use super::on_unique;
use crate::catalog::rows::{EVENT_WITH_MEDIA_COLUMNS, EventRow, EventWithMediaRow};
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::DeviceId;

const COLUMNS: &str = "id, user_id, device_id, name, media_type, content_type, sha256, size, thumbnail_sha256, metadata, source_name, created_ms";

pub async fn set_pull_url(writer: &PgPool, device: DeviceId, url: Option<&str>) -> CatalogResult<()> {
    let done =
        sqlx::query("update devices set pull_url = $1 where id = $2").bind(url).bind(device.0).execute(writer).await?;
    if done.rows_affected() == 0 {
        return Err(CatalogError::NotFound(format!("device {device}")));
    }
    Ok(())
}

async fn insert(conn: &mut sqlx::PgConnection, event: &NewEvent, or_ignore: bool) -> CatalogResult<u64> {
    let size = column_size(event.size)?;
    let conflict = if or_ignore { "on conflict do nothing" } else { "" };
    let done = sqlx::query(AssertSqlSafe(format!(
        "insert into events (id, user_id, device_id, name, media_type, content_type, sha256, size, thumbnail_sha256,
                             metadata, source_name, watch_key, created_ms, inserted_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) {conflict}"
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

pub async fn add_event(writer: &PgPool, event: &NewEvent) -> CatalogResult<Event> {
    let mut conn = writer.acquire().await?;
    insert(&mut conn, event, false).await?;
    drop(conn);
    get(writer, event.device_id, &event.id).await?.ok_or_else(|| CatalogError::NotFound(format!("event {}", event.id)))
}

pub async fn harvest(writer: &PgPool, events: &[NewEvent]) -> CatalogResult<usize> {
    let mut tx = writer.begin().await?;
    let mut created = 0;
    for event in events {
        created += insert(&mut tx, event, true).await? as usize;
    }
    tx.commit().await?;
    Ok(created)
}

pub async fn list(
    reader: &PgPool,
    device: DeviceId,
    media_type: Option<&str>,
    limit: u32,
    offset: u64,
) -> CatalogResult<Vec<(Event, Option<MediaInfo>)>> {
    let rows: Vec<EventWithMediaRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_WITH_MEDIA_COLUMNS} from events e left join blob_media m on m.sha256 = e.sha256
         where e.device_id = $1 and e.is_deleted = false and ($2::text is null or e.media_type = $3)
         order by e.created_ms desc, e.id desc limit $4 offset $5"
    )))
    .bind(device.0)
    .bind(media_type)
    .bind(media_type)
    .bind(i64::from(limit))
    .bind(offset as i64)
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(EventWithMediaRow::into_parts).collect()
}

pub async fn get(pool: &PgPool, device: DeviceId, id: &str) -> CatalogResult<Option<Event>> {
    let row: Option<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from events where device_id = $1 and id = $2 and is_deleted = false"
    )))
    .bind(device.0)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(EventRow::into_event).transpose()
}

pub async fn set_thumbnail(writer: &PgPool, device: DeviceId, id: &str, thumbnail: &BlobRecord) -> CatalogResult<bool> {
    let done =
        sqlx::query("update events set thumbnail_sha256 = $1 where device_id = $2 and id = $3 and is_deleted = false")
            .bind(thumbnail.sha256.as_str())
            .bind(device.0)
            .bind(id)
            .execute(writer)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_content(
    writer: &PgPool,
    device: DeviceId,
    id: &str,
    blob: &BlobRecord,
    content_type: &str,
) -> CatalogResult<bool> {
    let done = sqlx::query(
        "update events set sha256 = $1, size = $2, content_type = $3 where device_id = $4 and id = $5 and is_deleted = false",
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

pub async fn delete(writer: &PgPool, device: DeviceId, id: &str) -> CatalogResult<bool> {
    let done = sqlx::query(
        "update events set is_deleted = true, deleted_ms = $1 where device_id = $2 and id = $3 and is_deleted = false",
    )
    .bind(now_ms())
    .bind(device.0)
    .bind(id)
    .execute(writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn stats(reader: &PgPool, device: DeviceId) -> CatalogResult<Vec<TypeStats>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select media_type, count(*), coalesce(sum(size), 0)::bigint from events
         where device_id = $1 and is_deleted = false group by media_type order by media_type",
    )
    .bind(device.0)
    .fetch_all(reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(media_type, count, size)| TypeStats { media_type, count: count as u64, size: size as u64 })
        .collect())
}
