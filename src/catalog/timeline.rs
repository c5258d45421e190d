//! Everything an account stores, across the families, as one newest-first list (the web
//! gallery's timeline): gallery events, device media in volumes, library files (sessions,
//! tus, imports, watch folders) and multipart files — live ones, with what media processing
//! learnt of each. One query per page, paged by a keyset so a page costs the same at any depth.

use async_trait::async_trait;

use super::db::Exec;
use super::rows::{self, MEDIA_RESULT, RENDITION_JOIN};
use super::*;
use crate::domain::UserId;

/// Which family's item a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    /// A gallery event (`events`).
    Event,
    /// A library file (`files`).
    File,
    /// Device media at a path of a volume (`media`).
    Media,
    /// A completed multipart file (`uploads`).
    Multipart,
}

impl ItemKind {
    /// The letter that names the kind in item ids and cursors (and orders ties).
    pub fn letter(self) -> &'static str {
        match self {
            ItemKind::Event => "e",
            ItemKind::File => "f",
            ItemKind::Media => "m",
            ItemKind::Multipart => "u",
        }
    }

    pub fn from_letter(letter: &str) -> Option<Self> {
        [ItemKind::Event, ItemKind::File, ItemKind::Media, ItemKind::Multipart]
            .into_iter()
            .find(|k| k.letter() == letter)
    }
}

/// An item of any family, as the timeline shows it.
#[derive(Debug, Clone)]
pub struct TimelineItem {
    pub kind: ItemKind,
    /// The family's own id (an event id, a file id, a media row id, an upload id).
    pub id: String,
    /// Its name, path or title.
    pub name: String,
    pub size: u64,
    /// As the uploader declared it, when the family records one.
    pub content_type: Option<String>,
    pub sha256: Sha256Hex,
    pub created_ms: i64,
    /// `device`, `volume`, `folder` or `multipart`, and the device's, volume's or folder's name.
    pub source_kind: String,
    pub source_name: String,
    /// The device's, volume's or folder's catalog id (0 for multipart files).
    pub source_id: i64,
    /// A thumbnail the device sent with a gallery event.
    pub sent_thumbnail: Option<Sha256Hex>,
    pub media: Option<MediaInfo>,
}

/// Which page of the timeline.
#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    /// Items strictly older than this (created, kind, id): the last item of the page before.
    pub after: Option<(i64, ItemKind, String)>,
    pub limit: u32,
    /// Only one source: (`device`|`volume`|`folder`|`multipart`, name).
    pub source: Option<(String, String)>,
    /// Only `image`, `video` or `other`, as media processing classed the content.
    pub media_kind: Option<String>,
}

#[async_trait]
pub trait Timeline {
    /// A page of `user`'s live items, newest first (ties by kind and id).
    async fn timeline(&self, user: UserId, query: &TimelineQuery) -> CatalogResult<Vec<TimelineItem>>;
    /// One of `user`'s live items; `None` when it is not theirs, gone, or never was.
    async fn timeline_item(&self, user: UserId, kind: ItemKind, id: &str) -> CatalogResult<Option<TimelineItem>>;
    /// Every source `user` has, as (kind, name): devices, volumes and folders (empty ones
    /// too), and `multipart` when a multipart file is stored.
    async fn timeline_sources(&self, user: UserId) -> CatalogResult<Vec<(String, String)>>;
}

/// Every family's live items of user `$1`, in one shape.
const ITEMS: &str = "
    select 'e' as kind, e.id as item_id, e.name as name, e.size as size, e.content_type as content_type,
           e.sha256 as sha256, e.created_ms as created_ms, 'device' as source_kind, d.name as source_name,
           e.thumbnail_sha256 as sent_thumbnail, d.id as source_id
      from events e join devices d on d.id = e.device_id
     where e.user_id = $1 and not e.is_deleted and e.sha256 is not null
    union all
    select 'f', f.id, f.title, f.size, f.content_type, f.sha256, f.created_ms, 'folder', fo.folder_key, null, fo.id
      from files f join folders fo on fo.id = f.folder_id
     where f.user_id = $1
    union all
    select 'm', cast(m.id as text), m.path, m.size, null, m.sha256, m.created_ms, 'volume', v.name, null, v.id
      from media m join volumes v on v.id = m.volume_id
     where v.user_id = $1 and not m.is_deleted
    union all
    select 'u', u.id, coalesce(u.file_key, u.id), u.size, u.content_type, u.sha256, u.created_ms, 'multipart', '', null, 0
      from uploads u
     where u.user_id = $1 and u.family = 'multipart' and u.state = 'completed' and u.sha256 is not null";

impl SqlCatalog {
    async fn items_where(&self, condition: &str, tail: &str, params: &[db::Value]) -> CatalogResult<Vec<TimelineItem>> {
        let sql = format!(
            "select t.kind, t.item_id, t.name, t.size, t.content_type, t.sha256, t.created_ms, t.source_kind,
                    t.source_name, t.sent_thumbnail, t.source_id, {MEDIA_RESULT}
               from ({ITEMS}) t
               left join blob_media bm on bm.sha256 = t.sha256 {RENDITION_JOIN}
              where {condition} {tail}"
        );
        let rows = self.db.read().await?.rows(&sql, params).await?;
        rows.iter().map(item).collect()
    }
}

fn item(row: &db::Row) -> CatalogResult<TimelineItem> {
    let letter: String = row.get(0)?;
    Ok(TimelineItem {
        kind: ItemKind::from_letter(&letter).ok_or_else(|| CatalogError::Schema(format!("item kind {letter}")))?,
        id: row.get(1)?,
        name: row.get(2)?,
        size: row.get(3)?,
        content_type: row.get(4)?,
        sha256: row.get(5)?,
        created_ms: row.get(6)?,
        source_kind: row.get(7)?,
        source_name: row.get(8)?,
        sent_thumbnail: row.get(9)?,
        source_id: row.get(10)?,
        media: rows::media_result(row, 11)?,
    })
}

#[async_trait]
impl Timeline for SqlCatalog {
    async fn timeline(&self, user: UserId, query: &TimelineQuery) -> CatalogResult<Vec<TimelineItem>> {
        let (created, kind, id) = match &query.after {
            Some((created, kind, id)) => (*created, kind.letter(), id.as_str()),
            // past every item: nothing is created after the end of time
            None => (i64::MAX, "z", ""),
        };
        let (source_kind, source_name) = query.source.clone().unwrap_or_default();
        let media_kind = query.media_kind.clone().unwrap_or_default();
        let kind_of = self.db.dialect().json_text("bm.metadata", "kind");
        let condition = format!(
            "(t.created_ms < $2 or (t.created_ms = $2 and (t.kind < $3 or (t.kind = $3 and t.item_id < $4))))
             and ($5 = '' or (t.source_kind = $5 and t.source_name = $6))
             and ($7 = '' or coalesce({kind_of}, 'other') = $7)"
        );
        let tail =
            format!("order by t.created_ms desc, t.kind desc, t.item_id desc limit {}", query.limit.clamp(1, 500));
        let params =
            params![user.0, created, kind, id, source_kind.as_str(), source_name.as_str(), media_kind.as_str()];
        self.items_where(&condition, &tail, params).await
    }

    async fn timeline_sources(&self, user: UserId) -> CatalogResult<Vec<(String, String)>> {
        let sql = "select 'device', name from devices where user_id = $1
                   union all select 'volume', name from volumes where user_id = $1
                   union all select 'folder', folder_key from folders where user_id = $1
                   union all select 'multipart', '' from uploads
                    where user_id = $1 and family = 'multipart' and state = 'completed'
                   order by 1, 2";
        let rows = self.db.read().await?.rows(sql, params![user.0]).await?;
        let mut sources = rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect::<CatalogResult<Vec<_>>>()?;
        sources.dedup();
        Ok(sources)
    }

    async fn timeline_item(&self, user: UserId, kind: ItemKind, id: &str) -> CatalogResult<Option<TimelineItem>> {
        let params = params![user.0, kind.letter(), id];
        Ok(self.items_where("t.kind = $2 and t.item_id = $3", "", params).await?.pop())
    }
}
