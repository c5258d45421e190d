//! `ferry admin migrate-store --from-data-dir DIR`: grows an embedded installation (SQLite
//! catalog + blobs on local disk in DIR) into the configured PostgreSQL catalog and blob
//! store (S3), so nobody re-uploads anything.
//!
//! Blobs go first, each streamed through the ingest pipeline's hashing into the target's
//! staging and committed only when its SHA-256 and size match the catalog's record (so a
//! blob corrupted on the old disk is reported, never copied); then the catalog rows. Both
//! steps skip what the target already has, so an interrupted run is resumed by running the
//! same command again. The old server must be stopped (its data dir's lock is taken for the
//! run), and the target catalog must hold no accounts but those of an earlier run from the
//! same installation: rows are kept by id, so merging two installations would hand one's
//! files to the other's users.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::app::Services;
use crate::blob_store::{BlobStore, LocalStore};
use crate::catalog::migrate::{TableCopy, copy_sqlite_to_postgres};
use crate::catalog::{Blobs, Identities, Settings, SqlCatalog};
use crate::ingest::{Expectation, ExpectedHash, Ingest};

#[derive(Debug, Serialize)]
pub struct Report {
    /// Blobs copied (and verified) by this run.
    pub blobs_copied: u64,
    /// Blobs the target already held (an earlier, interrupted run; or shared content).
    pub blobs_present: u64,
    pub bytes_copied: u64,
    pub tables: Vec<TableCopy>,
}

impl Report {
    pub fn line(&self) -> String {
        let rows: u64 = self.tables.iter().map(|t| t.inserted).sum();
        format!(
            "{} blob(s) copied ({} bytes), {} already there; {rows} catalog row(s) copied",
            self.blobs_copied, self.bytes_copied, self.blobs_present
        )
    }
}

pub async fn run(target: &Services, from: &Path) -> anyhow::Result<Report> {
    let database_url = &target.config.database_url;
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        bail!("the target catalog must be PostgreSQL: set FERRY_DATABASE_URL (and FERRY_S3_* for the blobs)");
    }
    let catalog_file = from.join("ferry.db");
    if !catalog_file.is_file() {
        bail!("{} holds no Ferry catalog (no ferry.db)", from.display());
    }
    let same_dir = from.canonicalize().ok() == target.config.data_dir.canonicalize().ok();
    if target.config.s3.is_none() && same_dir {
        bail!("the blobs would be copied onto themselves: configure S3 (FERRY_S3_BUCKET) or another data dir");
    }
    let _stopped = crate::app::try_lock_data_dir(from)?.with_context(|| {
        format!("a Ferry server is still using {} (it holds ferry.lock): stop it, then migrate", from.display())
    })?;
    let sqlite_url = format!("sqlite://{}", catalog_file.display());
    let source = SqlCatalog::open(&sqlite_url).await.context("cannot open the old catalog")?;
    let blobs = LocalStore::open(from).context("cannot open the old blob store")?;
    claim_target(&source, &blobs, target).await?;
    let mut report = Report { blobs_copied: 0, blobs_present: 0, bytes_copied: 0, tables: Vec::new() };
    copy_blobs(&source, &blobs, target, &mut report).await?;
    drop(source);
    report.tables = copy_sqlite_to_postgres(&sqlite_url, database_url).await.context("copying the catalog")?;
    Ok(report)
}

/// Marks the target catalog as this installation's copy, or refuses a target that holds
/// accounts of its own or is another installation's copy.
async fn claim_target(source: &SqlCatalog, blobs: &LocalStore, target: &Services) -> anyhow::Result<()> {
    // the installation's store id: in its catalog, or (not started since stores were bound)
    // in its data dir
    let installation = match source.setting(STORE_ID).await? {
        Some(id) => id,
        None => blobs.identity().await?.context("the old data dir has no store identity: start it once")?.into_bytes(),
    };
    let mixed = |accounts: usize| {
        anyhow::anyhow!(
            "the target catalog holds {accounts} account(s) the old installation does not: migrate-store fills \
             an empty catalog (rows keep their ids, so two installations would mix); create accounts after migrating"
        )
    };
    let target_users = target.catalog.list_users().await?;
    let claimed = match target.catalog.setting(MIGRATED_FROM).await? {
        Some(claimed) => claimed,
        None if !target_users.is_empty() => return Err(mixed(target_users.len())),
        None => target.catalog.setting_once(MIGRATED_FROM, &installation).await?,
    };
    if claimed != installation {
        bail!("the target catalog is the copy of another installation; migrate into an empty one");
    }
    // a run after accounts were made on the new server: theirs would take the old ids' rows
    let source_users = source.list_users().await?;
    let strangers = target_users
        .iter()
        .filter(|u| !source_users.iter().any(|s| s.user_id == u.user_id && s.name == u.name))
        .count();
    if strangers > 0 {
        return Err(mixed(strangers));
    }
    Ok(())
}

/// The setting naming the installation a catalog is a copy of (its store id).
const MIGRATED_FROM: &str = "migrated_from";
const STORE_ID: &str = "store_id";

async fn copy_blobs(
    source: &SqlCatalog,
    from: &LocalStore,
    target: &Services,
    report: &mut Report,
) -> anyhow::Result<()> {
    // only hashing and staging are used: the rows come with the catalog copy
    let pipeline = Ingest::new(target.store.clone(), target.catalog.clone());
    for sha256 in source.all_blob_hashes().await? {
        let record = source.blob(&sha256).await?.context("a blob row vanished during the copy")?;
        if target.store.size_of(&sha256).await? == Some(record.size) {
            report.blobs_present += 1;
            continue;
        }
        let bytes = from.read(&sha256, None).await.with_context(|| format!("blob {sha256} is missing"))?;
        let expect = Expectation {
            size: Some(record.size),
            hash: Some(ExpectedHash::Sha256(sha256.clone())),
            max_size: None,
            size_hint: Some(record.size),
        };
        let received = pipeline.receive(bytes, &expect).await.with_context(|| format!("blob {sha256}"))?;
        // the rows come with the catalog copy: only the bytes are placed here
        target.store.commit(&received.keep(), &sha256).await?;
        report.blobs_copied += 1;
        report.bytes_copied += record.size;
    }
    Ok(())
}
