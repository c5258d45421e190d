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
    /// Items at most, 1–1,000 (callers ask for one more than a page, to learn whether
    /// another follows).
    pub limit: u32,
    /// Only one source: (`device`|`volume`|`folder`|`multipart`, name).
    pub source: Option<(String, String)>,
    /// Only `image`, `video` or `other`, as media processing classed the content.
    pub media_kind: Option<String>,
}

#[async_trait]
pub trait Timeline: Send + Sync {
    /// A page of `user`'s live items, newest first (ties by kind and id).
    async fn timeline(&self, user: UserId, query: &TimelineQuery) -> CatalogResult<Vec<TimelineItem>>;
    /// One of `user`'s live items; `None` when it is not theirs, gone, or never was.
    async fn timeline_item(&self, user: UserId, kind: ItemKind, id: &str) -> CatalogResult<Option<TimelineItem>>;
    /// Every source `user` has, as (kind, name): devices, volumes and folders (empty ones
    /// too), and `multipart` when a multipart file is stored.
    async fn timeline_sources(&self, user: UserId) -> CatalogResult<Vec<(String, String)>>;
}

/// One family's live items of user `$1`, in the timeline's shape.
struct Branch {
    letter: &'static str,
    /// The values of [`COLUMNS`], in order.
    columns: [&'static str; 10],
    from: &'static str,
    live: &'static str,
    created: &'static str,
    /// The id as text: the order ties are broken in.
    id: &'static str,
    sha256: &'static str,
    source_kind: &'static str,
    source_name: &'static str,
}

/// The timeline's shape, after its `kind`.
const COLUMNS: [&str; 10] = [
    "item_id",
    "name",
    "size",
    "content_type",
    "sha256",
    "created_ms",
    "source_kind",
    "source_name",
    "sent_thumbnail",
    "source_id",
];

const BRANCHES: [Branch; 4] = [
    Branch {
        letter: "e",
        columns: [
            "e.id",
            "e.name",
            "e.size",
            "e.content_type",
            "e.sha256",
            "e.created_ms",
            "'device'",
            "d.name",
            "e.thumbnail_sha256",
            "d.id",
        ],
        from: "events e join devices d on d.id = e.device_id",
        // `is_deleted = false`, not `not is_deleted`: SQLite reads the order from the index
        // (events_timeline) only for an equality
        live: "e.user_id = $1 and e.is_deleted = false and e.sha256 is not null",
        created: "e.created_ms",
        id: "e.id",
        sha256: "e.sha256",
        source_kind: "device",
        source_name: "d.name",
    },
    Branch {
        letter: "f",
        columns: [
            "f.id",
            "f.title",
            "f.size",
            "f.content_type",
            "f.sha256",
            "f.created_ms",
            "'folder'",
            "fo.folder_key",
            "null",
            "fo.id",
        ],
        from: "files f join folders fo on fo.id = f.folder_id",
        live: "f.user_id = $1",
        created: "f.created_ms",
        id: "f.id",
        sha256: "f.sha256",
        source_kind: "folder",
        source_name: "fo.folder_key",
    },
    Branch {
        letter: "m",
        columns: [
            "cast(m.id as text)",
            "m.path",
            "m.size",
            "null",
            "m.sha256",
            "m.created_ms",
            "'volume'",
            "v.name",
            "null",
            "v.id",
        ],
        from: "media m join volumes v on v.id = m.volume_id",
        live: "v.user_id = $1 and m.is_deleted = false",
        created: "m.created_ms",
        id: "cast(m.id as text)",
        sha256: "m.sha256",
        source_kind: "volume",
        source_name: "v.name",
    },
    Branch {
        letter: "u",
        columns: [
            "u.id",
            "coalesce(u.file_key, u.id)",
            "u.size",
            "u.content_type",
            "u.sha256",
            "u.created_ms",
            "'multipart'",
            "''",
            "null",
            "0",
        ],
        from: "uploads u",
        live: "u.user_id = $1 and u.family = 'multipart' and u.state = 'completed' and u.sha256 is not null",
        created: "u.created_ms",
        id: "u.id",
        sha256: "u.sha256",
        source_kind: "multipart",
        source_name: "''",
    },
];

impl Branch {
    fn select(&self) -> String {
        let columns = self.columns.iter().zip(COLUMNS).map(|(value, name)| format!("{value} as {name}"));
        format!("select '{}' as kind, {}", self.letter, columns.collect::<Vec<_>>().join(", "))
    }

    /// Its live items of user `$1`.
    fn all(&self) -> String {
        format!("{} from {} where {}", self.select(), self.from, self.live)
    }

    /// Its first `limit` items of a timeline page: past the cursor (`$2` created, `$3` kind,
    /// `$4` id), of the source `$5:$6` and the media kind `$7` when given. Each family's
    /// newest come from its own index, so a page reads about `limit` rows of each family, not
    /// the whole library.
    fn page(&self, limit: u32, kind_of: &str) -> String {
        let (l, created, id) = (self.letter, self.created, self.id);
        format!(
            "select * from ({select} from {from}
                left join blob_media bk on bk.sha256 = {sha256}
              where {live}
                and ({created} < $2 or ({created} = $2 and ('{l}' < $3 or ('{l}' = $3 and {id} < $4))))
                and ($5 = '' or ('{source_kind}' = $5 and {source_name} = $6))
                and ($7 = '' or coalesce({kind_of}, 'other') = $7)
              order by {created} desc, {id} desc limit {limit}) b{l}",
            select = self.select(),
            from = self.from,
            sha256 = self.sha256,
            live = self.live,
            source_kind = self.source_kind,
            source_name = self.source_name,
        )
    }
}

impl SqlCatalog {
    /// The items `union` yields, with their media results, as `condition` and `tail` pick.
    async fn items_from(
        &self,
        union: &str,
        condition: &str,
        tail: &str,
        params: &[db::Value],
    ) -> CatalogResult<Vec<TimelineItem>> {
        let sql = format!(
            "select t.kind, t.item_id, t.name, t.size, t.content_type, t.sha256, t.created_ms, t.source_kind,
                    t.source_name, t.sent_thumbnail, t.source_id, {MEDIA_RESULT}
               from ({union}) t
               left join blob_media bm on bm.sha256 = t.sha256 {RENDITION_JOIN}
              where {condition} {tail}"
        );
        let rows = self.db.read().await?.rows(&sql, params).await?;
        rows.into_iter().map(item).collect()
    }
}

fn item(mut row: db::Row) -> CatalogResult<TimelineItem> {
    let letter: String = row.take(0)?;
    Ok(TimelineItem {
        kind: ItemKind::from_letter(&letter).ok_or_else(|| CatalogError::Schema(format!("item kind {letter}")))?,
        id: row.take(1)?,
        name: row.take(2)?,
        size: row.take(3)?,
        content_type: row.take(4)?,
        sha256: row.take(5)?,
        created_ms: row.take(6)?,
        source_kind: row.take(7)?,
        source_name: row.take(8)?,
        sent_thumbnail: row.take(9)?,
        source_id: row.take(10)?,
        media: rows::media_result(&mut row, 11)?,
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
        let limit = query.limit.clamp(1, 1000);
        let kind_of = self.db.dialect().json_text("bk.metadata", "kind");
        let union = BRANCHES.iter().map(|b| b.page(limit, &kind_of)).collect::<Vec<_>>().join(" union all ");
        let tail = format!("order by t.created_ms desc, t.kind desc, t.item_id desc limit {limit}");
        let params =
            params![user.0, created, kind, id, source_kind.as_str(), source_name.as_str(), media_kind.as_str()];
        self.items_from(&union, "true", &tail, params).await
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
        let branch = BRANCHES.iter().find(|b| b.letter == kind.letter()).expect("a branch per kind");
        Ok(self.items_from(&branch.all(), "t.item_id = $2", "", params![user.0, id]).await?.pop())
    }
}
