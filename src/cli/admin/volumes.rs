//! `ferry admin volume …`.

use clap::Subcommand;

use super::{Failure, Printed, listed, printed, user_named};
use crate::app::Services;
use crate::domain::Name;

#[derive(Subcommand, Debug)]
pub(super) enum VolumeCommand {
    Add {
        name: String,
        #[arg(long)]
        user: String,
    },
    List,
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
        VolumeCommand::List => listed(&catalog.list_volumes().await?, |v| {
            format!("volume {} '{}' of user {}", v.volume_id, v.name, v.user_id)
        }),
    })
}
