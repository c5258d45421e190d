//! The `ferry` command line: `serve` runs the server, `admin …` manages identities, jobs
//! and signed URLs against the same catalog a running server uses, `push` and `pull` sync
//! a local folder with a volume over the device API (the client side; no catalog needed).

mod admin;
mod pull;
mod push;
mod serve;
mod sync;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Layer;

/// A command line clap refused. `admin … --json` keeps its contract even then: one JSON error
/// on stderr (`invalid_argument`) and exit 1; otherwise clap's own text and code (help and
/// version print as usual).
pub fn refused(err: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "admin") && args.iter().any(|a| a == "--json");
    let shown = matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if json && !shown {
        let text = err.render().to_string();
        // the error paragraph (its usage and help hints follow a blank line), on one line
        let paragraph = text.split("\n\n").next().unwrap_or_default().trim_start_matches("error: ");
        let message = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("{}", serde_json::json!({"error": "invalid_argument", "message": message}));
        return 1;
    }
    let _ = err.print();
    err.exit_code()
}

#[derive(Parser, Debug)]
#[command(name = "ferry", version, about = "Ferry: a self-hosted media ingest server", long_about = None)]
pub struct Cli {
    /// Config file (TOML); defaults to ./ferry.toml when it exists.
    #[arg(long, global = true, env = "FERRY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Data directory (catalog, blobs, staging) [env: FERRY_DATA_DIR] [default: ./ferry-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Catalog database URL [env: FERRY_DATABASE_URL] [default: sqlite://<data-dir>/ferry.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server. Prints `listening on http://ADDR` first.
    Serve(serve::ServeArgs),
    /// Manage users, devices, tokens, jobs, storage and backups on the data dir's catalog.
    ///
    /// Every admin command works straight on the catalog of the data dir (--data-dir /
    /// FERRY_DATA_DIR, default ./ferry-data of the current directory), beside a running server
    /// or without one: from another directory, name the server's data dir.
    Admin(admin::AdminArgs),
    /// Push a local folder into a volume (new and changed files; resumes partial uploads).
    Push(push::PushArgs),
    /// Mirror a volume (or a part of it) into a local folder.
    Pull(pull::PullArgs),
}

impl Cli {
    /// The command-line layer of the configuration.
    fn flags(&self) -> Layer {
        let mut layer = Layer::new();
        if let Some(dir) = &self.data_dir {
            layer.insert("data_dir", dir.display().to_string());
        }
        if let Some(url) = &self.database_url {
            layer.insert("database_url", url.clone());
        }
        layer
    }
}

/// Runs the parsed command; the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let mut flags = cli.flags();
    match cli.command {
        Command::Serve(args) => {
            args.add_flags(&mut flags);
            match serve::run(cli.config.as_deref(), flags).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
        Command::Admin(args) => admin::run(cli.config.as_deref(), flags, args).await,
        Command::Push(args) => push::run(args).await,
        Command::Pull(args) => pull::run(args).await,
    }
}
