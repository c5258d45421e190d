//! What accounts store and what they may: counters on each account's row, kept by triggers
//! on every table that holds its items or its holds (migration 0012), and its quota.
//! Definitions (API.md §5): `media_items` and `logical_bytes` count the account's live items
//! of every family (the same content twice counts twice); `held_bytes` counts each distinct
//! content the account holds once (generated thumbnails and a client's gallery thumbnails are
//! not held); `deleted_bytes_pending` is held content only deleted items still use.

use async_trait::async_trait;
use serde::Serialize;

use super::db::Exec;
use super::*;
use crate::domain::UserId;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccountUsage {
    pub user_id: UserId,
    pub name: String,
    pub media_items: i64,
    pub logical_bytes: i64,
    pub held_bytes: i64,
    pub deleted_bytes_pending: i64,
    pub quota_bytes: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerUsage {
    pub blobs: i64,
    /// Every stored blob, thumbnails included.
    pub physical_bytes: i64,
    /// What the accounts' logical bytes would take without sharing, minus what their held
    /// content takes.
    pub dedup_saved_bytes: i64,
    /// What the playable renditions Ferry made take (part of `physical_bytes`).
    pub rendition_bytes: i64,
}

#[async_trait]
pub trait Usage: Send + Sync {
    /// Sets an account's quota (`None`: none); its usage after, or `None` without such a user.
    async fn set_quota(&self, user: UserId, quota_bytes: Option<i64>) -> CatalogResult<Option<AccountUsage>>;
    /// The usage of one account, or of every account (by id).
    async fn usage(&self, user: Option<UserId>) -> CatalogResult<Vec<AccountUsage>>;
    async fn server_usage(&self) -> CatalogResult<ServerUsage>;
    /// Bytes of new content the account may still hold; `None` without a quota.
    async fn quota_room(&self, user: UserId) -> CatalogResult<Option<i64>>;
    /// Counts every account's usage again from its rows (after a bulk copy of them, which the
    /// triggers counted on top of the copied counters).
    async fn recount_usage(&self) -> CatalogResult<()>;
}

/// Held content of account `$1` that no live item of it uses, but a deleted one (or a delete
/// still inside its retention) does.
const DELETED_PENDING: &str =
    "select cast(coalesce(sum(b.size), 0) as bigint) from holds h join blobs b on b.sha256 = h.sha256
    where h.user_id = $1
      and not exists (select 1 from media m join volumes v on v.id = m.volume_id
                      where m.sha256 = h.sha256 and v.user_id = $1 and not m.is_deleted)
      and not exists (select 1 from files f where f.sha256 = h.sha256 and f.user_id = $1)
      and not exists (select 1 from events e where e.sha256 = h.sha256 and e.user_id = $1 and not e.is_deleted)
      and not exists (select 1 from uploads u where u.sha256 = h.sha256 and u.user_id = $1 and u.state = 'completed')
      and (exists (select 1 from hold_checks c where c.user_id = $1 and c.sha256 = h.sha256 and c.reason <> 'committed')
           or exists (select 1 from media m join volumes v on v.id = m.volume_id
                      where m.sha256 = h.sha256 and v.user_id = $1 and m.is_deleted)
           or exists (select 1 from events e where e.sha256 = h.sha256 and e.user_id = $1 and e.is_deleted))";

/// Every account's counters from its rows (the same as migration 0012's first count).
const RECOUNT: &str = "update users set
    held_bytes = (select coalesce(sum(b.size), 0) from holds h join blobs b on b.sha256 = h.sha256 where h.user_id = users.id),
    media_items = (select count(*) from media m join volumes v on v.id = m.volume_id where v.user_id = users.id and not m.is_deleted)
                + (select count(*) from files f where f.user_id = users.id)
                + (select count(*) from events e where e.user_id = users.id and not e.is_deleted and e.sha256 is not null)
                + (select count(*) from uploads u where u.user_id = users.id and u.family = 'multipart' and u.state = 'completed'),
    logical_bytes = (select coalesce(sum(m.size), 0) from media m join volumes v on v.id = m.volume_id where v.user_id = users.id and not m.is_deleted)
                  + (select coalesce(sum(f.size), 0) from files f where f.user_id = users.id)
                  + (select coalesce(sum(e.size), 0) from events e where e.user_id = users.id and not e.is_deleted and e.sha256 is not null)
                  + (select coalesce(sum(u.size), 0) from uploads u where u.user_id = users.id and u.family = 'multipart' and u.state = 'completed')";

#[async_trait]
impl Usage for SqlCatalog {
    async fn set_quota(&self, user: UserId, quota_bytes: Option<i64>) -> CatalogResult<Option<AccountUsage>> {
        let mut tx = self.db.begin().await?;
        tx.exec("update users set quota_bytes = $1 where id = $2", params![quota_bytes, user.0]).await?;
        tx.commit().await?;
        Ok(self.usage(Some(user)).await?.pop())
    }

    async fn usage(&self, user: Option<UserId>) -> CatalogResult<Vec<AccountUsage>> {
        let mut conn = self.db.read().await?;
        let sql = "select id, name, media_items, logical_bytes, held_bytes, quota_bytes from users
                   where $1 is null or id = $1 order by id";
        let rows = conn.rows(sql, params![user.map(|u| u.0)]).await?;
        let mut accounts = Vec::with_capacity(rows.len());
        for row in rows {
            let user_id: i64 = row.get(0)?;
            let pending: i64 = conn.one(DELETED_PENDING, params![user_id]).await?.get(0)?;
            accounts.push(AccountUsage {
                user_id: UserId(user_id),
                name: row.get(1)?,
                media_items: row.get(2)?,
                logical_bytes: row.get(3)?,
                held_bytes: row.get(4)?,
                deleted_bytes_pending: pending,
                quota_bytes: row.get(5)?,
            });
        }
        Ok(accounts)
    }

    async fn server_usage(&self) -> CatalogResult<ServerUsage> {
        let mut conn = self.db.read().await?;
        let stored = conn.one("select count(*), cast(coalesce(sum(size), 0) as bigint) from blobs", &[]).await?;
        let held = "select cast(coalesce(sum(b.size), 0) as bigint) from blobs b
                    where exists (select 1 from holds h where h.sha256 = b.sha256)";
        let held: i64 = conn.one(held, &[]).await?.get(0)?;
        let logical: i64 =
            conn.one("select cast(coalesce(sum(logical_bytes), 0) as bigint) from users", &[]).await?.get(0)?;
        let renditions = "select cast(coalesce(sum(b.size), 0) as bigint) from blobs b
                          where exists (select 1 from blob_renditions br where br.rendition_sha256 = b.sha256)";
        Ok(ServerUsage {
            blobs: stored.get(0)?,
            physical_bytes: stored.get(1)?,
            dedup_saved_bytes: (logical - held).max(0),
            rendition_bytes: conn.one(renditions, &[]).await?.get(0)?,
        })
    }

    async fn quota_room(&self, user: UserId) -> CatalogResult<Option<i64>> {
        let sql = "select quota_bytes - held_bytes from users where id = $1 and quota_bytes is not null";
        let row = self.db.read().await?.opt(sql, params![user.0]).await?;
        row.map(|r| r.get(0)).transpose()
    }

    async fn recount_usage(&self) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        if self.db.dialect() == super::db::Dialect::Postgres {
            // replicas may be serving: their writes wait, so none is counted twice or missed
            tx.exec("lock table holds, media, files, events, uploads in share mode", &[]).await?;
        }
        tx.exec(RECOUNT, &[]).await?;
        tx.commit().await
    }
}
