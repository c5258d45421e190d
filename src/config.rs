//! Typed, layered configuration: defaults < `ferry.toml` < `FERRY_*` environment < flags.
//!
//! Every setting is declared once in [`SETTINGS`] (key, environment name, meaning); the
//! README's table is this list. All layers are read into the same key → text map and
//! parsed in one place, so a value means the same wherever it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::ParseError;

mod file;
mod links;
mod s3;
mod transcode;
mod units;
use file::file_layer;
pub use file::{TomlRefused, layer_from_toml};
pub use links::{NoLinkAddress, links_for};
pub use s3::S3Config;
pub use transcode::{Transcode, TranscodePolicy};
pub use units::{parse_duration, parse_size};

/// One documented setting. `key` is its name in `ferry.toml`; `env` its variable.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { key: "data_dir", env: "FERRY_DATA_DIR", default: "./ferry-data", meaning: "Where the SQLite catalog, blobs and staging live." },
    Setting { key: "listen", env: "FERRY_LISTEN", default: "127.0.0.1:8080", meaning: "Address to bind; port 0 picks a free port." },
    Setting { key: "public_url", env: "FERRY_PUBLIC_URL", default: "http://<bound address>", meaning: "Base URL of links Ferry hands out." },
    Setting { key: "upload_url", env: "FERRY_UPLOAD_URL", default: "= public_url", meaning: "Base URL of signed upload/download URLs (may be another host)." },
    Setting { key: "database_url", env: "FERRY_DATABASE_URL", default: "sqlite://<data_dir>/ferry.db", meaning: "Catalog database." },
    Setting { key: "signing_secret", env: "FERRY_SIGNING_SECRET", default: "created once in the catalog", meaning: "HMAC secret for signed URLs (secret; never printed)." },
    Setting { key: "metrics_token", env: "FERRY_METRICS_TOKEN", default: "(none: /metrics is open)", meaning: "Bearer token GET /metrics requires (secret; never printed)." },
    Setting { key: "log_format", env: "FERRY_LOG_FORMAT", default: "text", meaning: "Log format: text or json." },
    Setting { key: "cors_origins", env: "FERRY_CORS_ORIGINS", default: "(none)", meaning: "Comma list of browser origins allowed to call Ferry; * for any." },
    Setting { key: "header_timeout", env: "FERRY_HEADER_TIMEOUT", default: "30s", meaning: "A connection whose request headers have not all arrived this long after it started waiting for them is closed." },
    Setting { key: "body_idle_timeout", env: "FERRY_BODY_IDLE_TIMEOUT", default: "30s", meaning: "An upload body that sends nothing for this long is refused (408 body_timeout) and its partial bytes go (a tus PATCH keeps what arrived); any other request body (JSON, a form) a second later." },
    Setting { key: "max_upload_size", env: "FERRY_MAX_UPLOAD_SIZE", default: "64GiB", meaning: "Largest single upload body accepted." },
    Setting { key: "signed_url_ttl", env: "FERRY_SIGNED_URL_TTL", default: "24h", meaning: "Lifetime of signed upload/download URLs." },
    Setting { key: "web_session_ttl", env: "FERRY_WEB_SESSION_TTL", default: "30d", meaning: "A web gallery sign-in lasts this long (then the page asks again); signing out or `admin web-session revoke` ends it sooner." },
    Setting { key: "upload_expiry", env: "FERRY_UPLOAD_EXPIRY", default: "24h", meaning: "Unfinished multipart and tus uploads expire (and their bytes are removed) after this; a tus PATCH renews it." },
    Setting { key: "tombstone_retention", env: "FERRY_TOMBSTONE_RETENTION", default: "30d", meaning: "Deleted items of every family keep their content this long (device media as tombstones sync clients see); then it may be collected." },
    Setting { key: "gc_grace", env: "FERRY_GC_GRACE", default: "1h", meaning: "Unreferenced blobs are kept at least this long before collection." },
    Setting { key: "remote_allow", env: "FERRY_REMOTE_ALLOW", default: "(none)", meaning: "Comma list of CIDRs or host names remote import may reach although private/loopback." },
    Setting { key: "remote_timeout", env: "FERRY_REMOTE_TIMEOUT", default: "10m", meaning: "Time limit of one remote import." },
    Setting { key: "import_dir", env: "FERRY_IMPORT_DIR", default: "<data_dir>/import", meaning: "The `local` bucket of blob import: files under it can be registered by key." },
    Setting { key: "import_buckets", env: "FERRY_IMPORT_BUCKETS", default: "(none)", meaning: "Comma list of S3 buckets blob import may read (with the s3_* endpoint and credentials; s3_bucket need not be set)." },
    Setting { key: "watch", env: "FERRY_WATCH", default: "(none)", meaning: "Comma list of watch folders `DIR=USER/FOLDER`: files dropped in DIR are ingested into USER's FOLDER." },
    Setting { key: "watch_settle_ms", env: "FERRY_WATCH_SETTLE_MS", default: "2000", meaning: "A watched file is ingested once its size and mtime stay unchanged this many milliseconds." },
    Setting { key: "watch_after", env: "FERRY_WATCH_AFTER", default: "move", meaning: "After ingesting a watched file: `move` it to DIR/done/ or `remove` it." },
    Setting { key: "harvest_interval", env: "FERRY_HARVEST_INTERVAL", default: "5m", meaning: "How often devices' gallery pull sources are harvested (index.json)." },
    Setting { key: "pull_wait", env: "FERRY_PULL_WAIT", default: "10s", meaning: "How long a gallery pull request waits for the file before answering 202 running." },
    Setting { key: "gallery_page_cache", env: "FERRY_GALLERY_PAGE_CACHE", default: "16MiB", meaning: "Bytes of gallery event pages kept ready to send again while the catalog is unchanged (embedded SQLite catalog only: after any change in it, pages are read afresh); 0 turns it off." },
    Setting { key: "job_interval", env: "FERRY_JOB_INTERVAL", default: "500ms", meaning: "How often the idle job runner looks for work." },
    Setting { key: "thumbnail_size", env: "FERRY_THUMBNAIL_SIZE", default: "320", meaning: "Long side, in pixels, of the thumbnails media processing makes." },
    Setting { key: "media_max_size", env: "FERRY_MEDIA_MAX_SIZE", default: "256MiB", meaning: "Largest image media processing decodes (in memory); larger ones keep their EXIF but get no thumbnail." },
    Setting { key: "media_workers", env: "FERRY_MEDIA_WORKERS", default: "cores, at most 4", meaning: "Media jobs (thumbnails, video facts) run at once; each may hold one decoded image." },
    Setting { key: "media_timeout", env: "FERRY_MEDIA_TIMEOUT", default: "60s", meaning: "Time limit of one ffprobe or ffmpeg run on a video." },
    Setting { key: "transcode", env: "FERRY_TRANSCODE", default: "auto", meaning: "Playable renditions: `auto` (videos a browser cannot play, HEIF photos), `off`, or `always` (every video and HEIF photo)." },
    Setting { key: "transcode_max_dimension", env: "FERRY_TRANSCODE_MAX_DIMENSION", default: "1080", meaning: "Long side, in pixels, of a transcoded video." },
    Setting { key: "transcode_timeout", env: "FERRY_TRANSCODE_TIMEOUT", default: "2h", meaning: "Time limit of one transcode; a video that takes longer gets no rendition (its job fails and says so)." },
    Setting { key: "s3_bucket", env: "FERRY_S3_BUCKET", default: "(none: blobs on local disk)", meaning: "S3 bucket for blobs and staging; setting it selects the S3-compatible store (s3_bucket_id 1)." },
    Setting { key: "s3_endpoint", env: "FERRY_S3_ENDPOINT", default: "(AWS for the region)", meaning: "S3 API base URL, e.g. http://127.0.0.1:8014 (must be reachable by clients in direct mode)." },
    Setting { key: "s3_region", env: "FERRY_S3_REGION", default: "us-east-1", meaning: "S3 region used in SigV4 signatures." },
    Setting { key: "s3_access_key_id", env: "FERRY_S3_ACCESS_KEY_ID", default: "(none)", meaning: "S3 access key id." },
    Setting { key: "s3_secret_access_key", env: "FERRY_S3_SECRET_ACCESS_KEY", default: "(none)", meaning: "S3 secret access key (secret; never printed)." },
    Setting { key: "s3_path_style", env: "FERRY_S3_PATH_STYLE", default: "true", meaning: "Address the bucket as ENDPOINT/BUCKET/KEY (true) or BUCKET.ENDPOINT/KEY (false)." },
    Setting { key: "s3_prefix", env: "FERRY_S3_PREFIX", default: "(empty)", meaning: "Key prefix for everything Ferry writes in the bucket, e.g. ferry/." },
    Setting { key: "s3_direct", env: "FERRY_S3_DIRECT", default: "false", meaning: "Hand out presigned S3 URLs so devices upload straight to S3; Ferry verifies before recording." },
];

/// Text of one secret; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration every part of Ferry reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub upload_url: Option<String>,
    pub database_url: String,
    pub signing_secret: Option<Secret>,
    /// The bearer token `/metrics` requires; `None` leaves it open.
    pub metrics_token: Option<Secret>,
    pub log_format: LogFormat,
    pub cors_origins: Vec<String>,
    /// How long a connection may take to send a request's headers (slow-header clients).
    pub header_timeout: Duration,
    /// How long an upload body may send nothing (slow-body clients).
    pub body_idle_timeout: Duration,
    pub max_upload_size: u64,
    pub signed_url_ttl: Duration,
    pub web_session_ttl: Duration,
    pub upload_expiry: Duration,
    pub tombstone_retention: Duration,
    pub gc_grace: Duration,
    pub job_interval: Duration,
    /// Media processing: thumbnail long side (px), largest image decoded, tool time limit.
    pub thumbnail_size: u32,
    pub media_max_size: u64,
    pub media_workers: usize,
    pub media_timeout: Duration,
    /// Playable renditions (`transcode*` settings).
    pub transcode: Transcode,
    pub remote_allow: Vec<String>,
    pub remote_timeout: Duration,
    pub import_dir: PathBuf,
    pub harvest_interval: Duration,
    pub pull_wait: Duration,
    /// Bytes of gallery event pages kept in memory (0: none kept).
    pub gallery_page_cache: u64,
    pub watch: Vec<String>,
    pub watch_settle: Duration,
    pub watch_remove: bool,
    /// The S3-compatible blob store; `None` keeps blobs in `data_dir`.
    pub s3: Option<S3Config>,
    /// S3 buckets blob import may read besides `local`, at the `s3_*` endpoint.
    pub import_buckets: Vec<S3Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("setting {key}: {message}")]
    Value { key: &'static str, message: String },
}

/// Values by setting key, from one layer.
pub type Layer = BTreeMap<&'static str, String>;

impl Config {
    /// Builds the configuration from its layers. `file` is `--config`/`FERRY_CONFIG`; when
    /// absent, `./ferry.toml` is read if it exists. `flags` are the command line's values.
    pub fn load(file: Option<&Path>, flags: Layer) -> Result<Self, ConfigError> {
        let mut merged = Layer::new();
        let default_file = Path::new("ferry.toml");
        match file {
            Some(path) => merged.extend(file_layer(path)?),
            None if default_file.exists() => merged.extend(file_layer(default_file)?),
            None => {}
        }
        merged.extend(env_layer());
        merged.extend(flags);
        Self::from_layer(&merged)
    }

    /// The catalog's file when it is embedded (SQLite), read as the catalog itself reads the
    /// URL (percent-decoded, options dropped); `None` for another database or `:memory:`.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        use std::str::FromStr;
        let url = &self.database_url;
        if !url.starts_with("sqlite:") {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        let file = options.get_filename();
        (file != Path::new(":memory:") && !file.as_os_str().is_empty()).then(|| file.to_owned())
    }

    /// Parses a merged layer; settings it lacks take their defaults.
    pub fn from_layer(values: &Layer) -> Result<Self, ConfigError> {
        let get = |key: &'static str| {
            // every setting read here must be declared (and so documented and read from env)
            debug_assert!(SETTINGS.iter().any(|s| s.key == key), "setting {key} is not in SETTINGS");
            values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
        };
        let bad = |key: &'static str, message: String| ConfigError::Value { key, message };
        let duration = |key: &'static str, default: &str| {
            parse_duration(get(key).unwrap_or(default)).map_err(|m| bad(key, m.to_string()))
        };
        let data_dir = PathBuf::from(get("data_dir").unwrap_or("./ferry-data"));
        let database_url = match get("database_url") {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", data_dir.join("ferry.db").display()),
        };
        let list = |key: &'static str| -> Vec<String> {
            get(key)
                .map(|v| v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect())
                .unwrap_or_default()
        };
        let url = |key: &'static str| -> Result<Option<String>, ConfigError> {
            match get(key) {
                None => Ok(None),
                Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                    Ok(Some(v.trim_end_matches('/').to_owned()))
                }
                Some(v) => Err(bad(key, format!("'{v}' is not an http(s) URL"))),
            }
        };
        Ok(Self {
            listen: get("listen")
                .unwrap_or("127.0.0.1:8080")
                .parse()
                .map_err(|e| bad("listen", format!("{e} (expected HOST:PORT)")))?,
            public_url: url("public_url")?,
            upload_url: url("upload_url")?,
            database_url,
            signing_secret: get("signing_secret").map(|s| Secret(s.to_owned())),
            metrics_token: get("metrics_token").map(|s| Secret(s.to_owned())),
            log_format: match get("log_format").unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(bad("log_format", format!("'{other}' (expected text or json)")));
                }
            },
            cors_origins: list("cors_origins"),
            header_timeout: match duration("header_timeout", "30s")? {
                Duration::ZERO => return Err(bad("header_timeout", "must be more than 0".into())),
                timeout => timeout,
            },
            body_idle_timeout: match duration("body_idle_timeout", "30s")? {
                Duration::ZERO => return Err(bad("body_idle_timeout", "must be more than 0".into())),
                timeout => timeout,
            },
            max_upload_size: parse_size(get("max_upload_size").unwrap_or("64GiB"))
                .and_then(|size| match size {
                    0..=crate::domain::MAX_BLOB_SIZE => Ok(size),
                    _ => Err(ParseError::new(format!("{size} bytes is more than a catalog integer holds"))),
                })
                .map_err(|m| bad("max_upload_size", m.to_string()))?,
            signed_url_ttl: duration("signed_url_ttl", "24h")?,
            web_session_ttl: match duration("web_session_ttl", "30d")? {
                Duration::ZERO => return Err(bad("web_session_ttl", "must be more than 0".into())),
                ttl => ttl,
            },
            upload_expiry: duration("upload_expiry", "24h")?,
            tombstone_retention: duration("tombstone_retention", "30d")?,
            gc_grace: duration("gc_grace", "1h")?,
            job_interval: duration("job_interval", "500ms")?,
            thumbnail_size: match get("thumbnail_size").unwrap_or("320").parse::<u32>() {
                Ok(px) if (16..=4096).contains(&px) => px,
                _ => return Err(bad("thumbnail_size", "must be a number of pixels from 16 to 4096".into())),
            },
            media_max_size: parse_size(get("media_max_size").unwrap_or("256MiB"))
                .map_err(|m| bad("media_max_size", m.to_string()))?,
            media_timeout: duration("media_timeout", "60s")?,
            media_workers: match get("media_workers").map(str::parse::<usize>) {
                None => std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
                Some(Ok(n)) if (1..=64).contains(&n) => n,
                Some(_) => return Err(bad("media_workers", "must be a number of jobs from 1 to 64".into())),
            },
            transcode: transcode::transcode_config(&get)?,
            remote_allow: list("remote_allow"),
            harvest_interval: duration("harvest_interval", "5m")?,
            pull_wait: duration("pull_wait", "10s")?,
            gallery_page_cache: parse_size(get("gallery_page_cache").unwrap_or("16MiB"))
                .map_err(|m| bad("gallery_page_cache", m.to_string()))?,
            watch: list("watch"),
            watch_settle: match get("watch_settle_ms").unwrap_or("2000").parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => return Err(bad("watch_settle_ms", "must be a number of milliseconds".into())),
            },
            watch_remove: match get("watch_after").unwrap_or("move") {
                "move" => false,
                "remove" => true,
                other => return Err(bad("watch_after", format!("'{other}' (expected move or remove)"))),
            },
            remote_timeout: duration("remote_timeout", "10m")?,
            import_dir: get("import_dir").map(PathBuf::from).unwrap_or_else(|| data_dir.join("import")),
            s3: s3::s3_config(&get, url("s3_endpoint")?)?,
            import_buckets: s3::import_buckets(&get, url("s3_endpoint")?)?,
            data_dir,
        })
    }

    /// Settings for a throwaway server in `data_dir` on a free loopback port (tests, benches).
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let mut layer = Layer::new();
        layer.insert("data_dir", data_dir.display().to_string());
        layer.insert("listen", "127.0.0.1:0".into());
        Self::from_layer(&layer).expect("defaults parse")
    }
}

fn env_layer() -> Layer {
    SETTINGS.iter().filter_map(|s| std::env::var(s.env).ok().map(|v| (s.key, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_lists_every_setting_as_declared() {
        let readme = include_str!("../README.md");
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` | {} | {} |", s.key, s.env, s.default, s.meaning);
            assert!(readme.contains(&row), "README.md lacks the row\n{row}");
        }
    }

    #[test]
    fn media_workers_default_to_the_cores_at_most_4_and_refuse_nonsense() {
        let workers = Config::from_layer(&Layer::new()).unwrap().media_workers;
        assert!((1..=4).contains(&workers), "{workers}");
        let mut layer = Layer::new();
        layer.insert("media_workers", "0".into());
        assert!(Config::from_layer(&layer).unwrap_err().to_string().contains("media_workers"));
    }

    #[test]
    fn defaults_resolve() {
        let c = Config::from_layer(&Layer::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./ferry-data"));
        assert!(c.database_url.starts_with("sqlite://") && c.database_url.ends_with("ferry.db"));
        assert_eq!(c.upload_expiry, Duration::from_secs(86_400));
        assert_eq!(c.max_upload_size, 64 << 30);
        assert_eq!(c.header_timeout, Duration::from_secs(30));
    }

    #[test]
    fn later_layers_win_and_file_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ngc_grace = \"2m\"\ncors_origins = [\"https://a\", \"https://b\"]\n",
        )
        .unwrap();
        let mut flags = Layer::new();
        flags.insert("listen", "127.0.0.1:9001".into());
        let mut merged = file_layer(&file).unwrap();
        merged.extend(flags);
        let c = Config::from_layer(&merged).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.gc_grace, Duration::from_secs(120));
        assert_eq!(c.cors_origins, vec!["https://a", "https://b"]);

        std::fs::write(&file, "listne = \"x\"\n").unwrap();
        assert!(file_layer(&file).unwrap_err().to_string().contains("unknown setting 'listne'"));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let mut layer = Layer::new();
        layer.insert("upload_expiry", "soon".into());
        assert!(Config::from_layer(&layer).unwrap_err().to_string().contains("upload_expiry"));
        let mut layer = Layer::new();
        layer.insert("public_url", "ftp://x".into());
        assert!(Config::from_layer(&layer).is_err());
        // sizes are stored as i64: a larger limit could never be honoured
        let mut layer = Layer::new();
        layer.insert("max_upload_size", "9223372036854775808".into());
        assert!(Config::from_layer(&layer).unwrap_err().to_string().contains("max_upload_size"));
        layer.insert("max_upload_size", "9223372036854775807".into());
        assert!(Config::from_layer(&layer).is_ok());
        layer.insert("gallery_page_cache", "lots".into());
        assert!(Config::from_layer(&layer).unwrap_err().to_string().contains("gallery_page_cache"));
        layer.insert("gallery_page_cache", "0".into());
        assert_eq!(Config::from_layer(&layer).unwrap().gallery_page_cache, 0);
    }

    #[test]
    fn every_setting_is_read_from_its_environment_variable() {
        // the env layer is built from SETTINGS; a field parsed without an entry there would
        // be silently ignored in ferry.toml and the environment
        for setting in SETTINGS {
            assert!(setting.env == format!("FERRY_{}", setting.key.to_uppercase()), "{}", setting.key);
        }
        let c = Config::from_layer(&Layer::new()).unwrap();
        assert_eq!(c.tombstone_retention, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let mut layer = Layer::new();
        layer.insert("signing_secret", "hunter2-very-secret".into());
        layer.insert("s3_bucket", "b".into());
        layer.insert("s3_secret_access_key", "hunter2-s3-secret".into());
        let c = Config::from_layer(&layer).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
