//! `ferry admin backup DIR` and `ferry admin restore DIR` (see `crate::backup`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Failure, FailureCode, Printed};
use crate::app::Services;
use crate::backup::{self, BackupError};
use crate::config::Config;
use crate::jobs::consistency;

#[derive(Args, Debug)]
pub(super) struct BackupArgs {
    /// A new (or empty) directory to write the backup into.
    dir: PathBuf,
}

fn failed(e: BackupError) -> Failure {
    let code = match e {
        BackupError::NotEmbedded | BackupError::Target(_) | BackupError::Unfinished(_) | BackupError::InUse(_) => {
            FailureCode::InvalidArgument
        }
        _ => FailureCode::Backup,
    };
    Failure::new(code, e.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::new(FailureCode::Backup, e.to_string()))?
        .map_err(failed)
}

pub(super) async fn backup(config: Config, args: BackupArgs) -> Result<Printed, Failure> {
    let dir = args.dir.clone();
    let manifest = blocking(move || backup::backup(&config, &args.dir)).await?;
    if !manifest.damaged_blobs.is_empty() {
        // the backup is complete and restores; the store needs a look
        return Err(Failure::new(
            FailureCode::Backup,
            format!(
                "backed up into {}, but {} blob(s) in the store are damaged (their bytes do not hash to their \
                 names; copied as they are and listed as damaged_blobs in {}): {}; run `ferry admin check --deep`",
                dir.display(),
                manifest.damaged_blobs.len(),
                backup::MANIFEST,
                manifest.damaged_blobs.join(", ")
            ),
        ));
    }
    let text = format!(
        "backed up {} blob(s), {} bytes, and the catalog into {} ({} upload(s) in flight left out)",
        manifest.blobs,
        manifest.bytes,
        dir.display(),
        manifest.dropped_uploads
    );
    let mut json = serde_json::to_value(&manifest).unwrap_or_default();
    json["dir"] = json!(dir);
    Ok(Printed { json, text })
}

/// Restores, then opens the restored data dir (migrating an older backup) and checks that
/// every row has its bytes; a restore that does not check out is removed again. The data
/// dir stays locked until then.
pub(super) async fn restore(config: Config, args: BackupArgs) -> Result<Printed, Failure> {
    let target = config.clone();
    let restored = blocking(move || backup::restore(&args.dir, &target)).await?;
    // a server configuration that does not open is said, and the restore kept
    let services =
        Services::open(config.clone()).await.map_err(|e| Failure::new(FailureCode::Catalog, format!("{e:#}")))?;
    let checked = check_restored(services, restored.manifest.clone()).await;
    if checked.is_err() {
        restored.remove(&config);
    }
    checked
}

async fn check_restored(services: Services, manifest: backup::Manifest) -> Result<Printed, Failure> {
    let scope = consistency::CheckScope { deep: false, staging_age: Duration::from_secs(3600) };
    let mut report = consistency::check(services.catalog.as_ref(), services.store.as_ref(), scope)
        .await
        .map_err(|e| Failure::new(FailureCode::Check, e.to_string()))?;
    // a blob damaged in the store when backed up (its size changed) is restored as it was:
    // known, and said below, not a damaged backup
    report.rows_without_blobs.retain(|hash| !manifest.damaged_blobs.contains(hash));
    if !(report.rows_without_blobs.is_empty() && report.blobs_without_rows.is_empty()) {
        return Err(Failure::new(
            FailureCode::Check,
            format!(
                "restored into {}, but the check found {} catalog row(s) without bytes and {} blob(s) without a row: \
                 the backup is damaged (the restore was removed)",
                services.config.data_dir.display(),
                report.rows_without_blobs.len(),
                report.blobs_without_rows.len()
            ),
        ));
    }
    let mut text = format!(
        "restored {} blob(s), {} bytes, from the backup of {} into {}; every catalog row has its bytes",
        manifest.blobs,
        manifest.bytes,
        manifest.created,
        services.config.data_dir.display(),
    );
    if !manifest.damaged_blobs.is_empty() {
        text.push_str(&format!(
            "; {} blob(s) were damaged in the store when backed up and are restored as they were: {} (run `ferry admin \
             check --deep`)",
            manifest.damaged_blobs.len(),
            manifest.damaged_blobs.join(", ")
        ));
    }
    let mut json = serde_json::to_value(&manifest).unwrap_or_default();
    json["data_dir"] = json!(services.config.data_dir);
    json["check"] = serde_json::to_value(&report).unwrap_or_default();
    Ok(Printed { json, text })
}
