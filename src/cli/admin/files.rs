//! `ferry admin files …`: the library's files.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, FailureCode, Printed, listed, user_named};
use crate::app::Services;

#[derive(Subcommand, Debug)]
pub(super) enum FilesCommand {
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a library file; its bytes go after the retention and collection, like every delete.
    Delete { file_id: String },
}

pub(super) async fn run(services: &Services, command: FilesCommand) -> Result<Printed, Failure> {
    match command {
        FilesCommand::List { user } => list(services, user).await,
        FilesCommand::Delete { file_id } => delete(services, &file_id).await,
    }
}

async fn list(services: &Services, user: Option<String>) -> Result<Printed, Failure> {
    let user = match user {
        Some(name) => Some(user_named(services, &name).await?.user_id),
        None => None,
    };
    Ok(listed(&services.catalog.list_files(user).await?, |f| {
        format!("file {} '{}' in {}/{} ({} bytes, {})", f.file_id, f.title, f.user_id, f.folder_key, f.size, f.sha256)
    }))
}

async fn delete(services: &Services, file_id: &str) -> Result<Printed, Failure> {
    let deleted =
        services.library.delete(None, file_id).await.map_err(|e| Failure::new(FailureCode::Catalog, e.to_string()))?;
    if !deleted {
        return Err(Failure::new(FailureCode::NotFound, format!("no file '{file_id}'")));
    }
    Ok(Printed { json: json!({"file_id": file_id, "deleted": true}), text: format!("deleted file {file_id}") })
}
