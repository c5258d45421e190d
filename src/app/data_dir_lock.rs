//! The data directory's lock: one server (or one `admin jobs run`) works on a data dir at a time.

use std::path::Path;

use anyhow::Context;

pub(super) fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    try_lock_data_dir(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "another ferry server (or an admin jobs run) is already using {} (lock {})",
            dir.display(),
            dir.join(DATA_DIR_LOCK).display()
        )
    })
}

const DATA_DIR_LOCK: &str = "ferry.lock";

/// The data directory's lock, or `None` while a server holds it.
pub fn try_lock_data_dir(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let path = dir.join(DATA_DIR_LOCK);
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}
