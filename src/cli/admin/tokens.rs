//! `ferry admin token …`: API tokens, shown once when issued.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, Printed, listed, printed, user_named};
use crate::app::Services;
use crate::auth::secrets;
use crate::domain::{ScopeSet, TokenId};

#[derive(Subcommand, Debug)]
pub(super) enum TokenCommand {
    Add {
        #[arg(long)]
        user: String,
        /// Comma list of basic, user.info, upload, read, delete, manage, share, admin.
        #[arg(long)]
        scopes: String,
    },
    List,
    Revoke {
        token_id: String,
    },
}

pub(super) async fn run(services: &Services, command: TokenCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        TokenCommand::Add { user, scopes } => {
            let scopes: ScopeSet = scopes.parse()?;
            let user = user_named(services, &user).await?;
            let token = secrets::new_api_token();
            let record = catalog.create_token(user.user_id, scopes, &token.hash).await?;
            let secret = token.secret;
            let out =
                json!({"token_id": record.token_id, "token": secret, "scopes": record.scopes, "user_id": user.user_id});
            let text = format!(
                "token {} for '{}' ({}): {secret}\n(shown once; store it now)",
                record.token_id,
                user.name,
                scopes.to_list()
            );
            Printed { json: out, text }
        }
        TokenCommand::List => listed(&catalog.list_tokens().await?, |t| {
            format!(
                "token {} of user {} [{}]{}",
                t.token_id,
                t.user_id,
                t.scopes.to_list(),
                if t.is_revoked { " revoked" } else { "" }
            )
        }),
        TokenCommand::Revoke { token_id } => {
            let id: TokenId = token_id.parse()?;
            let record = catalog.revoke_token(id).await?;
            printed(&record, format!("token {id} revoked"))
        }
    })
}
