//! Settings every process on a catalog shares (the signing secret, the blob store's
//! identity), created once: of processes racing to set one, all end up with the first value.

use async_trait::async_trait;

use super::db::Exec;
use super::{CatalogResult, SqlCatalog};

/// The `settings` key of the signing secret.
pub const SIGNING_SECRET: &str = "signing_secret";

#[async_trait]
pub trait Settings: Send + Sync {
    /// A cheap round trip proving the catalog answers (readiness).
    async fn ping(&self) -> CatalogResult<()>;
    /// Connections handed out so far and the time spent waiting for them (`/metrics`).
    fn connection_waits(&self) -> &super::db::ConnectionWaits;
    /// A shared setting, `None` when unset.
    async fn setting(&self, key: &str) -> CatalogResult<Option<Vec<u8>>>;
    /// The setting `key`, storing `fresh` first when it is unset.
    async fn setting_once(&self, key: &str, fresh: &[u8]) -> CatalogResult<Vec<u8>>;
    /// The signing secret, created once (`fresh` when none is stored yet).
    async fn signing_secret(&self, fresh: &[u8]) -> CatalogResult<Vec<u8>> {
        self.setting_once(SIGNING_SECRET, fresh).await
    }
}

#[async_trait]
impl Settings for SqlCatalog {
    async fn ping(&self) -> CatalogResult<()> {
        self.db.read().await?.one("select 1", &[]).await?;
        Ok(())
    }

    fn connection_waits(&self) -> &super::db::ConnectionWaits {
        self.db.waits()
    }

    async fn setting(&self, key: &str) -> CatalogResult<Option<Vec<u8>>> {
        let row = self.db.read().await?.opt("select value from settings where key = $1", params![key]).await?;
        row.map(|r| r.get(0)).transpose()
    }

    async fn setting_once(&self, key: &str, fresh: &[u8]) -> CatalogResult<Vec<u8>> {
        let mut tx = self.db.begin().await?;
        tx.exec("insert into settings (key, value) values ($1, $2) on conflict (key) do nothing", params![key, fresh])
            .await?;
        let value = tx.one("select value from settings where key = $1", params![key]).await?.get(0)?;
        tx.commit().await?;
        Ok(value)
    }
}
