//! Users, tokens, devices, volumes and grants. Uniqueness is left to the constraints, whose
//! violations become conflicts that say what exists.

use async_trait::async_trait;

use super::db::Exec;
use super::rows::{self, DEVICE, GRANT, TOKEN, USER, VOLUME};
use super::*;
use crate::clock::now_ms;
use crate::domain::{DeviceId, GrantId, Level, Name, ScopeSet, TokenId, UserId, VolumeId};

#[async_trait]
pub trait Identities: Send + Sync {
    async fn create_user(&self, name: &Name, level: Level) -> CatalogResult<User>;
    async fn user(&self, id: UserId) -> CatalogResult<Option<User>>;
    async fn user_by_name(&self, name: &str) -> CatalogResult<Option<User>>;
    async fn list_users(&self) -> CatalogResult<Vec<User>>;

    async fn create_token(&self, user: UserId, scopes: ScopeSet, secret_hash: &str) -> CatalogResult<TokenRecord>;
    async fn list_tokens(&self) -> CatalogResult<Vec<TokenRecord>>;
    async fn revoke_token(&self, id: TokenId) -> CatalogResult<TokenRecord>;
    /// The live (not revoked) token with this secret hash and its user, in one query.
    async fn token_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>>;

    async fn create_device(&self, device: NewDevice) -> CatalogResult<Device>;
    async fn list_devices(&self) -> CatalogResult<Vec<Device>>;
    /// One account's devices, oldest first.
    async fn devices_of(&self, user: UserId) -> CatalogResult<Vec<Device>>;
    /// Every device `reference` can mean (more than one only for an ambiguous bare name).
    async fn find_devices(&self, reference: &DeviceRef) -> CatalogResult<Vec<Device>>;
    /// `user`'s device named `raw`, else `user`'s device whose id `raw` is, in one query.
    async fn account_device(&self, user: UserId, raw: &str) -> CatalogResult<Option<Device>>;
    /// The device with this key hash and its owner, in one query.
    async fn device_by_key_hash(&self, key_hash: &str) -> CatalogResult<Option<(Device, User)>>;
    async fn set_device_flag(&self, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device>;
    /// Sets (or with `None` removes) a device's gallery pull source.
    async fn set_pull_url(&self, device: DeviceId, url: Option<&str>) -> CatalogResult<Device>;
    async fn devices_with_pull_url(&self) -> CatalogResult<Vec<Device>>;

    async fn create_volume(&self, user: UserId, name: &Name) -> CatalogResult<Volume>;
    async fn list_volumes(&self) -> CatalogResult<Vec<Volume>>;
    async fn volume_by_name(&self, user: UserId, name: &str) -> CatalogResult<Option<Volume>>;

    async fn create_grant(&self, grant: NewGrant) -> CatalogResult<Grant>;
    async fn list_grants(&self) -> CatalogResult<Vec<Grant>>;
    async fn grant(&self, id: GrantId) -> CatalogResult<Option<Grant>>;
    async fn grants_of_device(&self, device: DeviceId) -> CatalogResult<Vec<Grant>>;
    async fn set_grant_disabled(&self, id: GrantId, disabled: bool) -> CatalogResult<Grant>;
}

/// Which of `devices d` is the account's device named or numbered `raw`: parameters `$1`–`$3`
/// from [`account_device_params`] (at most one row matches).
pub(super) const ACCOUNT_DEVICE: &str = "d.user_id = $1 and (d.name = $2 or d.id = $3)";

pub(super) fn account_device_params(user: UserId, raw: &str) -> [db::Value; 3] {
    // names are never all digits, so at most one of the two matches (an id is digits only:
    // "+5" is a name, not device 5)
    let id = raw.bytes().all(|b| b.is_ascii_digit()).then(|| raw.parse::<i64>().ok()).flatten();
    [db::Value::Int(Some(user.0)), db::Value::Text(Some(raw.to_owned())), db::Value::Int(id)]
}

impl SqlCatalog {
    async fn device_where(&self, condition: &str, params: &[db::Value]) -> CatalogResult<Vec<Device>> {
        let sql =
            format!("select {DEVICE} from devices d join users u on u.id = d.user_id where {condition} order by d.id");
        let rows = self.db.read().await?.rows(&sql, params).await?;
        rows.iter().map(|r| rows::device(r, 0)).collect()
    }

    async fn grants_where(&self, condition: &str, params: &[db::Value]) -> CatalogResult<Vec<Grant>> {
        let sql = format!("select {GRANT} from grants g where {condition} order by g.id");
        let rows = self.db.read().await?.rows(&sql, params).await?;
        rows.iter().map(|r| rows::grant(r, 0)).collect()
    }

    pub(super) async fn write_one<T>(
        &self,
        sql: &str,
        params: &[db::Value],
        decode: impl Fn(&db::Row) -> CatalogResult<T>,
    ) -> CatalogResult<Option<T>> {
        let mut tx = self.db.begin().await?;
        let row = tx.opt(sql, params).await?;
        tx.commit().await?;
        row.as_ref().map(decode).transpose()
    }
}

#[async_trait]
impl Identities for SqlCatalog {
    async fn create_user(&self, name: &Name, level: Level) -> CatalogResult<User> {
        let sql = "insert into users (name, level, created_ms) values ($1, $2, $3) returning id";
        let id = self
            .write_one(sql, params![name.as_str(), level.as_str(), now_ms()], |r| r.get::<i64>(0))
            .await
            .map_err(|e| e.on_unique(|| format!("a user named '{name}' already exists")))?
            .ok_or_else(|| CatalogError::Schema("no id for the new user".into()))?;
        Ok(User { user_id: UserId(id), name: name.to_string(), level })
    }

    async fn user(&self, id: UserId) -> CatalogResult<Option<User>> {
        let sql = format!("select {USER} from users u where u.id = $1");
        let row = self.db.read().await?.opt(&sql, params![id.0]).await?;
        row.map(|r| rows::user(&r, 0)).transpose()
    }

    async fn user_by_name(&self, name: &str) -> CatalogResult<Option<User>> {
        let sql = format!("select {USER} from users u where u.name = $1");
        let row = self.db.read().await?.opt(&sql, params![name]).await?;
        row.map(|r| rows::user(&r, 0)).transpose()
    }

    async fn list_users(&self) -> CatalogResult<Vec<User>> {
        let rows = self.db.read().await?.rows(&format!("select {USER} from users u order by u.id"), &[]).await?;
        rows.iter().map(|r| rows::user(r, 0)).collect()
    }

    async fn create_token(&self, user: UserId, scopes: ScopeSet, secret_hash: &str) -> CatalogResult<TokenRecord> {
        let sql = "insert into tokens (user_id, secret_hash, scopes, created_ms) values ($1, $2, $3, $4)
                   returning id, user_id, scopes, revoked_ms, created_ms";
        self.write_one(sql, params![user.0, secret_hash, scopes.to_list(), now_ms()], |r| rows::token(r, 0))
            .await?
            .ok_or_else(|| CatalogError::Schema("no row for the new token".into()))
    }

    async fn list_tokens(&self) -> CatalogResult<Vec<TokenRecord>> {
        let rows = self.db.read().await?.rows(&format!("select {TOKEN} from tokens t order by t.id"), &[]).await?;
        rows.iter().map(|r| rows::token(r, 0)).collect()
    }

    async fn revoke_token(&self, id: TokenId) -> CatalogResult<TokenRecord> {
        // coalesce keeps the first revocation time when revoking twice
        let sql = "update tokens set revoked_ms = coalesce(revoked_ms, $1) where id = $2
                   returning id, user_id, scopes, revoked_ms, created_ms";
        self.write_one(sql, params![now_ms(), id.0], |r| rows::token(r, 0))
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("token {id}")))
    }

    async fn token_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>> {
        let sql = format!(
            "select {TOKEN}, {USER} from tokens t join users u on u.id = t.user_id
             where t.secret_hash = $1 and t.revoked_ms is null"
        );
        let row = self.db.read().await?.opt(&sql, params![secret_hash]).await?;
        row.map(|r| Ok((rows::token(&r, 0)?, rows::user(&r, 5)?))).transpose()
    }

    async fn create_device(&self, device: NewDevice) -> CatalogResult<Device> {
        let sql = "insert into devices (user_id, name, key_hash, created_ms) values ($1, $2, $3, $4) returning id";
        let id = self
            .write_one(sql, params![device.user_id.0, device.name.as_str(), &device.key_hash, now_ms()], |r| {
                r.get::<i64>(0)
            })
            .await
            .map_err(|e| e.on_unique(|| format!("this user already has a device named '{}'", device.name)))?
            .ok_or_else(|| CatalogError::Schema("no id for the new device".into()))?;
        self.find_devices(&DeviceRef::Id(DeviceId(id)))
            .await?
            .pop()
            .ok_or_else(|| CatalogError::NotFound("new device".into()))
    }

    async fn list_devices(&self) -> CatalogResult<Vec<Device>> {
        self.device_where("true", &[]).await
    }

    async fn devices_of(&self, user: UserId) -> CatalogResult<Vec<Device>> {
        self.device_where("d.user_id = $1", params![user.0]).await
    }

    async fn find_devices(&self, reference: &DeviceRef) -> CatalogResult<Vec<Device>> {
        match reference {
            DeviceRef::Id(id) => self.device_where("d.id = $1", params![id.0]).await,
            DeviceRef::Qualified { user, device } => {
                self.device_where("u.name = $1 and d.name = $2", params![user, device]).await
            }
            DeviceRef::Name(name) => self.device_where("d.name = $1", params![name]).await,
        }
    }

    async fn account_device(&self, user: UserId, raw: &str) -> CatalogResult<Option<Device>> {
        let sql = format!("select {DEVICE} from devices d where {ACCOUNT_DEVICE}");
        let row = self.db.read().await?.opt(&sql, &account_device_params(user, raw)).await?;
        row.map(|r| rows::device(&r, 0)).transpose()
    }

    async fn device_by_key_hash(&self, key_hash: &str) -> CatalogResult<Option<(Device, User)>> {
        let sql =
            format!("select {DEVICE}, {USER} from devices d join users u on u.id = d.user_id where d.key_hash = $1");
        let row = self.db.read().await?.opt(&sql, params![key_hash]).await?;
        row.map(|r| Ok((rows::device(&r, 0)?, rows::user(&r, 8)?))).transpose()
    }

    async fn set_device_flag(&self, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device> {
        let column = match flag {
            DeviceFlag::Disabled => "is_disabled",
            DeviceFlag::UploadDisabled => "is_upload_disabled",
            DeviceFlag::DownloadDisabled => "is_download_disabled",
        };
        let mut tx = self.db.begin().await?;
        let changed = tx.exec(&format!("update devices set {column} = $1 where id = $2"), params![on, id.0]).await?;
        tx.commit().await?;
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("device {id}")));
        }
        self.find_devices(&DeviceRef::Id(id)).await?.pop().ok_or_else(|| CatalogError::NotFound(format!("device {id}")))
    }

    async fn set_pull_url(&self, device: DeviceId, url: Option<&str>) -> CatalogResult<Device> {
        let mut tx = self.db.begin().await?;
        let changed = tx.exec("update devices set pull_url = $1 where id = $2", params![url, device.0]).await?;
        tx.commit().await?;
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("device {device}")));
        }
        let found = self.find_devices(&DeviceRef::Id(device)).await?.pop();
        found.ok_or_else(|| CatalogError::NotFound(format!("device {device}")))
    }

    async fn devices_with_pull_url(&self) -> CatalogResult<Vec<Device>> {
        self.device_where("d.pull_url is not null", &[]).await
    }

    async fn create_volume(&self, user: UserId, name: &Name) -> CatalogResult<Volume> {
        let sql = "insert into volumes (user_id, name, created_ms) values ($1, $2, $3) returning id";
        let id = self
            .write_one(sql, params![user.0, name.as_str(), now_ms()], |r| r.get::<i64>(0))
            .await
            .map_err(|e| e.on_unique(|| format!("this user already has a volume named '{name}'")))?
            .ok_or_else(|| CatalogError::Schema("no id for the new volume".into()))?;
        Ok(Volume { volume_id: VolumeId(id), name: name.to_string(), user_id: user })
    }

    async fn list_volumes(&self) -> CatalogResult<Vec<Volume>> {
        let rows = self.db.read().await?.rows(&format!("select {VOLUME} from volumes v order by v.id"), &[]).await?;
        rows.iter().map(|r| rows::volume(r, 0)).collect()
    }

    async fn volume_by_name(&self, user: UserId, name: &str) -> CatalogResult<Option<Volume>> {
        let sql = format!("select {VOLUME} from volumes v where v.user_id = $1 and v.name = $2");
        let row = self.db.read().await?.opt(&sql, params![user.0, name]).await?;
        row.map(|r| rows::volume(&r, 0)).transpose()
    }

    async fn create_grant(&self, grant: NewGrant) -> CatalogResult<Grant> {
        let sql = "insert into grants (device_id, volume_id, name, prefix_path, created_ms) values ($1, $2, $3, $4, $5)
                   returning id, device_id, volume_id, name, prefix_path, is_disabled";
        let values = params![grant.device_id.0, grant.volume_id.0, &grant.name, grant.prefix_path.as_str(), now_ms()];
        self.write_one(sql, values, |r| rows::grant(r, 0))
            .await?
            .ok_or_else(|| CatalogError::Schema("no row for the new grant".into()))
    }

    async fn list_grants(&self) -> CatalogResult<Vec<Grant>> {
        self.grants_where("true", &[]).await
    }

    async fn grant(&self, id: GrantId) -> CatalogResult<Option<Grant>> {
        Ok(self.grants_where("g.id = $1", params![id.0]).await?.pop())
    }

    async fn grants_of_device(&self, device: DeviceId) -> CatalogResult<Vec<Grant>> {
        self.grants_where("g.device_id = $1", params![device.0]).await
    }

    async fn set_grant_disabled(&self, id: GrantId, disabled: bool) -> CatalogResult<Grant> {
        let sql = "update grants set is_disabled = $1 where id = $2
                   returning id, device_id, volume_id, name, prefix_path, is_disabled";
        self.write_one(sql, params![disabled, id.0], |r| rows::grant(r, 0))
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("grant {id}")))
    }
}
