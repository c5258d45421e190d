//! `ferry admin …`: identities, jobs and signed URLs, straight against the catalog.
//!
//! Output contract: with `--json` exactly one JSON object on one stdout line; on failure
//! exit code 1 and `{"error","message"}` on stderr. Without `--json`, readable lines.

use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::Services;
use crate::auth::secrets;
use crate::catalog::{CatalogError, Device, DeviceFlag, DeviceRef, NewDevice, NewGrant, User};
use crate::config::{Config, Layer, parse_duration};
use crate::domain::{GrantId, Level, MediaPath, Name, ScopeSet, Sha256Hex, TokenId};
use crate::jobs::{BlobWrites, consistency};
use crate::signing::targets;

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
    /// Users: `user add NAME --level L`, `user list`.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens: `token add --user NAME --scopes upload,read`, `token list`, `token revoke ID`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Devices: add, list, disable/enable, uploads off/on.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Volumes: `volume add NAME --user USER`, `volume list`.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Media grants (a device's mount of a volume): add, list, disable/enable.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Library files (session family, imports, watch folders): `files list [--user NAME]`.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Background jobs: `jobs list`, `jobs run --until-idle`.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Sign a PUT URL that stores its body as a blob held by USER.
    SignUpload {
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
    },
    /// Sign a GET URL for a stored blob.
    SignDownload {
        sha256: String,
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Compare stored bytes with the catalog in both directions. Bytes no row accounts for
    /// are only reported, unless --repair removes them.
    Check {
        /// Remove what the check found left over: stored bytes no catalog row or pending
        /// write accounts for, staging nothing will use, S3 uploads nothing will complete.
        #[arg(long)]
        repair: bool,
        /// Also read every stored blob and check that it hashes to its name.
        #[arg(long)]
        deep: bool,
    },
    /// Copy an embedded data dir (SQLite catalog + local blobs) into the configured
    /// PostgreSQL catalog and blob store, verifying every blob; run again to resume.
    MigrateStore {
        #[arg(long, value_name = "DIR")]
        from_data_dir: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    Add {
        name: String,
        #[arg(long)]
        level: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
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

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
    },
    List,
    Disable {
        device: String,
    },
    Enable {
        device: String,
    },
    /// `device uploads off DEVICE` / `device uploads on DEVICE`.
    Uploads {
        state: OnOff,
        device: String,
    },
    /// Register the device's gallery pull source: an HTTP base URL serving `index.json` and the
    /// files (`--url none` removes it).
    PullSource {
        #[arg(long)]
        device: String,
        #[arg(long)]
        url: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
enum VolumeCommand {
    Add {
        name: String,
        #[arg(long)]
        user: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
enum GrantCommand {
    Add {
        /// A device name (when unique), USER/NAME, or an id.
        #[arg(long)]
        device: String,
        /// A volume of the device's owner.
        #[arg(long)]
        volume: String,
        #[arg(long, default_value = "/")]
        prefix: String,
        /// Defaults to the volume's name.
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Disable {
        grant_id: String,
    },
    Enable {
        grant_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum FilesCommand {
    List {
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum JobsCommand {
    List {
        /// pending, running, done or failed
        #[arg(long)]
        status: Option<String>,
    },
    Run {
        /// Run until no job or maintenance step has work left.
        #[arg(long)]
        until_idle: bool,
    },
}

/// `check --repair` on a bucket shared by replicas leaves bytes younger than this: another
/// replica may be about to record them.
const REPAIR_MIN_AGE_SHARED: Duration = Duration::from_secs(3600);

/// A failed admin command: a stable code and a message.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<CatalogError> for Failure {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(what) => Failure::new("not_found", format!("{what} not found")),
            CatalogError::Conflict(what) => Failure::new("conflict", what),
            other => Failure::new("catalog", other.to_string()),
        }
    }
}

impl From<crate::domain::ParseError> for Failure {
    fn from(err: crate::domain::ParseError) -> Self {
        Failure::new("invalid_argument", err.0)
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

pub async fn run(config_file: Option<&Path>, flags: Layer, args: AdminArgs) -> i32 {
    let outcome = async {
        let config = Config::load(config_file, flags).map_err(|e| Failure::new("config", e.to_string()))?;
        let services = Services::open(config).await.map_err(|e| Failure::new("catalog", format!("{e:#}")))?;
        execute(&services, args.command).await
    }
    .await;
    match outcome {
        Ok(out) if args.json => {
            println!("{}", out.json);
            0
        }
        Ok(out) => {
            println!("{}", out.text);
            0
        }
        Err(fail) if args.json => {
            eprintln!("{}", json!({"error": fail.code, "message": fail.message}));
            1
        }
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            1
        }
    }
}

async fn user_named(services: &Services, name: &str) -> Result<User, Failure> {
    services
        .catalog
        .user_by_name(name)
        .await?
        .ok_or_else(|| Failure::new("not_found", format!("no user named '{name}'")))
}

async fn device_for(services: &Services, reference: &str) -> Result<Device, Failure> {
    let mut found = services.catalog.find_devices(&DeviceRef::parse(reference)).await?;
    match found.len() {
        0 => Err(Failure::new("not_found", format!("no device '{reference}'"))),
        1 => Ok(found.remove(0)),
        n => Err(Failure::new(
            "ambiguous",
            format!("{n} devices are named '{reference}'; use USER/NAME or the device id"),
        )),
    }
}

fn ttl_seconds(ttl: &str) -> Result<i64, Failure> {
    let ttl = parse_duration(ttl).map_err(|e| Failure::new("invalid_argument", e.to_string()))?;
    Ok(crate::clock::now_secs() + ttl.as_secs() as i64)
}

fn device_line(d: &Device) -> String {
    let mut flags = Vec::new();
    if d.is_disabled {
        flags.push("disabled");
    }
    if d.is_upload_disabled {
        flags.push("uploads off");
    }
    format!(
        "device {} '{}' of user {}{}",
        d.device_id,
        d.device_name,
        d.user_id,
        if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(", ")) }
    )
}

async fn execute(services: &Services, command: AdminCommand) -> Result<Printed, Failure> {
    let catalog = services.catalog.as_ref();
    Ok(match command {
        AdminCommand::User(UserCommand::Add { name, level }) => {
            let level: Level = level.parse()?;
            let user = catalog.create_user(&Name::parse(&name)?, level).await?;
            let text = format!("created user {} '{}' ({})", user.user_id, user.name, user.level);
            printed(&user, text)
        }
        AdminCommand::User(UserCommand::List) => {
            listed(&catalog.list_users().await?, |u| format!("user {} '{}' ({})", u.user_id, u.name, u.level))
        }
        AdminCommand::Token(TokenCommand::Add { user, scopes }) => {
            let scopes: ScopeSet = scopes.parse()?;
            let user = user_named(services, &user).await?;
            let secret = secrets::generate("fry_t_");
            let record = catalog.create_token(user.user_id, scopes, &secrets::hash(&secret)).await?;
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
        AdminCommand::Token(TokenCommand::List) => listed(&catalog.list_tokens().await?, |t| {
            format!(
                "token {} of user {} [{}]{}",
                t.token_id,
                t.user_id,
                t.scopes.to_list(),
                if t.is_revoked { " revoked" } else { "" }
            )
        }),
        AdminCommand::Token(TokenCommand::Revoke { token_id }) => {
            let id: TokenId = token_id.parse()?;
            let record = catalog.revoke_token(id).await?;
            printed(&record, format!("token {id} revoked"))
        }
        AdminCommand::Device(DeviceCommand::Add { user, name }) => {
            let owner = user_named(services, &user).await?;
            let key = secrets::generate("fry_d_");
            let new = NewDevice { user_id: owner.user_id, name: Name::parse(&name)?, key_hash: secrets::hash(&key) };
            let device = catalog.create_device(new).await?;
            let out = json!({
                "device_id": device.device_id, "device_name": device.device_name,
                "user_id": device.user_id, "device_session_key": key,
            });
            let text = format!(
                "device {} '{}' for '{}'; device_session_key: {key}\n(shown once; store it now)",
                device.device_id, device.device_name, owner.name
            );
            Printed { json: out, text }
        }
        AdminCommand::Device(DeviceCommand::List) => listed(&catalog.list_devices().await?, device_line),
        AdminCommand::Device(DeviceCommand::Disable { device }) => {
            set_flag(services, &device, DeviceFlag::Disabled, true).await?
        }
        AdminCommand::Device(DeviceCommand::Enable { device }) => {
            set_flag(services, &device, DeviceFlag::Disabled, false).await?
        }
        AdminCommand::Device(DeviceCommand::Uploads { state, device }) => {
            set_flag(services, &device, DeviceFlag::UploadDisabled, matches!(state, OnOff::Off)).await?
        }
        AdminCommand::Device(DeviceCommand::PullSource { device, url }) => {
            let device = device_for(services, &device).await?;
            let url = match url.as_str() {
                "none" | "" => None,
                // the same check the pull itself makes, so a bad source is refused now
                u => {
                    crate::remote::UrlBase::parse(u).map_err(|e| Failure::new("invalid_argument", e.to_string()))?;
                    Some(u.trim_end_matches('/'))
                }
            };
            let device = catalog.set_pull_url(device.device_id, url).await?;
            let text =
                format!("{} pulls from {}", device_line(&device), device.pull_url.as_deref().unwrap_or("nowhere"));
            printed(&device, text)
        }
        AdminCommand::Volume(VolumeCommand::Add { name, user }) => {
            let owner = user_named(services, &user).await?;
            let volume = catalog.create_volume(owner.user_id, &Name::parse(&name)?).await?;
            let text = format!("volume {} '{}' of '{}'", volume.volume_id, volume.name, owner.name);
            printed(&volume, text)
        }
        AdminCommand::Volume(VolumeCommand::List) => listed(&catalog.list_volumes().await?, |v| {
            format!("volume {} '{}' of user {}", v.volume_id, v.name, v.user_id)
        }),
        AdminCommand::Grant(GrantCommand::Add { device, volume, prefix, name }) => {
            let device = device_for(services, &device).await?;
            let volume = catalog.volume_by_name(device.user_id, &volume).await?.ok_or_else(|| {
                Failure::new("not_found", format!("the device's owner has no volume named '{volume}'"))
            })?;
            let prefix_path = MediaPath::parse_prefix(&prefix)?;
            let name = name.unwrap_or_else(|| volume.name.clone());
            let grant = catalog
                .create_grant(NewGrant { device_id: device.device_id, volume_id: volume.volume_id, prefix_path, name })
                .await?;
            let text = format!(
                "grant {} mounts volume '{}' at {} on device '{}'",
                grant.media_grant_id, volume.name, grant.prefix_path, device.device_name
            );
            printed(&grant, text)
        }
        AdminCommand::Grant(GrantCommand::List) => listed(&catalog.list_grants().await?, |g| {
            format!(
                "grant {} '{}': device {} → volume {} {}{}",
                g.media_grant_id,
                g.grant_name,
                g.device_id,
                g.volume_id,
                g.prefix_path,
                if g.is_disabled { " (disabled)" } else { "" }
            )
        }),
        AdminCommand::Grant(GrantCommand::Disable { grant_id }) => set_grant(services, &grant_id, true).await?,
        AdminCommand::Grant(GrantCommand::Enable { grant_id }) => set_grant(services, &grant_id, false).await?,
        AdminCommand::Files(FilesCommand::List { user }) => {
            let user = match user {
                Some(name) => Some(user_named(services, &name).await?.user_id),
                None => None,
            };
            listed(&catalog.list_files(user).await?, |f| {
                format!(
                    "file {} '{}' in {}/{} ({} bytes, {})",
                    f.file_id, f.title, f.user_id, f.folder_key, f.size, f.sha256
                )
            })
        }
        AdminCommand::Jobs(JobsCommand::List { status }) => {
            let status = status
                .map(|s| {
                    crate::catalog::JobStatus::parse(&s)
                        .ok_or_else(|| Failure::new("invalid_argument", format!("unknown status '{s}'")))
                })
                .transpose()?;
            listed(&catalog.list_jobs(status).await?, |j| {
                format!(
                    "job {} {} {} (attempts {}){}",
                    j.job_id,
                    j.kind,
                    j.status.as_str(),
                    j.attempts,
                    j.last_error
                        .as_deref()
                        .map(|e| format!(": {}", crate::redact::url_passwords(e)))
                        .unwrap_or_default()
                )
            })
        }
        AdminCommand::Jobs(JobsCommand::Run { until_idle }) => {
            // An SQLite catalog keeps blob commits and collection apart within one process,
            // so beside a running server (which holds the data directory) only the server runs
            // what writes or removes blobs; PostgreSQL's per-blob locks work across processes.
            let dir = &services.config.data_dir;
            let server_lock = crate::app::try_lock_data_dir(dir)
                .map_err(|e| Failure::new("data_dir", format!("cannot check {}: {e:#}", dir.display())))?;
            let sqlite = services.config.database_url.starts_with("sqlite:");
            let collects = server_lock.is_some() || !sqlite;
            let jobs = if collects { services.jobs.clone() } else { services.job_runner(BlobWrites::LeftToServer) };
            let steps = if until_idle { jobs.run_until_idle().await? } else { vec![jobs.run_one_step().await?] };
            drop(server_lock);
            let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
            let mut text = format!("ran {} step(s)", steps.len());
            if !collects {
                text.push_str(" (queued jobs and blob collection left to the running server)");
            }
            let json =
                json!({"steps": steps.len(), "details": steps, "blob_collection": collects, "queued_jobs": collects});
            Printed { json, text }
        }
        AdminCommand::SignUpload { user, size, sha256, ttl } => {
            let owner = user_named(services, &user).await?;
            let sha256 = sha256.as_deref().map(Sha256Hex::parse).transpose()?;
            let expires = ttl_seconds(&ttl)?;
            let url = targets::blob_put(
                &services.signer,
                &services.upload_base(None),
                owner.user_id,
                size,
                sha256.as_ref(),
                expires,
            );
            Printed { json: json!({"method": "PUT", "url": url, "expires": expires}), text: url }
        }
        AdminCommand::SignDownload { sha256, ttl } => {
            let sha256 = Sha256Hex::parse(&sha256)?;
            if catalog.blob(&sha256).await?.is_none() {
                return Err(Failure::new("not_found", format!("no blob {sha256}")));
            }
            let expires = ttl_seconds(&ttl)?;
            let url = targets::blob_get(&services.signer, &services.upload_base(None), &sha256, expires);
            Printed { json: json!({"method": "GET", "url": url, "expires": expires}), text: url }
        }
        AdminCommand::MigrateStore { from_data_dir } => {
            let report = super::migrate_store::run(services, &from_data_dir)
                .await
                .map_err(|e| Failure::new("migrate_store", format!("{e:#}")))?;
            printed(&report, report.line())
        }
        AdminCommand::Check { repair, deep } => {
            let failed = |e: consistency::CheckError| Failure::new("check", e.to_string());
            // an upload in flight may use its staging until it expires
            let staging_age = services.config.upload_expiry + Duration::from_secs(3600);
            let scope = consistency::CheckScope { deep, staging_age };
            let mut report = consistency::check(catalog, services.store.as_ref(), scope).await.map_err(failed)?;
            if repair {
                // a shared bucket may hold bytes another replica is about to record
                let min_age = if services.config.s3.is_some() { REPAIR_MIN_AGE_SHARED } else { Duration::ZERO };
                report =
                    consistency::repair(catalog, services.store.as_ref(), report, min_age).await.map_err(failed)?;
            }
            let mut text = format!(
                "{} stored blob(s) without a catalog row, {} catalog row(s) without bytes, {} pending write(s), \
                 {} staging leftover(s), {} open S3 upload(s)",
                report.blobs_without_rows.len(),
                report.rows_without_blobs.len(),
                report.pending_intents.len(),
                report.staging_leftovers.len(),
                report.open_multipart_uploads.len(),
            );
            if deep {
                text.push_str(&format!(", {} corrupt blob(s)", report.corrupt_blobs.len()));
            }
            if repair {
                text.push_str(&format!("; removed {}", report.removed.len()));
            }
            printed(&report, text)
        }
    })
}

async fn set_flag(services: &Services, reference: &str, flag: DeviceFlag, on: bool) -> Result<Printed, Failure> {
    let device = device_for(services, reference).await?;
    let device = services.catalog.set_device_flag(device.device_id, flag, on).await?;
    let text = device_line(&device);
    Ok(printed(&device, text))
}

async fn set_grant(services: &Services, grant_id: &str, disabled: bool) -> Result<Printed, Failure> {
    let id: GrantId = grant_id.parse()?;
    let grant = services.catalog.set_grant_disabled(id, disabled).await?;
    let text = format!("grant {} {}", grant.media_grant_id, if disabled { "disabled" } else { "enabled" });
    Ok(printed(&grant, text))
}
