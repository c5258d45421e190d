//! Users, tokens, devices, volumes and grants on SQLite.

use sqlx::{AssertSqlSafe, SqlitePool};

use super::on_unique;
use crate::catalog::rows::{DeviceRow, GrantRow, OWNER_COLUMNS, TokenRow, UserRow, WithOwner};
use crate::catalog::*;
use crate::clock::now_ms;
use crate::domain::{DeviceId, GrantId, Level, Name, ScopeSet, TokenId, UserId, VolumeId};

pub async fn create_user(pool: &SqlitePool, name: &Name, level: Level) -> CatalogResult<User> {
    let (id,): (i64,) = sqlx::query_as("insert into users (name, level, created_ms) values (?, ?, ?) returning id")
        .bind(name.as_str())
        .bind(level.as_str())
        .bind(now_ms())
        .fetch_one(pool)
        .await
        .map_err(|e| on_unique(e, || format!("a user named '{name}' already exists")))?;
    Ok(User { user_id: UserId(id), name: name.to_string(), level })
}

pub async fn user(pool: &SqlitePool, id: UserId) -> CatalogResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("select id, name, level from users where id = ?").bind(id.0).fetch_optional(pool).await?;
    row.map(UserRow::into_user).transpose()
}

pub async fn user_by_name(pool: &SqlitePool, name: &str) -> CatalogResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("select id, name, level from users where name = ?").bind(name).fetch_optional(pool).await?;
    row.map(UserRow::into_user).transpose()
}

pub async fn list_users(pool: &SqlitePool) -> CatalogResult<Vec<User>> {
    let rows: Vec<UserRow> = sqlx::query_as("select id, name, level from users order by id").fetch_all(pool).await?;
    rows.into_iter().map(UserRow::into_user).collect()
}

const TOKEN_COLUMNS: &str = "id, user_id, scopes, revoked_ms, created_ms";

pub async fn create_token(
    pool: &SqlitePool,
    user: UserId,
    scopes: ScopeSet,
    secret_hash: &str,
) -> CatalogResult<TokenRecord> {
    let row: TokenRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into tokens (user_id, secret_hash, scopes, created_ms) values (?, ?, ?, ?) returning {TOKEN_COLUMNS}"
    )))
    .bind(user.0)
    .bind(secret_hash)
    .bind(scopes.to_list())
    .bind(now_ms())
    .fetch_one(pool)
    .await?;
    row.into_record()
}

pub async fn list_tokens(pool: &SqlitePool) -> CatalogResult<Vec<TokenRecord>> {
    let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(format!("select {TOKEN_COLUMNS} from tokens order by id")))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(TokenRow::into_record).collect()
}

pub async fn revoke_token(pool: &SqlitePool, id: TokenId) -> CatalogResult<TokenRecord> {
    // coalesce keeps the first revocation time when revoking twice
    let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update tokens set revoked_ms = coalesce(revoked_ms, ?) where id = ? returning {TOKEN_COLUMNS}"
    )))
    .bind(now_ms())
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| CatalogError::NotFound(format!("token {id}")))?.into_record()
}

pub async fn token_by_hash(pool: &SqlitePool, secret_hash: &str) -> CatalogResult<Option<(TokenRecord, User)>> {
    let row: Option<WithOwner<TokenRow>> = sqlx::query_as(AssertSqlSafe(format!(
        "select t.id, t.user_id, t.scopes, t.revoked_ms, t.created_ms, {OWNER_COLUMNS}
         from tokens t join users u on u.id = t.user_id where t.secret_hash = ? and t.revoked_ms is null"
    )))
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    row.map(WithOwner::into_token).transpose()
}

const DEVICE_COLUMNS: &str = "d.id, d.user_id, d.name, d.upload_priority, d.is_disabled, d.is_upload_disabled, d.is_download_disabled, d.pull_url";

pub async fn create_device(pool: &SqlitePool, device: NewDevice) -> CatalogResult<Device> {
    let (id,): (i64,) =
        sqlx::query_as("insert into devices (user_id, name, key_hash, created_ms) values (?, ?, ?, ?) returning id")
            .bind(device.user_id.0)
            .bind(device.name.as_str())
            .bind(&device.key_hash)
            .bind(now_ms())
            .fetch_one(pool)
            .await
            .map_err(|e| on_unique(e, || format!("this user already has a device named '{}'", device.name)))?;
    device_by_id(pool, DeviceId(id)).await?.ok_or_else(|| CatalogError::NotFound("new device".into()))
}

async fn device_by_id(pool: &SqlitePool, id: DeviceId) -> CatalogResult<Option<Device>> {
    let row: Option<DeviceRow> =
        sqlx::query_as(AssertSqlSafe(format!("select {DEVICE_COLUMNS} from devices d where d.id = ?")))
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Device::from))
}

pub async fn list_devices(pool: &SqlitePool) -> CatalogResult<Vec<Device>> {
    let rows: Vec<DeviceRow> =
        sqlx::query_as(AssertSqlSafe(format!("select {DEVICE_COLUMNS} from devices d order by d.id")))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Device::from).collect())
}

pub async fn find_devices(pool: &SqlitePool, reference: &DeviceRef) -> CatalogResult<Vec<Device>> {
    let rows: Vec<DeviceRow> = match reference {
        DeviceRef::Id(id) => return Ok(device_by_id(pool, *id).await?.into_iter().collect()),
        DeviceRef::Qualified { user, device } => sqlx::query_as(AssertSqlSafe(format!(
            "select {DEVICE_COLUMNS} from devices d join users u on u.id = d.user_id where u.name = ? and d.name = ?"
        )))
        .bind(user)
        .bind(device)
        .fetch_all(pool)
        .await?,
        DeviceRef::Name(name) => {
            sqlx::query_as(AssertSqlSafe(format!(
                "select {DEVICE_COLUMNS} from devices d where d.name = ? order by d.id"
            )))
            .bind(name)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(Device::from).collect())
}

pub async fn device_by_key_hash(pool: &SqlitePool, key_hash: &str) -> CatalogResult<Option<(Device, User)>> {
    let row: Option<WithOwner<DeviceRow>> = sqlx::query_as(AssertSqlSafe(format!(
        "select {DEVICE_COLUMNS}, {OWNER_COLUMNS} from devices d join users u on u.id = d.user_id where d.key_hash = ?"
    )))
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    row.map(WithOwner::into_device).transpose()
}

pub async fn set_device_flag(pool: &SqlitePool, id: DeviceId, flag: DeviceFlag, on: bool) -> CatalogResult<Device> {
    let column = match flag {
        DeviceFlag::Disabled => "is_disabled",
        DeviceFlag::UploadDisabled => "is_upload_disabled",
        DeviceFlag::DownloadDisabled => "is_download_disabled",
    };
    let done = sqlx::query(AssertSqlSafe(format!("update devices set {column} = ? where id = ?")))
        .bind(on)
        .bind(id.0)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(CatalogError::NotFound(format!("device {id}")));
    }
    device_by_id(pool, id).await?.ok_or_else(|| CatalogError::NotFound(format!("device {id}")))
}

pub async fn create_volume(pool: &SqlitePool, user: UserId, name: &Name) -> CatalogResult<Volume> {
    let (id,): (i64,) = sqlx::query_as("insert into volumes (user_id, name, created_ms) values (?, ?, ?) returning id")
        .bind(user.0)
        .bind(name.as_str())
        .bind(now_ms())
        .fetch_one(pool)
        .await
        .map_err(|e| on_unique(e, || format!("this user already has a volume named '{name}'")))?;
    Ok(Volume { volume_id: VolumeId(id), name: name.to_string(), user_id: user })
}

pub async fn list_volumes(pool: &SqlitePool) -> CatalogResult<Vec<Volume>> {
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("select id, name, user_id from volumes order by id").fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, user)| Volume { volume_id: VolumeId(id), name, user_id: UserId(user) })
        .collect())
}

pub async fn volume_by_name(pool: &SqlitePool, user: UserId, name: &str) -> CatalogResult<Option<Volume>> {
    let row: Option<(i64,)> = sqlx::query_as("select id from volumes where user_id = ? and name = ?")
        .bind(user.0)
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id,)| Volume { volume_id: VolumeId(id), name: name.to_owned(), user_id: user }))
}

const GRANT_COLUMNS: &str = "id, device_id, volume_id, name, prefix_path, is_disabled";

pub async fn create_grant(pool: &SqlitePool, grant: NewGrant) -> CatalogResult<Grant> {
    let row: GrantRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into grants (device_id, volume_id, name, prefix_path, created_ms) values (?, ?, ?, ?, ?) returning {GRANT_COLUMNS}"
    )))
    .bind(grant.device_id.0)
    .bind(grant.volume_id.0)
    .bind(&grant.name)
    .bind(grant.prefix_path.as_str())
    .bind(now_ms())
    .fetch_one(pool)
    .await?;
    row.into_grant()
}

pub async fn list_grants(pool: &SqlitePool, device: Option<DeviceId>) -> CatalogResult<Vec<Grant>> {
    let rows: Vec<GrantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {GRANT_COLUMNS} from grants where ? is null or device_id = ? order by id"
    )))
    .bind(device.map(|d| d.0))
    .bind(device.map(|d| d.0))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(GrantRow::into_grant).collect()
}

pub async fn grant(pool: &SqlitePool, id: GrantId) -> CatalogResult<Option<Grant>> {
    let row: Option<GrantRow> =
        sqlx::query_as(AssertSqlSafe(format!("select {GRANT_COLUMNS} from grants where id = ?")))
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
    row.map(GrantRow::into_grant).transpose()
}

pub async fn set_grant_disabled(pool: &SqlitePool, id: GrantId, disabled: bool) -> CatalogResult<Grant> {
    let row: Option<GrantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update grants set is_disabled = ? where id = ? returning {GRANT_COLUMNS}"
    )))
    .bind(disabled)
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| CatalogError::NotFound(format!("grant {id}")))?.into_grant()
}
