//! Durability shared by the small uploads in flight (group commit). Each small blob needs two
//! syncs before its 2xx: its staging file's bytes before the rename that gives it its content
//! address, and the directory entry after. One fsync each costs a device cache flush and a
//! write of the inode-table block the file shares with its neighbours, per file. Here a waiter
//! joins the next round of one thread that runs `syncfs` on the store's filesystem: one round
//! covers every write finished before it started, so sixteen uploads in flight share their
//! flushes instead of each paying for its own — and none is answered before its round ended.
//!
//! A round makes the whole filesystem durable, so a large file (whose own data would dominate
//! a round everyone waits for) keeps its own fsyncs. Rounds are used only on local
//! filesystems known to flush on `syncfs` (ext2/3/4, XFS, Btrfs, F2FS): a FUSE or network
//! mount may not pass it on, where a file's fsync does reach its server. Where `blobs/` and
//! `staging/` are not one filesystem, off Linux, or on a kernel before 5.8 (whose `syncfs`
//! does not report a failed writeback) every sync is the file's or directory's own.
//!
//! `syncfs` reports a failed writeback to the first round after it, whoever waits there; a
//! waiter whose own pages failed may join a later, clean round. So every failed round is
//! counted, and a waiter fails if any round failed since its writes began (`Since`): a
//! writeback error may then fail an upload that was not hit, never pass one that was.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

/// Staging files up to this size join a round; larger ones fsync themselves.
pub(super) const GROUP_SYNC_MAX: u64 = 1024 * 1024;

type Waiter = oneshot::Sender<Result<(), i32>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Rounds whose `syncfs` failed, ever.
    failed_rounds: AtomicU64,
}

/// A point to check failed rounds from: taken before the writes a sync is to cover.
#[derive(Debug, Clone, Copy)]
pub(super) struct Since(u64);

/// Stops its thread when dropped.
pub(super) struct GroupSync {
    shared: Arc<Shared>,
}

impl GroupSync {
    /// Rounds for the filesystem holding `blobs` and `staging`; `None` when they are not on
    /// one filesystem, or rounds are not available here.
    pub fn start(blobs: &Path, staging: &Path) -> std::io::Result<Option<Self>> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            if std::fs::metadata(blobs)?.dev() != std::fs::metadata(staging)?.dev() || !syncfs_reports_errors() {
                return Ok(None);
            }
            let filesystem = File::open(blobs)?;
            if !flushes_on_syncfs(&filesystem)? {
                return Ok(None);
            }
            let shared = Arc::new(Shared::default());
            let rounds = shared.clone();
            std::thread::Builder::new().name("ferry-group-sync".into()).spawn(move || run(&rounds, &filesystem))?;
            Ok(Some(Self { shared }))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (blobs, staging);
            Ok(None)
        }
    }

    /// Marks the start of writes a later [`GroupSync::sync`] is to cover.
    pub fn since(&self) -> Since {
        Since(self.shared.failed_rounds.load(Ordering::SeqCst))
    }

    /// Returns once a round that started after this call has made the filesystem durable;
    /// an error when that round, or any round since `since`, failed.
    pub async fn sync(&self, since: Since) -> std::io::Result<()> {
        let (done, round) = oneshot::channel();
        self.shared.queue.lock().expect("not poisoned").waiting.push(done);
        self.shared.wake.notify_one();
        match round.await {
            Ok(Ok(())) if self.shared.failed_rounds.load(Ordering::SeqCst) == since.0 => Ok(()),
            Ok(Ok(())) => {
                Err(std::io::Error::other("writing to the store's disk failed while this upload was written"))
            }
            Ok(Err(errno)) => Err(std::io::Error::from_raw_os_error(errno)),
            Err(_) => Err(std::io::Error::other("the group sync thread stopped")),
        }
    }
}

impl Drop for GroupSync {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("not poisoned").closed = true;
        self.shared.wake.notify_one();
    }
}

/// Linux reports writeback errors through `syncfs` since 5.8.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (5, 8)
}

/// Local filesystems whose `syncfs` writes and flushes everything (statfs magic numbers).
#[cfg(target_os = "linux")]
fn flushes_on_syncfs(filesystem: &File) -> std::io::Result<bool> {
    const LOCAL: [i64; 4] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0xF2F5_2010, // F2FS
    ];
    let kind = rustix::fs::fstatfs(filesystem)?.f_type;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    Ok(LOCAL.contains(&(kind as i64)))
}

#[cfg(target_os = "linux")]
fn run(shared: &Shared, filesystem: &File) {
    loop {
        let round = {
            let mut queue = shared.queue.lock().expect("not poisoned");
            while queue.waiting.is_empty() && !queue.closed {
                queue = shared.wake.wait(queue).expect("not poisoned");
            }
            if queue.waiting.is_empty() {
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        // every waiter of this round queued before the call: their writes are covered
        let synced = rustix::fs::syncfs(filesystem).map_err(|e| e.raw_os_error());
        if synced.is_err() {
            shared.failed_rounds.fetch_add(1, Ordering::SeqCst);
        }
        for waiter in round {
            let _ = waiter.send(synced);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn rounds_in(root: &Path) -> Option<GroupSync> {
        let (blobs, staging) = (root.join("blobs"), root.join("staging"));
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        GroupSync::start(&blobs, &staging).unwrap()
    }

    #[tokio::test]
    async fn every_waiter_at_once_is_answered_by_a_round() {
        let dir = tempfile::tempdir().unwrap();
        let Some(group) = rounds_in(dir.path()) else {
            return; // rounds are off on this filesystem (tmpfs, overlay…): nothing to check
        };
        let group = Arc::new(group);
        let waits = (0..64).map(|_| {
            let group = group.clone();
            tokio::spawn(async move { group.sync(group.since()).await })
        });
        for wait in futures_util::future::join_all(waits).await {
            wait.unwrap().unwrap();
        }
        drop(group);
    }

    #[tokio::test]
    async fn a_failed_round_fails_every_waiter_whose_writes_began_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let Some(group) = rounds_in(dir.path()) else {
            return; // rounds are off on this filesystem (tmpfs, overlay…): nothing to check
        };
        let before = group.since();
        // a round whose syncfs reported a writeback error (which cannot be caused on demand)
        group.shared.failed_rounds.fetch_add(1, Ordering::SeqCst);
        assert!(group.sync(before).await.is_err(), "its pages may be what failed");
        assert!(group.sync(group.since()).await.is_ok(), "writes begun after it are not suspect");
    }
}
