//! Removing and renaming users, devices and volumes (issue 30).
//!
//! What goes with what: a device takes its gallery events and its grants (the volumes it
//! mounted and their media stay); a volume takes its media items and the grants that mount
//! it; a user takes everything of the account — tokens, devices, volumes, library files,
//! multipart files, tus uploads — and its holds. Items go at once (nobody can undo or sync a
//! removed source), but their content follows the storage rules of every delete: a device's
//! or volume's content stays held for FERRY_TOMBSTONE_RETENTION (another item of the account
//! may use it again), a removed account's content nobody else holds becomes a collection
//! candidate. Credentials go in the same transaction, so they stop working at once.
//!
//! Uploads in flight (their bytes in staging) are not removed here: the caller ends them
//! through their own services first, which remove their staged bytes; one that started
//! meanwhile makes the removal a conflict ("run again"), so no staged bytes are orphaned.

use async_trait::async_trait;
use serde::Serialize;

use super::db::Exec;
use super::*;
use crate::clock::now_ms;
use crate::domain::{DeviceId, Name, UserId, VolumeId};

/// What is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    User(UserId),
    Device(DeviceId),
    Volume(VolumeId),
}

impl Removed {
    fn id(self) -> i64 {
        match self {
            Removed::User(id) => id.0,
            Removed::Device(id) => id.0,
            Removed::Volume(id) => id.0,
        }
    }

    /// The ids of the devices removed with it (`$1` is [`Self::id`]; an empty set names it
    /// too, so every statement binds the same one parameter).
    fn devices(self) -> &'static str {
        match self {
            Removed::User(_) => "select id from devices where user_id = $1",
            Removed::Device(_) => "select id from devices where id = $1",
            Removed::Volume(_) => "select id from devices where id = $1 and 1 = 0",
        }
    }

    /// The ids of the volumes removed with it.
    fn volumes(self) -> &'static str {
        match self {
            Removed::User(_) => "select id from volumes where user_id = $1",
            Removed::Volume(_) => "select id from volumes where id = $1",
            Removed::Device(_) => "select id from volumes where id = $1 and 1 = 0",
        }
    }

    /// Multipart uploads (device or presigned family) that belong to it.
    fn uploads(self) -> String {
        match self {
            Removed::User(_) => "user_id = $1".to_owned(),
            _ => format!(
                "grant_id in (select id from grants where device_id in ({}) or volume_id in ({}))",
                self.devices(),
                self.volumes()
            ),
        }
    }

    /// tus uploads that belong to it (a volume has none: tus lands in folders and galleries).
    fn tus_uploads(self) -> &'static str {
        match self {
            Removed::User(_) => "user_id = $1",
            Removed::Device(_) => "device_id = $1",
            Removed::Volume(_) => "user_id = $1 and 1 = 0",
        }
    }
}

/// tus uploads whose bytes are still in staging (what ending one must remove).
const TUS_HOLDING_BYTES: &str = "(state in ('open', 'received') or (state = 'completed' and concat = 'partial'))";

/// Uploads that removing something would end: their ids, for their own services to end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlight {
    pub multipart: Vec<String>,
    pub tus: Vec<String>,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.multipart.is_empty() && self.tus.is_empty()
    }
}

/// What a removal took with it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RemovalReport {
    pub tokens: u64,
    pub devices: u64,
    pub volumes: u64,
    pub grants: u64,
    /// Live items of every family (volume media, gallery events, library files, multipart
    /// files); tombstones and deleted events are not counted.
    pub media_items: u64,
    /// The account's holds that went with it (user removal only).
    pub released_holds: u64,
}

#[async_trait]
pub trait Removals: Send + Sync {
    /// The uploads in flight that removing `what` would end.
    async fn uploads_in_flight(&self, what: Removed) -> CatalogResult<InFlight>;
    /// Removes `what` and everything that belongs to it (see the module docs), in one
    /// transaction. A conflict while uploads of it are in flight; not found when it is gone.
    async fn remove(&self, what: Removed) -> CatalogResult<RemovalReport>;
    async fn rename_user(&self, user: UserId, name: &Name) -> CatalogResult<()>;
    async fn rename_device(&self, device: DeviceId, name: &Name) -> CatalogResult<()>;
    async fn rename_volume(&self, volume: VolumeId, name: &Name) -> CatalogResult<()>;
}

/// Every (account, content) an item of `items` used gets a `deleted` hold check, so the hold
/// stays for the retention and then goes unless something else of the account uses it.
async fn check_holds_of(exec: &mut dyn Exec, items: &str, id: i64, now_ms: i64) -> CatalogResult<()> {
    let sql = format!(
        "insert into hold_checks (user_id, sha256, reason, since_ms)
         select distinct user_id, sha256, 'deleted', $2 from ({items}) used where sha256 is not null
         on conflict (user_id, sha256, reason) do update set since_ms = excluded.since_ms"
    );
    exec.exec(&sql, params![id, now_ms]).await?;
    Ok(())
}

async fn count(exec: &mut dyn Exec, sql: &str, id: i64) -> CatalogResult<u64> {
    let n: i64 = exec.one(sql, params![id]).await?.get(0)?;
    Ok(n as u64)
}

impl SqlCatalog {
    async fn rename(&self, table: &str, id: i64, name: &Name, what: &str) -> CatalogResult<()> {
        let mut tx = self.db.begin().await?;
        let sql = format!("update {table} set name = $1 where id = $2");
        let changed = tx
            .exec(&sql, params![name.as_str(), id])
            .await
            .map_err(|e| e.on_unique(|| format!("a {what} named '{name}' already exists")))?;
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("{what} {id}")));
        }
        tx.commit().await
    }
}

#[async_trait]
impl Removals for SqlCatalog {
    async fn uploads_in_flight(&self, what: Removed) -> CatalogResult<InFlight> {
        let mut conn = self.db.read().await?;
        let sql = format!("select id from uploads where state = 'open' and {} order by id", what.uploads());
        let multipart = conn.rows(&sql, params![what.id()]).await?;
        let sql =
            format!("select id from tus_uploads where {TUS_HOLDING_BYTES} and {} order by id", what.tus_uploads());
        let tus = conn.rows(&sql, params![what.id()]).await?;
        Ok(InFlight {
            multipart: multipart.iter().map(|r| r.get(0)).collect::<CatalogResult<_>>()?,
            tus: tus.iter().map(|r| r.get(0)).collect::<CatalogResult<_>>()?,
        })
    }

    async fn remove(&self, what: Removed) -> CatalogResult<RemovalReport> {
        let (id, now) = (what.id(), now_ms());
        let (devices, volumes, uploads) = (what.devices(), what.volumes(), what.uploads());
        let mut tx = self.db.begin().await?;
        let (table, kind) = match what {
            Removed::User(_) => ("users", "user"),
            Removed::Device(_) => ("devices", "device"),
            Removed::Volume(_) => ("volumes", "volume"),
        };
        // locks the row first (for update: a foreign-key check of a concurrent insert waits
        // for it), so a removal, a rename and new items of it take turns
        let sql = format!("select id from {table} where id = $1{}", tx.dialect().for_update());
        if tx.opt(&sql, params![id]).await?.is_none() {
            return Err(CatalogError::NotFound(format!("{kind} {id}")));
        }
        let open = count(&mut tx, &format!("select count(*) from uploads where state = 'open' and {uploads}"), id)
            .await?
            + count(
                &mut tx,
                &format!("select count(*) from tus_uploads where {TUS_HOLDING_BYTES} and {}", what.tus_uploads()),
                id,
            )
            .await?;
        if open > 0 {
            return Err(CatalogError::Conflict(format!(
                "{open} upload(s) of this {kind} started while it was being removed; run the removal again"
            )));
        }
        let mut report = RemovalReport::default();

        let events = format!(
            "select user_id, sha256 from events where device_id in ({devices})
                              union select user_id, thumbnail_sha256 from events where device_id in ({devices})"
        );
        let media = format!(
            "select v.user_id, m.sha256 from media m join volumes v on v.id = m.volume_id
                             where m.volume_id in ({volumes})"
        );
        let completed = format!("select user_id, sha256 from uploads where {uploads}");
        if let Removed::User(_) = what {
            // with the account gone no hold check will run for it: everything its items used
            // (a client's gallery thumbnail is nobody's hold) is looked at by collection, which
            // keeps what anything else still needs
            let files = "select user_id, sha256 from files where user_id = $1";
            let holds = "select user_id, sha256 from holds where user_id = $1";
            let sql = format!(
                "insert into collect_candidates (sha256, since_ms)
                 select distinct sha256, $2 from ({events} union {media} union {completed} union {files} union {holds}) used
                 where sha256 is not null
                 on conflict (sha256) do update set since_ms = excluded.since_ms"
            );
            tx.exec(&sql, params![id, now]).await?;
        } else {
            // the account stays: its holds are looked at again after the retention
            for items in [&events, &media, &completed] {
                check_holds_of(&mut tx, items, id, now).await?;
            }
        }
        report.media_items += count(
            &mut tx,
            &format!(
                "select count(*) from events where device_id in ({devices}) and not is_deleted and sha256 is not null"
            ),
            id,
        )
        .await?;
        report.media_items += count(
            &mut tx,
            &format!("select count(*) from media where volume_id in ({volumes}) and not is_deleted"),
            id,
        )
        .await?;
        report.media_items +=
            count(&mut tx, &format!("select count(*) from uploads where {uploads} and file_key is not null"), id)
                .await?;

        // media elsewhere keeps its history without naming a device that no longer exists
        let sql = format!("update media set last_updated_device_id = null where last_updated_device_id in ({devices})");
        tx.exec(&sql, params![id]).await?;
        tx.exec(&format!("delete from events where device_id in ({devices})"), params![id]).await?;
        tx.exec(&format!("delete from media where volume_id in ({volumes})"), params![id]).await?;
        tx.exec(&format!("delete from uploads where {uploads}"), params![id]).await?;
        let sql = format!("delete from grants where device_id in ({devices}) or volume_id in ({volumes})");
        report.grants = tx.exec(&sql, params![id]).await?;
        tx.exec(&format!("delete from tus_uploads where {}", what.tus_uploads()), params![id]).await?;
        report.devices = tx.exec(&format!("delete from devices where id in ({devices})"), params![id]).await?;
        report.volumes = tx.exec(&format!("delete from volumes where id in ({volumes})"), params![id]).await?;

        if let Removed::User(_) = what {
            report.media_items += count(&mut tx, "select count(*) from files where user_id = $1", id).await?;
            for table in ["files", "sessions", "folders"] {
                tx.exec(&format!("delete from {table} where user_id = $1"), params![id]).await?;
            }
            report.tokens = tx.exec("delete from tokens where user_id = $1", params![id]).await?;
            // work queued for the account has nobody to do it for
            tx.exec("delete from jobs where owner_id = $1 and status = 'pending'", params![id]).await?;
            tx.exec("delete from hold_checks where user_id = $1", params![id]).await?;
            report.released_holds = tx.exec("delete from holds where user_id = $1", params![id]).await?;
            tx.exec("delete from users where id = $1", params![id]).await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn rename_user(&self, user: UserId, name: &Name) -> CatalogResult<()> {
        self.rename("users", user.0, name, "user").await
    }

    async fn rename_device(&self, device: DeviceId, name: &Name) -> CatalogResult<()> {
        self.rename("devices", device.0, name, "device of this user").await
    }

    async fn rename_volume(&self, volume: VolumeId, name: &Name) -> CatalogResult<()> {
        self.rename("volumes", volume.0, name, "volume of this user").await
    }
}
