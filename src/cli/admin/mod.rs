//! `ferry admin …`: identities, jobs, signed URLs and storage checks, straight against the
//! catalog. One module per command group, each with its own subcommands and `run`.
//!
//! Output contract: with `--json` exactly one JSON object on one stdout line; on failure
//! exit code 1 and `{"error","message"}` on stderr. Without `--json`, readable lines.

mod backups;
mod devices;
mod files;
mod grants;
mod jobs;
mod migrate_store;
mod removal;
mod signing;
mod storage;
mod tokens;
mod users;
mod volumes;
mod web;

use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::Services;
use crate::catalog::{CatalogError, Device, DeviceRef, User};
use crate::config::{Config, Layer};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Print one JSON object per command (errors as JSON on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Users: `user add NAME --level L`, `user list`, `user rename NAME NEW`,
    /// `user remove NAME --yes`, `user set-quota NAME SIZE|none`.
    #[command(subcommand)]
    User(users::UserCommand),
    /// API tokens: `token add --user NAME --scopes upload,read`, `token list`, `token revoke ID`.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Devices: add, list, rename, remove, disable/enable, uploads off/on, pull-source.
    #[command(subcommand)]
    Device(devices::DeviceCommand),
    /// Volumes: `volume add NAME --user USER`, `volume list`, `volume rename NAME NEW --user USER`,
    /// `volume remove NAME --user USER --yes`.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Media grants (a device's mount of a volume): add, list, disable/enable.
    #[command(subcommand)]
    Grant(grants::GrantCommand),
    /// Library files (session family, imports, watch folders): `files list [--user NAME]`,
    /// `files delete FILE_ID`.
    #[command(subcommand)]
    Files(files::FilesCommand),
    /// Background jobs: `jobs list`, `jobs run --until-idle`.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// A one-time link that signs USER in to the web gallery: `web-link --user NAME [--ttl 15m]`.
    WebLink(web::WebLinkArgs),
    /// Web gallery sign-ins: `web-session list [--user NAME]`, `web-session revoke ID`.
    #[command(subcommand)]
    WebSession(web::WebSessionCommand),
    /// Sign a PUT URL that stores its body as a blob held by USER.
    SignUpload(signing::SignUploadArgs),
    /// Sign a GET URL for a stored blob.
    SignDownload(signing::SignDownloadArgs),
    /// Compare stored bytes with the catalog in both directions. Bytes no row accounts for
    /// are only reported, unless --repair removes them.
    Check(storage::CheckArgs),
    /// What each account stores (items, bytes, held content, quota) and what dedup saves.
    Usage {
        #[arg(long)]
        user: Option<String>,
    },
    /// Run the storage lifecycle now: purge deleted items past their retention, release
    /// holds nothing uses, collect blobs nothing needs (after FERRY_GC_GRACE).
    Collect,
    /// Copy an embedded data dir (SQLite catalog + local blobs) into the configured
    /// PostgreSQL catalog and blob store, verifying every blob; run again to resume.
    MigrateStore(storage::MigrateArgs),
    /// Copy the embedded installation (catalog snapshot + the blobs it records) into a new
    /// directory, while the server runs. The backup is itself a data dir.
    Backup(backups::BackupArgs),
    /// Restore a backup into the (new, empty) data dir named by --data-dir / FERRY_DATA_DIR,
    /// then check it.
    Restore(backups::BackupArgs),
}

/// The stable codes of failed admin commands (the `error` of `--json` output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureCode {
    Config,
    Catalog,
    NotFound,
    Conflict,
    Ambiguous,
    InvalidArgument,
    DataDir,
    MigrateStore,
    Check,
    Backup,
}

impl FailureCode {
    fn as_str(self) -> &'static str {
        match self {
            FailureCode::Config => "config",
            FailureCode::Catalog => "catalog",
            FailureCode::NotFound => "not_found",
            FailureCode::Conflict => "conflict",
            FailureCode::Ambiguous => "ambiguous",
            FailureCode::InvalidArgument => "invalid_argument",
            FailureCode::DataDir => "data_dir",
            FailureCode::MigrateStore => "migrate_store",
            FailureCode::Check => "check",
            FailureCode::Backup => "backup",
        }
    }
}

/// A failed admin command: a stable code and a message.
struct Failure {
    code: FailureCode,
    message: String,
}

impl Failure {
    fn new(code: FailureCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<CatalogError> for Failure {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(what) => Failure::new(FailureCode::NotFound, format!("{what} not found")),
            CatalogError::Conflict(what) => Failure::new(FailureCode::Conflict, what),
            other => Failure::new(FailureCode::Catalog, other.to_string()),
        }
    }
}

impl From<crate::domain::ParseError> for Failure {
    fn from(err: crate::domain::ParseError) -> Self {
        Failure::new(FailureCode::InvalidArgument, err.0)
    }
}

/// What a command prints: its JSON object and a readable rendering.
struct Printed {
    json: Value,
    text: String,
}

fn printed<T: Serialize>(value: &T, text: String) -> Printed {
    Printed { json: serde_json::to_value(value).expect("admin output serialises"), text }
}

fn listed<T: Serialize>(items: &[T], line: impl Fn(&T) -> String) -> Printed {
    let text =
        if items.is_empty() { "(none)".to_owned() } else { items.iter().map(line).collect::<Vec<_>>().join("\n") };
    Printed { json: json!({ "items": items }), text }
}

/// Prints the command's answer. A reader that stopped early (`… | head`) is no failure: the
/// command did its work; only another write error is reported.
fn print_out(text: &str) -> i32 {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: cannot print the answer: {e}");
            1
        }
    }
}

/// Whether the command only reads: it must not create a data dir (or a catalog) where there is
/// none — from the wrong directory that would quietly answer from an empty, new one.
fn reads_only(command: &AdminCommand) -> bool {
    matches!(
        command,
        AdminCommand::User(users::UserCommand::List)
            | AdminCommand::Token(tokens::TokenCommand::List)
            | AdminCommand::Device(devices::DeviceCommand::List)
            | AdminCommand::Volume(volumes::VolumeCommand::List)
            | AdminCommand::Grant(grants::GrantCommand::List)
            | AdminCommand::Files(files::FilesCommand::List { .. })
            | AdminCommand::Jobs(jobs::JobsCommand::List { .. })
            | AdminCommand::Usage { .. }
            | AdminCommand::WebSession(web::WebSessionCommand::List { .. })
    )
}

/// Refuses a read-only command on a data dir (or embedded catalog) that does not exist.
fn nothing_to_read(config: &Config) -> Result<(), Failure> {
    let catalog = config.sqlite_file();
    let missing = match &catalog {
        Some(file) => !file.exists(),
        None => !config.data_dir.exists(),
    };
    if missing {
        let place = catalog.as_deref().unwrap_or(&config.data_dir);
        return Err(Failure::new(
            FailureCode::DataDir,
            format!(
                "no Ferry catalog at {} (nothing to read there): name the server's data dir with --data-dir or FERRY_DATA_DIR",
                place.display()
            ),
        ));
    }
    Ok(())
}

pub async fn run(config_file: Option<&Path>, flags: Layer, args: AdminArgs) -> i32 {
    let outcome = async {
        let config = Config::load(config_file, flags).map_err(|e| Failure::new(FailureCode::Config, e.to_string()))?;
        if reads_only(&args.command) {
            nothing_to_read(&config)?;
        }
        // these work on files and must not create a catalog first
        match args.command {
            AdminCommand::Backup(dir) => return backups::backup(config, dir).await,
            AdminCommand::Restore(dir) => return backups::restore(config, dir).await,
            _ => {}
        }
        let catalog = crate::app::catalog_name(&config.database_url);
        let services =
            Services::open(config).await.map_err(|e| Failure::new(FailureCode::Catalog, format!("{e:#}")))?;
        execute(&services, args.command).await.map_err(|mut fail| {
            // from the wrong data dir "no user named 'alice'" is true, but says where it looked
            if fail.code == FailureCode::NotFound {
                fail.message.push_str(&format!(" (in the catalog at {catalog})"));
            }
            fail
        })
    }
    .await;
    match outcome {
        Ok(out) if args.json => print_out(&out.json.to_string()),
        Ok(out) => print_out(&out.text),
        Err(fail) if args.json => {
            eprintln!("{}", json!({"error": fail.code.as_str(), "message": fail.message}));
            1
        }
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            1
        }
    }
}

async fn execute(services: &Services, command: AdminCommand) -> Result<Printed, Failure> {
    match command {
        AdminCommand::User(command) => users::run(services, command).await,
        AdminCommand::Token(command) => tokens::run(services, command).await,
        AdminCommand::Device(command) => devices::run(services, command).await,
        AdminCommand::Volume(command) => volumes::run(services, command).await,
        AdminCommand::Grant(command) => grants::run(services, command).await,
        AdminCommand::Files(command) => files::run(services, command).await,
        AdminCommand::Jobs(command) => jobs::run(services, command).await,
        AdminCommand::WebLink(args) => web::web_link(services, args).await,
        AdminCommand::WebSession(command) => web::run(services, command).await,
        AdminCommand::SignUpload(args) => signing::sign_upload(services, args).await,
        AdminCommand::SignDownload(args) => signing::sign_download(services, args).await,
        AdminCommand::Check(args) => storage::check(services, args).await,
        AdminCommand::Collect => storage::collect(services).await,
        AdminCommand::Usage { user } => users::usage(services, user).await,
        AdminCommand::MigrateStore(args) => storage::migrate(services, args).await,
        AdminCommand::Backup(_) | AdminCommand::Restore(_) => unreachable!("run without opening the services"),
    }
}

async fn user_named(services: &Services, name: &str) -> Result<User, Failure> {
    services
        .catalog
        .user_by_name(name)
        .await?
        .ok_or_else(|| Failure::new(FailureCode::NotFound, format!("no user named '{name}'")))
}

/// A device by name (when unique), USER/NAME or id.
async fn device_for(services: &Services, reference: &str) -> Result<Device, Failure> {
    let mut found = services.catalog.find_devices(&DeviceRef::parse(reference)).await?;
    match found.len() {
        0 => Err(Failure::new(FailureCode::NotFound, format!("no device '{reference}'"))),
        1 => Ok(found.remove(0)),
        n => Err(Failure::new(
            FailureCode::Ambiguous,
            format!("{n} devices are named '{reference}'; use USER/NAME or the device id"),
        )),
    }
}
