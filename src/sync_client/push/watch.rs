//! `ferry push --watch`: after the first round the folder is looked at every second, and a
//! file that is new or changed is pushed once its size and times have stayed the same for
//! the settle time (a camera still writing a clip is left alone until it is done). Local
//! deletions are never pushed. It runs until stopped (Ctrl-C), through server outages: a
//! round the server could not take is said, and its files are tried again after a pause. A
//! file that failed on its own (unreadable, refused) is tried again when it changes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{PushOptions, PushSummary, push_files};
use crate::sync_client::remote::RefreshError;
use crate::sync_client::walk::{Stamp, walk};
use crate::sync_client::{Session, SyncError, plural};

const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long a round the server could not take waits before its files are tried again.
const AFTER_OUTAGE: Duration = Duration::from_secs(5);

/// Watches the folder forever, calling `report` after each round that pushed something.
/// The caller has run the first round already (`first`: what it did, if the server took it).
pub async fn watch(
    session: &mut Session,
    options: &PushOptions,
    settle: Duration,
    first: Option<&PushSummary>,
    mut report: impl FnMut(&PushSummary),
) -> Result<(), SyncError> {
    let look = |session: &Session| {
        walk(&session.root, &options.filters).map_err(SyncError::io(format!("reading {}", session.root.display())))
    };
    // what the first round took counts as pushed (a file made since, even while it ran, is
    // new); if the server could not take it, every file is looked at again (those it has
    // already cost one batched question)
    let mut pushed: HashMap<String, Stamp> = first.map(done_by).unwrap_or_default();
    let mut changing: HashMap<String, (Stamp, Instant)> = HashMap::new();
    let mut paused_until = Instant::now();
    if let Some(first) = first {
        wait_for_the_server(session, first, &mut paused_until);
    }
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let mut ready = Vec::new();
        for file in look(session)?.files {
            let now = file.stamp();
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
        if ready.is_empty() || Instant::now() < paused_until {
            continue;
        }
        let tried = ready.len();
        match push_files(session, options, ready).await {
            Ok(summary) => {
                for (rel, stamp) in done_by(&summary) {
                    changing.remove(&rel);
                    pushed.insert(rel, stamp);
                }
                wait_for_the_server(session, &summary, &mut paused_until);
                report(&summary);
            }
            // the server or the network, not the files: the same files again after a pause
            Err(e) if server_outage(&e) => {
                let waiting = plural(tried as u64, "file", "files");
                session.progress.warn(format!("{e}; {waiting} waiting, tried again in {} s", AFTER_OUTAGE.as_secs()));
                paused_until = Instant::now() + AFTER_OUTAGE;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Files of a round that failed because of the server are tried again after a pause.
fn wait_for_the_server(session: &Session, summary: &PushSummary, paused_until: &mut Instant) {
    if !summary.retry_later.is_empty() {
        let waiting = plural(summary.retry_later.len() as u64, "file", "files");
        session.progress.warn(format!("{waiting} waiting for the server, tried again in {} s", AFTER_OUTAGE.as_secs()));
        *paused_until = Instant::now() + AFTER_OUTAGE;
    }
}

/// The files a round is done with: all it took but those that failed because of the server,
/// not themselves (looked at again after a pause).
fn done_by(summary: &PushSummary) -> HashMap<String, Stamp> {
    let done = summary.taken.iter().filter(|(rel, _)| !summary.retry_later.contains(*rel));
    done.map(|(rel, stamp)| (rel.clone(), *stamp)).collect()
}

/// A round that failed because of the server or the network, not the files or the key: worth
/// trying again later.
pub fn server_outage(error: &SyncError) -> bool {
    matches!(error, SyncError::Api(e) | SyncError::Refresh(RefreshError::Api(e)) if e.is_transient())
}
