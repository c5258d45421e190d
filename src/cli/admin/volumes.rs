//! `ferry admin volume …`.

use clap::Subcommand;

use serde_json::json;

use super::{Failure, FailureCode, Printed, listed, printed, removal, user_named};
use crate::app::Services;
use crate::catalog::{Removed, Volume};
use crate::domain::Name;

#[derive(Subcommand, Debug)]
pub(super) enum VolumeCommand {
    Add {
        name: String,
        #[arg(long)]
        user: String,
    },
    List,
    /// Give a volume another name (its media and grants stay).
    Rename {
        name: String,
        new_name: String,
        #[arg(long)]
        user: String,
    },
    /// Remove a volume with its media items and the grants that mount it.
    Remove {
        name: String,
        #[arg(long)]
        user: String,
        /// Confirm: the volume's media is deleted at once.
        #[arg(long)]
        yes: bool,
    },
}

async fn volume_named(services: &Services, user: &str, name: &str) -> Result<Volume, Failure> {
    let owner = user_named(services, user).await?;
    services
        .catalog
        .volume_by_name(owner.user_id, name)
        .await?
        .ok_or_else(|| Failure::new(FailureCode::NotFound, format!("user '{user}' has no volume named '{name}'")))
}

pub(super) async fn run(services: &Services, command: VolumeCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        VolumeCommand::Add { name, user } => {
            let owner = user_named(services, &user).await?;
            let volume = catalog.create_volume(owner.user_id, &Name::parse(&name)?).await?;
            let text = format!("volume {} '{}' of '{}'", volume.volume_id, volume.name, owner.name);
            printed(&volume, text)
        }
        VolumeCommand::Rename { name, new_name, user } => {
            let volume = volume_named(services, &user, &name).await?;
            catalog.rename_volume(volume.volume_id, &Name::parse(&new_name)?).await?;
            let volume = volume_named(services, &user, &new_name).await?;
            let text = format!("volume {} '{name}' of '{user}' is now '{}'", volume.volume_id, volume.name);
            printed(&volume, text)
        }
        VolumeCommand::Remove { name, user, yes } => {
            let volume = volume_named(services, &user, &name).await?;
            let label = format!("volume '{name}' of '{user}'");
            removal::confirmed(yes, &label, "its media items and the grants that mount it")?;
            let identity = json!({"volume_id": volume.volume_id, "name": volume.name, "user_id": volume.user_id});
            removal::remove(services, Removed::Volume(volume.volume_id), volume.user_id, identity, label).await?
        }
        VolumeCommand::List => listed(&catalog.list_volumes().await?, |v| {
            format!("volume {} '{}' of user {}", v.volume_id, v.name, v.user_id)
        }),
    })
}
