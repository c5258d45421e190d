//! `ferry admin files …`: the library's files.

use clap::Subcommand;

use super::{Failure, Printed, listed, user_named};
use crate::app::Services;

#[derive(Subcommand, Debug)]
pub(super) enum FilesCommand {
    List {
        #[arg(long)]
        user: Option<String>,
    },
}

pub(super) async fn run(services: &Services, command: FilesCommand) -> Result<Printed, Failure> {
    let FilesCommand::List { user } = command;
    let user = match user {
        Some(name) => Some(user_named(services, &name).await?.user_id),
        None => None,
    };
    Ok(listed(&services.catalog.list_files(user).await?, |f| {
        format!("file {} '{}' in {}/{} ({} bytes, {})", f.file_id, f.title, f.user_id, f.folder_key, f.size, f.sha256)
    }))
}
