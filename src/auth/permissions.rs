//! Every endpoint's required permission, in one table (API.md "Identity and permissions").
//! Handlers name their [`Endpoint`]; extractors call [`authorize`]. Adding an endpoint means
//! adding a row here, nowhere else.

use super::Principal;
use crate::domain::{Level, Scope};

/// A group of endpoints sharing one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Device family `current` and `media_grant`: answered even for a disabled device (the
    /// flags in the answer say so).
    DeviceStatus,
    /// Device family (§1) calls made with the device key.
    DeviceFamily,
    /// Device family DELETE media: device key or the owner's token.
    DeviceMediaDelete,
    /// Presigned multipart family (§2).
    Multipart,
    /// Fetching one's own stored file (multipart `location`, session `urls.file`): any of
    /// the owner's tokens, since the uploading credential must work.
    OwnFile,
    /// Upload-session family (§3): register, upload, finish, remote, blob.
    SessionUpload,
    /// Gallery reads (§4): paths, events, stats, files.
    GalleryRead,
    /// Gallery upload, upload-url, pull, harvest.
    GalleryUpload,
    /// Gallery delete.
    GalleryDelete,
    /// tus resumable uploads (§5).
    Tus,
    /// Deleting a library or multipart file (API.md §5).
    FileDelete,
    /// The caller's own usage (`GET /api/usage`).
    UsageRead,
    /// Ferry's own account info (`GET /api/me`).
    AccountInfo,
    /// The account's items of every family, newest first, and their content (`/api/timeline`).
    TimelineRead,
    /// Deleting an item of any family from the timeline (each by its family's rules).
    TimelineDelete,
    /// The account's devices with their stats (`GET /api/devices`).
    DevicesRead,
}

/// Which credentials an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    DeviceKey,
    Token,
    DeviceKeyOrToken,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub accepts: Accepts,
    pub min_level: Level,
    /// Tokens need this scope; `None` = any token.
    pub scope: Option<Scope>,
    /// Whether a disabled device may still call it.
    pub disabled_device_ok: bool,
    /// Whether the web gallery's session cookie may stand in for a token. Not for the
    /// multipart family: its start changes state on a GET, which no CSRF token guards, and
    /// the page never calls it.
    pub web_ok: bool,
}

const fn rule(accepts: Accepts, min_level: Level, scope: Option<Scope>) -> Rule {
    Rule { accepts, min_level, scope, disabled_device_ok: false, web_ok: true }
}

/// The table.
pub const fn rule_for(endpoint: Endpoint) -> Rule {
    use {Accepts::*, Endpoint::*, Level::*};
    match endpoint {
        DeviceStatus => Rule { disabled_device_ok: true, ..rule(DeviceKey, Viewer, None) },
        DeviceFamily => rule(DeviceKey, Viewer, None),
        DeviceMediaDelete => rule(DeviceKeyOrToken, Viewer, Some(Scope::Delete)),
        Multipart => Rule { web_ok: false, ..rule(Token, Uploader, Some(Scope::Upload)) },
        OwnFile => rule(Token, Viewer, None),
        SessionUpload => rule(Token, Uploader, Some(Scope::Upload)),
        GalleryRead => rule(Token, Viewer, Some(Scope::Read)),
        GalleryUpload => rule(Token, Uploader, Some(Scope::Upload)),
        GalleryDelete => rule(Token, Viewer, Some(Scope::Delete)),
        FileDelete => rule(Token, Viewer, Some(Scope::Delete)),
        UsageRead => rule(Token, Viewer, Some(Scope::Read)),
        Tus => rule(Token, Uploader, Some(Scope::Upload)),
        AccountInfo => rule(Token, Viewer, None),
        TimelineRead => rule(Token, Viewer, Some(Scope::Read)),
        TimelineDelete => rule(Token, Viewer, Some(Scope::Delete)),
        DevicesRead => rule(Token, Viewer, Some(Scope::Read)),
    }
}

/// Why a request was refused; the HTTP layer maps each to its family's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No credential, or one that matches nothing (401; device family 403).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden(String),
    /// The device is disabled (412).
    DeviceDisabled,
}

/// Decides whether `principal` may call `endpoint`.
pub fn authorize(endpoint: Endpoint, principal: Option<&Principal>) -> Result<(), Denial> {
    let rule = rule_for(endpoint);
    let principal = principal.ok_or(Denial::Unauthenticated)?;
    match (principal, rule.accepts) {
        (Principal::Device { device, .. }, Accepts::DeviceKey | Accepts::DeviceKeyOrToken) => {
            if device.is_disabled && !rule.disabled_device_ok {
                return Err(Denial::DeviceDisabled);
            }
        }
        (Principal::Token { token, .. }, Accepts::Token | Accepts::DeviceKeyOrToken) => {
            if let Some(scope) = rule.scope.filter(|s| !token.scopes.contains(*s)) {
                return Err(Denial::Forbidden(format!("this token lacks the '{}' scope", scope.as_str())));
            }
        }
        (Principal::Web { .. }, Accepts::Token | Accepts::DeviceKeyOrToken) if !rule.web_ok => {
            return Err(Denial::Forbidden("this endpoint needs an API token, not the web session".into()));
        }
        // a signed-in browser acts as its user, within the scopes it signed in with
        (Principal::Web { session, .. }, Accepts::Token | Accepts::DeviceKeyOrToken) => {
            if let Some(scope) = rule.scope.filter(|s| !session.scopes.contains(*s)) {
                return Err(Denial::Forbidden(format!("this web session lacks the '{}' scope", scope.as_str())));
            }
        }
        (Principal::Device { .. }, Accepts::Token) => {
            return Err(Denial::Forbidden("this endpoint needs an API token, not a device key".into()));
        }
        (Principal::Token { .. } | Principal::Web { .. }, Accepts::DeviceKey) => {
            return Err(Denial::Unauthenticated);
        }
    }
    let level = principal.user().level;
    if level < rule.min_level {
        return Err(Denial::Forbidden(format!(
            "this needs user level {} or higher (this account is {level})",
            rule.min_level
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Device, TokenRecord, User};
    use crate::domain::{DeviceId, TokenId, UserId};

    fn user(level: Level) -> User {
        User { user_id: UserId(1), name: "u".into(), level }
    }

    fn token(level: Level, scopes: &str) -> Principal {
        let token = TokenRecord {
            token_id: TokenId(1),
            user_id: UserId(1),
            scopes: scopes.parse().unwrap(),
            is_revoked: false,
            created: String::new(),
        };
        Principal::Token { user: user(level), token }
    }

    fn device(disabled: bool) -> Principal {
        let device = Device {
            device_id: DeviceId(1),
            device_name: "cam".into(),
            user_id: UserId(1),
            upload_priority: 0,
            is_disabled: disabled,
            is_upload_disabled: false,
            is_download_disabled: false,
            pull_url: None,
        };
        Principal::Device { device, owner: user(Level::Uploader) }
    }

    #[test]
    fn the_table_decides() {
        use Endpoint::*;
        assert_eq!(authorize(Multipart, None), Err(Denial::Unauthenticated));
        assert!(authorize(Multipart, Some(&token(Level::Uploader, "upload"))).is_ok());
        assert!(matches!(authorize(Multipart, Some(&token(Level::Uploader, "read"))), Err(Denial::Forbidden(_))));
        assert!(matches!(authorize(Multipart, Some(&token(Level::Viewer, "upload"))), Err(Denial::Forbidden(_))));
        assert!(authorize(GalleryRead, Some(&token(Level::Viewer, "read"))).is_ok());
        assert!(authorize(DeviceFamily, Some(&device(false))).is_ok());
        assert_eq!(authorize(DeviceFamily, Some(&device(true))), Err(Denial::DeviceDisabled));
        assert!(authorize(DeviceStatus, Some(&device(true))).is_ok());
        assert_eq!(authorize(DeviceFamily, Some(&token(Level::Admin, "admin"))), Err(Denial::Unauthenticated));
        assert!(authorize(DeviceMediaDelete, Some(&token(Level::Viewer, "delete"))).is_ok());
        assert!(matches!(authorize(Tus, Some(&device(false))), Err(Denial::Forbidden(_))));
    }
}
