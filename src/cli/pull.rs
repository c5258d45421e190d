//! `ferry pull DIR [--from /prefix]`: the command line of [`crate::sync_client::pull`].

use std::path::PathBuf;

use clap::Args;

use super::sync::{SyncArgs, fatal, finish, interrupted};
use crate::sync_client::pull::{PullOptions, pull};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The local folder to mirror into (created when missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The part of the volume to mirror [default: the grant's prefix]
    #[arg(long, value_name = "/PREFIX")]
    pub from: Option<String>,
    /// Remove local files whose media were deleted on the server (only when unchanged here)
    #[arg(long)]
    pub delete: bool,
    /// Replace local files that differ from the server's even when they were changed here
    /// (or were there before the first pull); without it they are kept and reported
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
}

pub async fn run(args: PullArgs) -> i32 {
    let options = match args.sync.filters() {
        Ok(filters) => PullOptions { filters, delete: args.delete, overwrite: args.overwrite },
        Err(e) => return fatal("pull", &e),
    };
    let created = !args.dir.exists();
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("ferry pull: cannot create {}: {e}", args.dir.display());
        return 2;
    }
    let mut session = match args.sync.session(&args.dir, args.from.as_deref()).await {
        Ok(session) => session,
        Err(e) => {
            if created {
                // a run that never started leaves no empty folder behind
                let _ = std::fs::remove_dir(&args.dir);
            }
            return fatal("pull", &e);
        }
    };
    let cache = session.cache.clone();
    let progress = session.progress.clone();
    tokio::select! {
        outcome = pull(&mut session, &options) => match outcome {
            Ok(summary) => finish(args.sync.json, &summary, &summary.describe(), (&summary.failures, summary.conflicts), &progress),
            Err(e) => fatal("pull", &e),
        },
        _ = tokio::signal::ctrl_c() => interrupted("pull", &cache),
    }
}
