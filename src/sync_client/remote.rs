//! A local mirror of the grant's change feed (`media_list`, API.md §1): what the volume holds
//! at each path, kept up to date from a stored cursor, so a run asks only for what changed.
//! Push uses it to leave files that are already in place alone; pull mirrors it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{ApiError, DeviceApi};
use super::state::{StateDir, read_json, write_atomic};
use crate::domain::Sha256Hex;

const FILE: &str = "remote.json";
const PAGE: u32 = 1000;
/// How often a long refresh saves the mirror on its way.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// One media item as the feed last showed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteItem {
    pub media_id: i64,
    pub media_path: String,
    pub file_hash: Sha256Hex,
    pub file_size: u64,
    #[serde(default)]
    pub mtime: Option<String>,
    pub last_updated: String,
    pub is_deleted: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    /// The feed's `next_cursor` after the last page applied ("" = from the start).
    cursor: String,
    items: BTreeMap<String, RemoteItem>,
}

pub struct RemoteIndex {
    path: PathBuf,
    stored: Stored,
}

impl RemoteIndex {
    pub fn load(state: &StateDir) -> Self {
        let path = state.path(FILE);
        Self { stored: read_json(&path), path }
    }

    /// Applies every change since the stored cursor; returns how many items changed. The
    /// mirror is saved at the end and every [`SAVE_EVERY`] on the way, so a long first sync
    /// that is interrupted goes on from about where it stopped (by time, not pages: each save
    /// writes the whole mirror, and saving every few pages made a first sync of a million
    /// items write gigabytes).
    pub async fn refresh(&mut self, api: &DeviceApi) -> Result<usize, RefreshError> {
        let mut changed = 0;
        let mut saved = std::time::Instant::now();
        loop {
            let page = api.call("media_list", json!({"cursor": self.stored.cursor, "limit": PAGE})).await?;
            let items: Vec<RemoteItem> =
                serde_json::from_value(page["media_list"].clone()).map_err(|e| RefreshError::Feed(e.to_string()))?;
            let next = page["next_cursor"].as_str().ok_or_else(|| RefreshError::Feed("no next_cursor".into()))?;
            changed += items.len();
            for item in items {
                self.stored.items.insert(item.media_path.clone(), item);
            }
            let advanced = next != self.stored.cursor;
            self.stored.cursor = next.to_owned();
            if page["has_more"] != true {
                self.save()?;
                return Ok(changed);
            }
            if saved.elapsed() >= SAVE_EVERY {
                self.save()?;
                saved = std::time::Instant::now();
            }
            if !advanced {
                return Err(RefreshError::Feed("has_more without a new cursor".into()));
            }
        }
    }

    pub fn get(&self, media_path: &str) -> Option<&RemoteItem> {
        self.stored.items.get(media_path)
    }

    /// Every item at or under `prefix` (`/` = all), deleted ones included.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a RemoteItem> + 'a {
        let start = if prefix == "/" { String::from("/") } else { format!("{prefix}/") };
        self.stored.items.range(start.clone()..).take_while(move |(path, _)| path.starts_with(&start)).map(|(_, i)| i)
    }

    fn save(&self) -> std::io::Result<()> {
        write_atomic(&self.path, &serde_json::to_vec(&self.stored).map_err(std::io::Error::other)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the server's change feed: {0}")]
    Feed(String),
    #[error("could not save the change-feed mirror: {0}")]
    Io(#[from] std::io::Error),
}
