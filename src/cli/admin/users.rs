//! `ferry admin user …`.

use clap::Subcommand;

use super::{Failure, Printed, listed, printed};
use crate::app::Services;
use crate::domain::{Level, Name};

#[derive(Subcommand, Debug)]
pub(super) enum UserCommand {
    Add {
        name: String,
        #[arg(long)]
        level: String,
    },
    List,
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
    })
}
