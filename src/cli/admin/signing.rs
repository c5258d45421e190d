//! `ferry admin sign-upload` / `sign-download`: signed URLs for the upload host.

use clap::Args;
use serde_json::json;

use super::{Failure, FailureCode, Printed, user_named};
use crate::app::Services;
use crate::config::parse_duration;
use crate::domain::Sha256Hex;
use crate::signing::targets;

#[derive(Args, Debug)]
pub(super) struct SignUploadArgs {
    #[arg(long)]
    user: String,
    /// Bind the exact size in bytes.
    #[arg(long)]
    size: Option<u64>,
    /// Bind the SHA-256 (lowercase hex).
    #[arg(long)]
    sha256: Option<String>,
    /// Lifetime, e.g. 15m, 24h.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

#[derive(Args, Debug)]
pub(super) struct SignDownloadArgs {
    sha256: String,
    #[arg(long, default_value = "1h")]
    ttl: String,
}

pub(super) async fn sign_upload(services: &Services, args: SignUploadArgs) -> Result<Printed, Failure> {
    let owner = user_named(services, &args.user).await?;
    let sha256 = args.sha256.as_deref().map(Sha256Hex::parse).transpose()?;
    let expires = expiry(&args.ttl)?;
    let base = services.upload_base().map_err(|e| Failure::new(FailureCode::Config, e.to_string()))?;
    let url = targets::blob_put(&services.signer, &base, owner.user_id, args.size, sha256.as_ref(), expires);
    Ok(Printed { json: json!({"method": "PUT", "url": url, "expires": expires}), text: url })
}

pub(super) async fn sign_download(services: &Services, args: SignDownloadArgs) -> Result<Printed, Failure> {
    let sha256 = Sha256Hex::parse(&args.sha256)?;
    if services.catalog.blob(&sha256).await?.is_none() {
        return Err(Failure::new(FailureCode::NotFound, format!("no blob {sha256}")));
    }
    let expires = expiry(&args.ttl)?;
    let base = services.upload_base().map_err(|e| Failure::new(FailureCode::Config, e.to_string()))?;
    let url = targets::blob_get(&services.signer, &base, &sha256, expires);
    Ok(Printed { json: json!({"method": "GET", "url": url, "expires": expires}), text: url })
}

/// The Unix time a URL of lifetime `ttl` expires at.
fn expiry(ttl: &str) -> Result<i64, Failure> {
    let ttl = parse_duration(ttl).map_err(|e| Failure::new(FailureCode::InvalidArgument, e.to_string()))?;
    Ok(crate::clock::now_secs() + ttl.as_secs() as i64)
}
