//! What `ferry push` and `ferry pull` share on the command line: where to connect, the
//! state directory, filters, output — and how a run ends: exit 0 when all is done, 1 when
//! some files failed (each listed with its reason), 2 for usage, key or server problems,
//! 130 when interrupted (Ctrl-C; the next run continues where this one stopped).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use serde::Serialize;

use crate::sync_client::hash_cache::HashCache;
use crate::sync_client::progress::Progress;
use crate::sync_client::walk::Filters;
use crate::sync_client::{Connection, Failure, Session, SyncError};

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The Ferry server, e.g. http://127.0.0.1:8080
    #[arg(long, env = "FERRY_SERVER", value_name = "URL")]
    pub server: String,
    /// The device's session key (printed once by `ferry admin device add`)
    #[arg(long, env = "FERRY_DEVICE_KEY", value_name = "KEY", hide_env_values = true)]
    pub device_key: String,
    /// The media grant to work through (`media_grant_id` of `ferry admin grant add`)
    #[arg(long, env = "FERRY_GRANT", value_name = "ID")]
    pub grant: String,
    /// Where hashes and the change-feed cursor are kept [default: $XDG_STATE_HOME/ferry, else ~/.local/state/ferry]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Transfers (and hashing threads) at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub concurrency: u16,
    /// Only paths (relative to DIR) matching one of these globs; `*` crosses folders
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching one of these globs
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Include hidden files and folders (names starting with '.')
    #[arg(long)]
    pub hidden: bool,
    /// Follow symbolic links (skipped by default)
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress, only problems
    #[arg(long)]
    pub quiet: bool,
    /// Give up an attempt (and try again) after this long without an answer or a byte moved
    #[arg(long, default_value = "60s", value_parser = parse_stall, value_name = "DURATION")]
    pub stall_timeout: std::time::Duration,
}

/// `2s`, `500ms`, `1m`, … (the server's duration syntax).
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, crate::domain::ParseError> {
    crate::config::parse_duration(raw)
}

fn parse_stall(raw: &str) -> Result<std::time::Duration, crate::domain::ParseError> {
    let stall = parse_duration(raw)?;
    if stall.is_zero() {
        return Err(crate::domain::ParseError::new("the stall timeout must be more than zero"));
    }
    Ok(stall)
}

impl SyncArgs {
    pub fn filters(&self) -> Result<Filters, SyncError> {
        Filters::new(&self.include, &self.exclude, self.hidden, self.follow_symlinks)
            .map_err(|e| SyncError::Usage(e.to_string()))
    }

    pub async fn session(&self, dir: &std::path::Path, prefix: Option<&str>) -> Result<Session, SyncError> {
        let connection = Connection {
            server: self.server.clone(),
            device_key: self.device_key.clone(),
            grant: self.grant.clone(),
            state_root: self.state_dir.clone(),
            stall: self.stall_timeout,
        };
        Session::open(&connection, dir, prefix, Progress::new(self.quiet), usize::from(self.concurrency)).await
    }
}

/// Prints a finished run: the JSON object, or a line and the failures for a person; the
/// exit code: 1 when files failed or conflicts were left (`unresolved`), else 0.
pub fn finish<S: Serialize>(
    json: bool,
    summary: &S,
    line: &str,
    (failures, unresolved): (&[Failure], u64),
    progress: &Progress,
) -> i32 {
    if json {
        println!("{}", serde_json::to_string(summary).expect("summaries serialise"));
    } else {
        println!("{line}");
    }
    for failure in failures {
        progress.warn(format!("failed: {}: {}", failure.path, failure.reason));
    }
    if failures.is_empty() && unresolved == 0 { 0 } else { 1 }
}

/// A run that could not go on: its message, exit code 2.
pub fn fatal(command: &str, error: &SyncError) -> i32 {
    eprintln!("ferry {command}: {error}");
    2
}

/// Ctrl-C: the hashes learnt are saved, and the person told how to go on.
pub fn interrupted(command: &str, cache: &Arc<Mutex<HashCache>>) -> i32 {
    let _ = cache.lock().map(|mut cache| cache.save());
    eprintln!("ferry {command}: interrupted; run the same command again to continue where it stopped");
    130
}
