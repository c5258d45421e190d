//! `ferry admin user …`.

use clap::Subcommand;

use serde_json::json;

use super::{Failure, FailureCode, Printed, listed, printed, removal, user_named};
use crate::app::Services;
use crate::catalog::Removed;
use crate::domain::{Level, Name};

#[derive(Subcommand, Debug)]
pub(super) enum UserCommand {
    /// Create a user.
    Add {
        /// The user's name (letters, digits, `-`, `_`, `.`).
        name: String,
        /// What the user may do: viewer, uploader, manager or admin.
        #[arg(long)]
        level: String,
    },
    List,
    /// Give a user another name (its tokens, devices and media stay).
    Rename {
        name: String,
        new_name: String,
    },
    /// Remove a user and everything of the account: tokens, devices, volumes, media of every
    /// family, uploads in flight. Content no other account holds is collected after
    /// FERRY_GC_GRACE.
    Remove {
        name: String,
        /// Confirm: the account's media is deleted at once.
        #[arg(long)]
        yes: bool,
    },
    /// Limit what the account may hold: a size like 50GiB, or `none`.
    SetQuota {
        name: String,
        size: String,
    },
}

pub(super) async fn run(services: &Services, command: UserCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        UserCommand::Add { name, level } => {
            let level: Level = level.parse()?;
            let user = catalog.create_user(&Name::parse(&name)?, level).await?;
            let text = format!("created user {} '{}' ({})", user.user_id, user.name, user.level);
            printed(&user, text)
        }
        UserCommand::List => {
            listed(&catalog.list_users().await?, |u| format!("user {} '{}' ({})", u.user_id, u.name, u.level))
        }
        UserCommand::Rename { name, new_name } => {
            let user = user_named(services, &name).await?;
            catalog.rename_user(user.user_id, &Name::parse(&new_name)?).await?;
            let user = user_named(services, &new_name).await?;
            let text = format!("user {} '{}' is now '{}'", user.user_id, name, user.name);
            printed(&user, text)
        }
        UserCommand::Remove { name, yes } => {
            let user = user_named(services, &name).await?;
            removal::confirmed(yes, &format!("user '{name}'"), "its tokens, devices, volumes and all of its media")?;
            let identity = json!({"user_id": user.user_id, "name": user.name});
            removal::remove(services, Removed::User(user.user_id), user.user_id, identity, format!("user '{name}'"))
                .await?
        }
        UserCommand::SetQuota { name, size } => {
            let user = user_named(services, &name).await?;
            let quota = match size.trim() {
                "none" => None,
                size => {
                    let bytes = crate::config::parse_size(size)
                        .map_err(|e| Failure::new(FailureCode::InvalidArgument, e.to_string()))?;
                    Some(i64::try_from(bytes).map_err(|_| Failure::new(FailureCode::InvalidArgument, "too large"))?)
                }
            };
            catalog.set_quota(user.user_id, quota).await?;
            let json = json!({"user_id": user.user_id, "name": user.name, "quota_bytes": quota});
            let text = match quota {
                Some(bytes) => format!("user '{}' may hold {bytes} bytes", user.name),
                None => format!("user '{}' has no quota", user.name),
            };
            Printed { json, text }
        }
    })
}

/// `admin usage`: what each account stores (or one), and what the server stores.
pub(super) async fn usage(services: &Services, user: Option<String>) -> Result<Printed, Failure> {
    let user = match user {
        Some(name) => Some(user_named(services, &name).await?.user_id),
        None => None,
    };
    let (users, server) = (services.catalog.usage(user).await?, services.catalog.server_usage().await?);
    let mut text: Vec<String> = users
        .iter()
        .map(|u| {
            let quota = u.quota_bytes.map_or("no quota".to_owned(), |q| format!("quota {q}"));
            format!(
                "user {} '{}': {} items, {} bytes, {} held ({} only deleted items use), {quota}",
                u.user_id, u.name, u.media_items, u.logical_bytes, u.held_bytes, u.deleted_bytes_pending
            )
        })
        .collect();
    text.push(format!(
        "server: {} blobs, {} bytes stored ({} in renditions), {} bytes saved by dedup",
        server.blobs, server.physical_bytes, server.rendition_bytes, server.dedup_saved_bytes
    ));
    Ok(Printed { json: json!({"users": users, "server": server}), text: text.join("\n") })
}
