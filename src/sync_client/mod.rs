//! The sync client behind `ferry push` and `ferry pull`: it speaks only the public device
//! family (API.md §1 and the resume of §5), so it works against any Ferry.
//!
//! A tour:
//! - [`api`]: typed device-family calls, bounded retries, errors a person can act on.
//! - [`walk`] finds local files; [`content`] hashes one in one read (file hash and part
//!   hashes); [`hash_cache`] remembers hashes by path, size, mtime and ctime.
//! - [`remote`] mirrors the grant's change feed from a stored cursor.
//! - [`state`]: the state directory (per server + grant + folder), locked, written atomically.
//! - [`push`]: hash → ask in batches → send what is missing (signed PUT or resumable parts)
//!   → create media at their paths; `--watch` repeats it for files that settle.
//! - [`pull`]: feed → download what differs (Range resume, verified, renamed into place).
//! - [`progress`]: bars on a terminal, lines elsewhere.

pub mod api;
pub mod content;
pub mod hash_cache;
pub mod progress;
pub mod pull;
pub mod push;
pub mod remote;
pub mod state;
pub mod walk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use self::api::{ApiError, DeviceApi};
use self::hash_cache::HashCache;
use self::progress::Progress;
use self::remote::{RefreshError, RemoteIndex};
use self::state::{StateDir, StateError};
use crate::domain::MediaPath;

/// A file that could not be pushed or pulled, and why (the run goes on without it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

/// Why a whole run stops (exit code 2): usage, the key, the server, the state directory.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl SyncError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SyncError {
        let what = what.into();
        move |source| SyncError::Io { what, source }
    }
}

/// Where to connect: one server, one device key, one of its grants.
#[derive(Debug, Clone)]
pub struct Connection {
    pub server: String,
    pub device_key: String,
    pub grant: String,
    /// `None`: [`state::default_root`].
    pub state_root: Option<PathBuf>,
    /// How long an attempt may go without an answer or progress.
    pub stall: std::time::Duration,
}

/// What a push or pull run works with: the checked grant, the local folder, the volume
/// prefix it maps to, and the state of earlier runs.
pub struct Session {
    pub api: DeviceApi,
    pub progress: Progress,
    /// The local folder, absolute.
    pub root: PathBuf,
    /// The volume path the folder maps to (`/` or a media path).
    pub prefix: String,
    pub cache: Arc<Mutex<HashCache>>,
    pub remote: RemoteIndex,
    pub concurrency: usize,
    pub state: StateDir,
}

impl Session {
    /// Checks the key and grant with the server, resolves the prefix (`None`: the grant's)
    /// and opens the state directory of this server + grant + folder.
    pub async fn open(
        conn: &Connection,
        dir: &Path,
        prefix: Option<&str>,
        progress: Progress,
        concurrency: usize,
    ) -> Result<Self, SyncError> {
        let api = DeviceApi::new(&conn.server, &conn.device_key, &conn.grant, conn.stall)?;
        let root = std::fs::canonicalize(dir).map_err(SyncError::io(format!("the folder {}", dir.display())))?;
        if !root.is_dir() {
            return Err(SyncError::Usage(format!("{} is not a folder", dir.display())));
        }
        let grant = api.grant_info().await?;
        let grant_prefix = MediaPath::parse_prefix(&grant.prefix_path)
            .map_err(|e| SyncError::Usage(format!("the grant's prefix_path: {e}")))?;
        let prefix = match prefix {
            None => grant_prefix,
            Some(raw) => {
                let trimmed = if raw.len() > 1 { raw.trim_end_matches('/') } else { raw };
                let path = MediaPath::parse_prefix(trimmed).map_err(|e| SyncError::Usage(format!("'{raw}': {e}")))?;
                if !path.is_under(&grant_prefix) {
                    return Err(SyncError::Usage(format!(
                        "{path} is outside media grant {}, which holds {grant_prefix} only",
                        conn.grant
                    )));
                }
                path
            }
        };
        let state_root = conn.state_root.clone().unwrap_or_else(state::default_root);
        let state = StateDir::open(&state_root, api.server(), &conn.grant, &root)?;
        let cache = Arc::new(Mutex::new(HashCache::load(&state)));
        let remote = RemoteIndex::load(&state);
        let concurrency = concurrency.max(1);
        Ok(Self { api, progress, root, prefix: prefix.as_str().to_owned(), cache, remote, concurrency, state })
    }

    /// The volume path of the local file at `rel`.
    pub fn media_path(&self, rel: &str) -> String {
        if self.prefix == "/" { format!("/{rel}") } else { format!("{}/{rel}", self.prefix) }
    }

    /// The local path (relative, `/`-separated) of a volume path under the prefix.
    pub fn local_rel<'a>(&self, media_path: &'a str) -> Option<&'a str> {
        let rest = if self.prefix == "/" {
            media_path.strip_prefix('/')
        } else {
            media_path.strip_prefix(&self.prefix)?.strip_prefix('/')
        };
        rest.filter(|r| !r.is_empty())
    }

    /// Saves the hash cache (also called on Ctrl-C, so hashing done is never lost).
    pub fn save_cache(&self) -> Result<(), SyncError> {
        self.cache.lock().expect("not poisoned").save().map_err(SyncError::io("saving the hash cache"))
    }
}

/// `count` things, said in words ("1 file", "3 files").
pub fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}
