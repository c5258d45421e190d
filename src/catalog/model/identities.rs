//! Accounts and what they own: users, tokens, devices, volumes, grants.

use serde::Serialize;

use crate::domain::{DeviceId, GrantId, Level, MediaPath, Name, ScopeSet, TokenId, UserId, VolumeId, WebSessionId};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub user_id: UserId,
    pub name: String,
    pub level: Level,
}

/// An API token's record; the secret itself is never stored, only its hash.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub token_id: TokenId,
    pub user_id: UserId,
    pub scopes: ScopeSet,
    pub is_revoked: bool,
    pub created: String,
}

/// A browser's signed-in session of the web gallery; like a token, only its hash is stored.
#[derive(Debug, Clone, Serialize)]
pub struct WebSession {
    pub session_id: WebSessionId,
    pub user_id: UserId,
    /// What the page may do: a sign-in link grants read, upload and delete; an API token
    /// typed into the sign-in form passes on its own scopes, never more.
    pub scopes: ScopeSet,
    /// How it was opened: `link` or `token`.
    pub via: String,
    pub created: String,
    pub expires: String,
    pub is_revoked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub device_id: DeviceId,
    pub device_name: String,
    pub user_id: UserId,
    pub upload_priority: i64,
    pub is_disabled: bool,
    pub is_upload_disabled: bool,
    pub is_download_disabled: bool,
    /// Gallery pull source: an HTTP base serving `index.json` and the files.
    pub pull_url: Option<String>,
}

/// A device switch the admin CLI can flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFlag {
    Disabled,
    UploadDisabled,
    DownloadDisabled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub volume_id: VolumeId,
    pub name: String,
    pub user_id: UserId,
}

#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    #[serde(serialize_with = "id_as_string")]
    pub media_grant_id: GrantId,
    pub grant_name: String,
    pub device_id: DeviceId,
    pub volume_id: VolumeId,
    pub prefix_path: MediaPath,
    pub is_disabled: bool,
    pub volume_encryption_key: Option<String>,
}

fn id_as_string<S: serde::Serializer>(id: &GrantId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// How a command names a device: `USER/NAME`, an id, or a name unique across users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    Id(DeviceId),
    Qualified { user: String, device: String },
    Name(String),
}

impl DeviceRef {
    pub fn parse(raw: &str) -> Self {
        if let Ok(id) = raw.parse() {
            return DeviceRef::Id(id);
        }
        match raw.split_once('/') {
            Some((user, device)) => DeviceRef::Qualified { user: user.into(), device: device.into() },
            None => DeviceRef::Name(raw.into()),
        }
    }
}

/// What a new user, device, … is created with.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub user_id: UserId,
    pub name: Name,
    pub key_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewGrant {
    pub device_id: DeviceId,
    pub volume_id: VolumeId,
    pub prefix_path: MediaPath,
    pub name: String,
}
