//! `ferry push --watch`: after the first round the folder is looked at every second, and a
//! file that is new or changed is pushed once its size and mtime have stayed the same for
//! the settle time (a camera still writing a clip is left alone until it is done). Local
//! deletions are never pushed. It runs until stopped (Ctrl-C).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{PushOptions, PushSummary, push_files};
use crate::sync_client::walk::walk;
use crate::sync_client::{Session, SyncError};

const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Watches the folder forever, calling `report` after each round that pushed something.
/// The caller has run the first round already.
pub async fn watch(
    session: &mut Session,
    options: &PushOptions,
    settle: Duration,
    mut report: impl FnMut(&PushSummary),
) -> Result<(), SyncError> {
    let look = |session: &Session| {
        walk(&session.root, &options.filters).map_err(SyncError::io(format!("reading {}", session.root.display())))
    };
    // what the first round saw counts as pushed (failed files are tried again when they change)
    let mut pushed: HashMap<String, (u64, i64)> =
        look(session)?.files.into_iter().map(|f| (f.rel, (f.size, f.mtime_ns))).collect();
    let mut changing: HashMap<String, ((u64, i64), Instant)> = HashMap::new();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let mut ready = Vec::new();
        for file in look(session)?.files {
            let now = (file.size, file.mtime_ns);
            if pushed.get(&file.rel) == Some(&now) {
                changing.remove(&file.rel);
                continue;
            }
            match changing.get(&file.rel) {
                Some((seen, since)) if *seen == now && since.elapsed() >= settle => ready.push(file),
                Some((seen, _)) if *seen == now => {}
                _ => {
                    changing.insert(file.rel.clone(), (now, Instant::now()));
                }
            }
        }
        if ready.is_empty() {
            continue;
        }
        for file in &ready {
            pushed.insert(file.rel.clone(), (file.size, file.mtime_ns));
            changing.remove(&file.rel);
        }
        let summary = push_files(session, options, ready).await?;
        report(&summary);
    }
}
