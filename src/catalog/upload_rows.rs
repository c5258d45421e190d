//! Reading and locking upload rows, for the statements of `uploads` that change them.

use super::db::{Exec, Tx};
use super::lifecycle::{HoldCheck, check_hold};
use super::rows::{self, UPLOAD};
use super::*;
use crate::clock::now_ms;
use crate::domain::UserId;

/// Not held by a completion whose lease is running (`$2` is now).
pub(super) const UNCLAIMED: &str = "(x.claim_until_ms is null or x.claim_until_ms < $2)";

pub(super) async fn upload_in(exec: &mut dyn Exec, upload_id: &str) -> CatalogResult<Option<Upload>> {
    let sql = format!("select {UPLOAD} from uploads x where x.id = $1");
    exec.opt(&sql, params![upload_id]).await?.map(|r| rows::upload(&r, 0)).transpose()
}

/// Locks an open upload that no completion holds (its row, on PostgreSQL) for a change to its
/// parts: `NotFound` when it is not open, `Conflict` while a completion holds it.
pub(super) async fn open_for_parts(tx: &mut Tx<'_>, upload_id: &str) -> CatalogResult<()> {
    let lock = tx.dialect().for_update();
    let sql = format!("select x.claim_until_ms from uploads x where x.id = $1 and x.state = 'open'{lock}");
    match tx.opt(&sql, params![upload_id]).await? {
        None => Err(CatalogError::NotFound(format!("upload {upload_id}"))),
        Some(row) if row.get::<Option<i64>>(0)?.is_some_and(|until| until >= now_ms()) => {
            Err(CatalogError::Conflict(format!("upload {upload_id} is being completed")))
        }
        Some(_) => Ok(()),
    }
}

/// Deletes the upload when `condition` (over `x`; `$2` is now) holds, parts first (their rows
/// say whose staging to drop); `None` when it did not hold.
pub(super) async fn delete_where(
    tx: &mut Tx<'_>,
    upload_id: &str,
    condition: &str,
) -> CatalogResult<Option<Vec<Part>>> {
    let lock = tx.dialect().for_update();
    let sql = format!("select x.id from uploads x where x.id = $1 and {condition}{lock}");
    if tx.opt(&sql, params![upload_id, now_ms()]).await?.is_none() {
        return Ok(None);
    }
    let parts = tx
        .rows(
            "delete from upload_parts where upload_id = $1 returning part_num, staging_key, size, sha256, etag",
            params![upload_id],
        )
        .await?;
    let gone = tx.opt("delete from uploads where id = $1 returning user_id, sha256", params![upload_id]).await?;
    // a completed upload used its content: its account's hold is looked at again
    if let Some(gone) = gone
        && let Some(sha256) = gone.get::<Option<Sha256Hex>>(1)?
    {
        check_hold(tx, UserId(gone.get(0)?), &sha256, HoldCheck::Unreferenced, now_ms()).await?;
    }
    parts.iter().map(|r| rows::part(r, 0)).collect::<CatalogResult<Vec<_>>>().map(Some)
}
