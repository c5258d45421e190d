//! `ferry push DIR [--to /prefix]`: the command line of [`crate::sync_client::push`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::sync::{SyncArgs, fatal, finish, interrupted, parse_duration};
use crate::sync_client::push::watch::{server_outage, watch};
use crate::sync_client::push::{ConflictPolicy, PushOptions, PushSummary, push};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The local folder to push
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where in the volume the folder goes [default: the grant's prefix]
    #[arg(long, value_name = "/PREFIX")]
    pub to: Option<String>,
    /// When a path already holds other content on the server
    #[arg(long, value_enum, default_value_t = OnConflict::Skip)]
    pub on_conflict: OnConflict,
    /// Show what would be uploaded (files_uploaded counts it); send no bytes, create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep running; push new or changed files once they stop changing
    #[arg(long)]
    pub watch: bool,
    /// With --watch: how long a file must stay unchanged before it is pushed
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Duration,
    #[command(flatten)]
    pub sync: SyncArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnConflict {
    /// Leave the server's file and report the conflict
    Skip,
    /// Replace it, unless it changed since this run looked (expected_last_updated)
    Overwrite,
    /// Push ours beside it as `name (1).ext`
    Rename,
}

pub async fn run(args: PushArgs) -> i32 {
    let options = match args.sync.filters() {
        Ok(filters) => PushOptions {
            filters,
            on_conflict: match args.on_conflict {
                OnConflict::Skip => ConflictPolicy::Skip,
                OnConflict::Overwrite => ConflictPolicy::Overwrite,
                OnConflict::Rename => ConflictPolicy::Rename,
            },
            dry_run: args.dry_run,
        },
        Err(e) => return fatal("push", &e),
    };
    if args.watch && args.dry_run {
        eprintln!("ferry push: --watch and --dry-run do not go together");
        return 2;
    }
    let mut session = match args.sync.session(&args.dir, args.to.as_deref()).await {
        Ok(session) => session,
        Err(e) => return fatal("push", &e),
    };
    let cache = session.cache.clone();
    let progress = session.progress.clone();
    let json = args.sync.json;
    let report = move |summary: &PushSummary| {
        finish(json, summary, &summary.describe(args.dry_run), (&summary.failures, summary.unresolved), &progress)
    };
    let run = async {
        let (code, first) = match push(&mut session, &options).await {
            Ok(first) => (report(&first), Some(first)),
            // watching outlasts a server that went away after the key was checked
            Err(e) if args.watch && server_outage(&e) => {
                session.progress.warn(format!("{e}; watching, and trying again"));
                (0, None)
            }
            Err(e) => return Err(e),
        };
        if !args.watch {
            return Ok(code);
        }
        session.progress.line(format!("watching {} (Ctrl-C stops)", session.root.display()));
        watch(&mut session, &options, args.settle, first.as_ref(), |summary| {
            report(summary);
        })
        .await
        .map(|()| code)
    };
    tokio::select! {
        outcome = run => match outcome {
            Ok(code) => code,
            Err(e) => fatal("push", &e),
        },
        _ = tokio::signal::ctrl_c() => {
            // in watch mode, Ctrl-C is how a person stops it
            if args.watch { let _ = cache.lock().map(|mut c| c.save()); 0 } else { interrupted("push", &cache) }
        }
    }
}
