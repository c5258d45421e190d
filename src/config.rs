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
mod settings;
mod transcode;
mod units;
use file::file_layer;
pub use file::{TomlRefused, layer_from_toml};
pub use links::{NoLinkAddress, links_for};
pub use s3::S3Config;
pub use settings::{SETTINGS, Setting};
pub use transcode::{Transcode, TranscodePolicy};
pub use units::{parse_duration, parse_size};

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
