//! `… remove … --yes`: a user, device or volume removed through `accounts::Remover`, its
//! answer naming what went.

use serde_json::{Value, json};

use super::{Failure, FailureCode, Printed};
use crate::accounts::{Removal, RemovalError, Remover};
use crate::app::Services;
use crate::catalog::{CatalogError, Removed};
use crate::domain::UserId;

/// Refuses a removal the operator has not confirmed, saying what it would delete.
pub(super) fn confirmed(yes: bool, what: &str, takes: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    Err(Failure::new(
        FailureCode::InvalidArgument,
        format!("removing {what} deletes {takes} at once and cannot be undone; add --yes to remove it"),
    ))
}

/// Removes `what` (owned by `owner`); `identity` names it in the answer (its id and name).
pub(super) async fn remove(
    services: &Services,
    what: Removed,
    owner: UserId,
    mut identity: Value,
    label: String,
) -> Result<Printed, Failure> {
    let remover = Remover { catalog: services.catalog.as_ref(), uploads: &services.uploads, tus: &services.tus };
    let Removal { report, ended_uploads } = remover.remove(what, owner).await.map_err(|e| match e {
        RemovalError::Catalog(CatalogError::NotFound(_)) => {
            Failure::new(FailureCode::NotFound, format!("{label} is already gone"))
        }
        RemovalError::Catalog(other) => other.into(),
        RemovalError::Completing(_) | RemovalError::Writing(_) => {
            Failure::new(FailureCode::Conflict, format!("{label}: {e}"))
        }
        RemovalError::EndingUpload { .. } => Failure::new(FailureCode::Catalog, format!("{label}: {e}")),
    })?;
    let text = format!(
        "removed {label}: {} media item(s), {} device(s), {} volume(s), {} grant(s), {} token(s); \
         ended {ended_uploads} upload(s) in flight",
        report.media_items, report.devices, report.volumes, report.grants, report.tokens,
    );
    // the device's watched gallery folders (and what was dropped there) go with it
    let gallery = services.config.data_dir.join("gallery").join(owner.to_string());
    let folder = match what {
        Removed::User(_) => Some(gallery),
        Removed::Device(device) => Some(gallery.join(device.to_string())),
        Removed::Volume(_) => None,
    };
    if let Some(folder) = folder
        && let Err(e) = std::fs::remove_dir_all(&folder)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(folder = %folder.display(), error = %e, "could not remove a removed device's gallery folder");
    }
    let mut json = serde_json::to_value(&report).unwrap_or_default();
    if let (Some(out), Some(ids)) = (json.as_object_mut(), identity.as_object_mut()) {
        out.append(ids);
        out.insert("ended_uploads".into(), json!(ended_uploads));
    }
    Ok(Printed { json, text })
}
