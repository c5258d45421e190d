//! `ferry admin check`, `collect` and `migrate-store`: the store and the catalog, compared,
//! cleaned up or moved.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Failure, FailureCode, Printed, migrate_store, printed};
use crate::app::Services;
use crate::jobs::consistency;

/// `check --repair` on a bucket shared by replicas leaves bytes younger than this: another
/// replica may be about to record them.
const REPAIR_MIN_AGE_SHARED: Duration = Duration::from_secs(3600);

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    /// Remove what the check found left over: stored bytes no catalog row or pending
    /// write accounts for, staging nothing will use, S3 uploads nothing will complete.
    #[arg(long)]
    repair: bool,
    /// Also read every stored blob and check that it hashes to its name.
    #[arg(long)]
    deep: bool,
}

#[derive(Args, Debug)]
pub(super) struct MigrateArgs {
    #[arg(long, value_name = "DIR")]
    from_data_dir: PathBuf,
}

pub(super) async fn check(services: &Services, args: CheckArgs) -> Result<Printed, Failure> {
    let CheckArgs { repair, deep } = args;
    let (catalog, store) = (services.catalog.as_ref(), services.store.as_ref());
    let failed = |e: consistency::CheckError| Failure::new(FailureCode::Check, e.to_string());
    // an upload in flight may use its staging until it expires
    let staging_age = services.config.upload_expiry + Duration::from_secs(3600);
    let scope = consistency::CheckScope { deep, staging_age };
    let mut report = consistency::check(catalog, store, scope).await.map_err(failed)?;
    // beside a server on SQLite, an upload of the same content could adopt a stray blob
    // between the last look and its removal: its bytes are removed only while no server runs
    let dir = &services.config.data_dir;
    let embedded = services.config.database_url.starts_with("sqlite:") && services.config.s3.is_none();
    let server_lock = if repair && embedded {
        crate::app::try_lock_data_dir(dir)
            .map_err(|e| Failure::new(FailureCode::DataDir, format!("cannot check {}: {e:#}", dir.display())))?
    } else {
        None
    };
    let blobs_left_to_a_stopped_server = repair && embedded && server_lock.is_none();
    if repair {
        // a shared bucket may hold bytes another replica is about to record
        let min_age = match (services.config.s3.is_some(), blobs_left_to_a_stopped_server) {
            (_, true) => Duration::MAX,
            (true, false) => REPAIR_MIN_AGE_SHARED,
            (false, false) => Duration::ZERO,
        };
        report = consistency::repair(catalog, store, report, min_age).await.map_err(failed)?;
    }
    drop(server_lock);
    let mut text = format!(
        "{} stored blob(s) without a catalog row, {} catalog row(s) without bytes, {} pending write(s), \
         {} staging leftover(s), {} open S3 upload(s)",
        report.blobs_without_rows.len(),
        report.rows_without_blobs.len(),
        report.pending_intents.len(),
        report.staging_leftovers.len(),
        report.open_multipart_uploads.len(),
    );
    if deep {
        text.push_str(&format!(", {} corrupt blob(s)", report.corrupt_blobs.len()));
    }
    if repair {
        text.push_str(&format!("; removed {}", report.removed.len()));
    }
    if blobs_left_to_a_stopped_server && !report.blobs_without_rows.is_empty() {
        text.push_str(
            "; stored blobs without a row are kept while a server runs on this data dir (stop it to remove them)",
        );
    }
    Ok(printed(&report, text))
}

pub(super) async fn migrate(services: &Services, args: MigrateArgs) -> Result<Printed, Failure> {
    let report = migrate_store::run(services, &args.from_data_dir)
        .await
        .map_err(|e| Failure::new(FailureCode::MigrateStore, format!("{e:#}")))?;
    Ok(printed(&report, report.line()))
}

/// `collect`: one storage-lifecycle pass now (what the server also does when idle).
pub(super) async fn collect(services: &Services) -> Result<Printed, Failure> {
    // Beside a server on SQLite only the server may remove blobs (its catalog keeps commits
    // and collection apart within its process): the rows are done here, the bytes there.
    let dir = &services.config.data_dir;
    let server_lock = crate::app::try_lock_data_dir(dir)
        .map_err(|e| Failure::new(FailureCode::DataDir, format!("cannot check {}: {e:#}", dir.display())))?;
    let collects = server_lock.is_some() || !services.config.database_url.starts_with("sqlite:");
    if collects {
        // first whatever an interrupted pass left: bytes an intent says were being removed
        // (a write in progress holds its blob's section, so the sweep never sees its intent)
        consistency::sweep_intents(services.catalog.as_ref(), services.store.clone(), Duration::ZERO)
            .await
            .map_err(|e| Failure::new(FailureCode::Check, e.to_string()))?;
    }
    let report = services
        .lifecycle
        .pass(crate::clock::now_ms(), collects)
        .await
        .map_err(|e| Failure::new(FailureCode::Catalog, e.to_string()))?;
    drop(server_lock);
    let mut text = format!(
        "purged {} deleted item(s), released {} hold(s), collected {} blob(s) ({} bytes freed)",
        report.purged_items, report.released_holds, report.collected_blobs, report.freed_bytes
    );
    if !collects {
        text.push_str("; blob collection left to the running server");
    }
    let mut json = serde_json::to_value(&report).unwrap_or_default();
    json["blob_collection"] = serde_json::json!(collects);
    Ok(Printed { json, text })
}
