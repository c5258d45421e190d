//! `ferry admin device …`: devices, their session keys (shown once), flags and pull source.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, FailureCode, Printed, device_for, listed, printed, removal, user_named};
use crate::app::Services;
use crate::auth::secrets;
use crate::catalog::{Device, DeviceFlag, NewDevice, Removed};
use crate::domain::Name;

#[derive(Subcommand, Debug)]
pub(super) enum DeviceCommand {
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
    },
    List,
    /// Give a device another name (its key, grants and events stay).
    Rename {
        device: String,
        new_name: String,
    },
    /// Remove a device: its key stops working at once, its gallery events and its grants go
    /// (the volumes it mounted keep their media).
    Remove {
        device: String,
        /// Confirm: the device's gallery events are deleted at once.
        #[arg(long)]
        yes: bool,
    },
    Disable {
        device: String,
    },
    Enable {
        device: String,
    },
    /// `device uploads off DEVICE` / `device uploads on DEVICE`.
    Uploads {
        state: OnOff,
        device: String,
    },
    /// Register the device's gallery pull source: an HTTP base URL serving `index.json` and the
    /// files (`--url none` removes it).
    PullSource {
        #[arg(long)]
        device: String,
        #[arg(long)]
        url: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(super) enum OnOff {
    On,
    Off,
}

pub(super) async fn run(services: &Services, command: DeviceCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        DeviceCommand::Add { user, name } => {
            let owner = user_named(services, &user).await?;
            let key = secrets::new_device_key();
            let new = NewDevice { user_id: owner.user_id, name: Name::parse(&name)?, key_hash: key.hash };
            let device = catalog.create_device(new).await?;
            let key = key.secret;
            let out = json!({
                "device_id": device.device_id, "device_name": device.device_name,
                "user_id": device.user_id, "device_session_key": key,
            });
            let text = format!(
                "device {} '{}' for '{}'; device_session_key: {key}\n(shown once; store it now)",
                device.device_id, device.device_name, owner.name
            );
            Printed { json: out, text }
        }
        DeviceCommand::List => listed(&catalog.list_devices().await?, device_line),
        DeviceCommand::Rename { device, new_name } => {
            let found = device_for(services, &device).await?;
            catalog.rename_device(found.device_id, &Name::parse(&new_name)?).await?;
            let renamed = device_for(services, &found.device_id.to_string()).await?;
            printed(&renamed, format!("{} (was '{}')", device_line(&renamed), found.device_name))
        }
        DeviceCommand::Remove { device, yes } => {
            let found = device_for(services, &device).await?;
            let label = format!("device '{}' of user {}", found.device_name, found.user_id);
            removal::confirmed(yes, &label, "its key, its gallery events and its grants")?;
            let identity =
                json!({"device_id": found.device_id, "device_name": found.device_name, "user_id": found.user_id});
            removal::remove(services, Removed::Device(found.device_id), found.user_id, identity, label).await?
        }
        DeviceCommand::Disable { device } => set_flag(services, &device, DeviceFlag::Disabled, true).await?,
        DeviceCommand::Enable { device } => set_flag(services, &device, DeviceFlag::Disabled, false).await?,
        DeviceCommand::Uploads { state, device } => {
            set_flag(services, &device, DeviceFlag::UploadDisabled, matches!(state, OnOff::Off)).await?
        }
        DeviceCommand::PullSource { device, url } => {
            let device = device_for(services, &device).await?;
            let url = match url.as_str() {
                "none" | "" => None,
                // the same check the pull itself makes, so a bad source is refused now
                u => {
                    crate::remote::UrlBase::parse(u)
                        .map_err(|e| Failure::new(FailureCode::InvalidArgument, e.to_string()))?;
                    Some(u.trim_end_matches('/'))
                }
            };
            let device = catalog.set_pull_url(device.device_id, url).await?;
            let text =
                format!("{} pulls from {}", device_line(&device), device.pull_url.as_deref().unwrap_or("nowhere"));
            printed(&device, text)
        }
    })
}

fn device_line(d: &Device) -> String {
    let mut flags = Vec::new();
    if d.is_disabled {
        flags.push("disabled");
    }
    if d.is_upload_disabled {
        flags.push("uploads off");
    }
    format!(
        "device {} '{}' of user {}{}",
        d.device_id,
        d.device_name,
        d.user_id,
        if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(", ")) }
    )
}

async fn set_flag(services: &Services, reference: &str, flag: DeviceFlag, on: bool) -> Result<Printed, Failure> {
    let device = device_for(services, reference).await?;
    let device = services.catalog.set_device_flag(device.device_id, flag, on).await?;
    let text = device_line(&device);
    Ok(printed(&device, text))
}
