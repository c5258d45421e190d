//! `ferry admin web-link` / `web-session …`: signing people in to the web gallery.

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Failure, FailureCode, Printed, listed, printed, user_named};
use crate::app::Services;
use crate::auth::web::{new_link, sign_in_url};
use crate::config::parse_duration;
use crate::domain::WebSessionId;

#[derive(Args, Debug)]
pub(super) struct WebLinkArgs {
    #[arg(long)]
    user: String,
    /// How long the link may be used (once), e.g. 15m, 1h.
    #[arg(long, default_value = "15m")]
    ttl: String,
}

#[derive(Subcommand, Debug)]
pub(super) enum WebSessionCommand {
    /// Signed-in browsers (live sessions), of one user or all.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Signs a browser out (it is refused within a second, on every replica).
    Revoke { session_id: String },
}

pub(super) async fn web_link(services: &Services, args: WebLinkArgs) -> Result<Printed, Failure> {
    let user = user_named(services, &args.user).await?;
    let ttl = parse_duration(&args.ttl).map_err(|e| Failure::new(FailureCode::InvalidArgument, e.to_string()))?;
    if ttl.is_zero() {
        return Err(Failure::new(FailureCode::InvalidArgument, "--ttl must be more than 0"));
    }
    let base = services.public_base().map_err(|e| Failure::new(FailureCode::Config, e.to_string()))?;
    let link = new_link();
    let expires = crate::clock::now_secs().saturating_add(ttl.as_secs() as i64);
    services.catalog.create_web_link(user.user_id, &link.hash, expires.saturating_mul(1000)).await?;
    let url = sign_in_url(&base, &link.secret);
    let text = format!("{url}\n(signs '{}' in once, until {})", user.name, crate::clock::iso(expires * 1000));
    Ok(Printed { json: json!({"url": url, "expires": expires}), text })
}

pub(super) async fn run(services: &Services, command: WebSessionCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        WebSessionCommand::List { user } => {
            let user = match user {
                Some(name) => Some(user_named(services, &name).await?.user_id),
                None => None,
            };
            listed(&catalog.list_web_sessions(user).await?, |s| {
                format!(
                    "web session {} of user {} via {} [{}] until {}",
                    s.session_id,
                    s.user_id,
                    s.via,
                    s.scopes.to_list(),
                    s.expires
                )
            })
        }
        WebSessionCommand::Revoke { session_id } => {
            let id: WebSessionId = session_id.parse()?;
            let session = catalog.revoke_web_session(id).await?;
            printed(&session, format!("web session {id} revoked"))
        }
    })
}
