//! `ferry admin grant …`: a device's mounts of its owner's volumes.

use clap::Subcommand;

use super::{Failure, FailureCode, Printed, device_for, listed, printed};
use crate::app::Services;
use crate::catalog::NewGrant;
use crate::domain::{GrantId, MediaPath};

#[derive(Subcommand, Debug)]
pub(super) enum GrantCommand {
    Add {
        /// A device name (when unique), USER/NAME, or an id.
        #[arg(long)]
        device: String,
        /// A volume of the device's owner.
        #[arg(long)]
        volume: String,
        #[arg(long, default_value = "/")]
        prefix: String,
        /// Defaults to the volume's name.
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Disable {
        grant_id: String,
    },
    Enable {
        grant_id: String,
    },
}

pub(super) async fn run(services: &Services, command: GrantCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        GrantCommand::Add { device, volume, prefix, name } => {
            let device = device_for(services, &device).await?;
            let volume = catalog.volume_by_name(device.user_id, &volume).await?.ok_or_else(|| {
                Failure::new(FailureCode::NotFound, format!("the device's owner has no volume named '{volume}'"))
            })?;
            let prefix_path = MediaPath::parse_prefix(&prefix)?;
            let name = name.unwrap_or_else(|| volume.name.clone());
            let grant = catalog
                .create_grant(NewGrant { device_id: device.device_id, volume_id: volume.volume_id, prefix_path, name })
                .await?;
            let text = format!(
                "grant {} mounts volume '{}' at {} on device '{}'",
                grant.media_grant_id, volume.name, grant.prefix_path, device.device_name
            );
            printed(&grant, text)
        }
        GrantCommand::List => listed(&catalog.list_grants().await?, |g| {
            format!(
                "grant {} '{}': device {} → volume {} {}{}",
                g.media_grant_id,
                g.grant_name,
                g.device_id,
                g.volume_id,
                g.prefix_path,
                if g.is_disabled { " (disabled)" } else { "" }
            )
        }),
        GrantCommand::Disable { grant_id } => set_disabled(services, &grant_id, true).await?,
        GrantCommand::Enable { grant_id } => set_disabled(services, &grant_id, false).await?,
    })
}

async fn set_disabled(services: &Services, grant_id: &str, disabled: bool) -> Result<Printed, Failure> {
    let id: GrantId = grant_id.parse()?;
    let grant = services.catalog.set_grant_disabled(id, disabled).await?;
    let text = format!("grant {} {}", grant.media_grant_id, if disabled { "disabled" } else { "enabled" });
    Ok(printed(&grant, text))
}
