//! `ferry push`: a local folder into a volume.
//!
//! One round: walk → hash what the cache does not know (in parallel, one read per file) →
//! refresh the change-feed mirror → ask the server in batches of up to 10,000 contents which
//! it needs → send each needed content once (a signed PUT up to 16 MiB, resumable parts in
//! parallel above) → create each media item at its path with its times, applying the
//! conflict policy. `--watch` runs rounds for files that settle ([`watch`]).

mod hashing;
mod place;
mod transfer;
pub mod watch;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::content::FileHash;
use super::walk::{Filters, LocalFile, Stamp, walk};
use super::{Failure, Session, SyncError, plural};
use crate::domain::{MediaPath, Sha256Hex};

/// The most entries one `upload` request carries (API.md §1 answers such batches quickly).
pub const BATCH: usize = 10_000;

/// What to do when a path already holds other content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Leave the server's file, report it.
    #[default]
    Skip,
    /// Replace it, unless it changed since this run saw it (`expected_last_updated`).
    Overwrite,
    /// Put ours beside it as `name (1).ext`.
    Rename,
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub filters: Filters,
    pub on_conflict: ConflictPolicy,
    pub dry_run: bool,
}

/// The run's outcome, as `--json` prints it (exactly these keys).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PushSummary {
    pub files_seen: u64,
    pub files_hashed: u64,
    pub files_present: u64,
    pub files_uploaded: u64,
    pub bytes_sent: u64,
    pub bytes_deduplicated: u64,
    /// Paths whose server copy was replaced by a local edit of it.
    pub files_updated: u64,
    /// Files left alone because the server's copy changed since they were in sync with it
    /// (they are older: pull to get the new one).
    pub files_behind: u64,
    pub conflicts: u64,
    pub failures: Vec<Failure>,
    /// Files among `failures` that failed because of the server or the network, not
    /// themselves (`--watch` tries them again soon).
    #[serde(skip)]
    pub retry_later: HashSet<String>,
    /// Conflicts that left the file off the server (skipped): the run is not all done.
    #[serde(skip)]
    pub unresolved: u64,
    /// The files this round took, as it found them (`--watch` looks at a file again once it
    /// differs from this, or when it is in `retry_later`).
    #[serde(skip)]
    pub taken: HashMap<String, Stamp>,
}

impl PushSummary {
    /// One line for a person.
    pub fn describe(&self, dry_run: bool) -> String {
        let uploaded = if dry_run { "would upload" } else { "uploaded" };
        let updated = match dry_run {
            true => format!("would update {}", self.files_updated),
            false => format!("{} updated", self.files_updated),
        };
        let mut line = format!(
            "{} seen, {} hashed, {} already on the server, {uploaded} {} ({} sent), {updated}, {}, {}",
            plural(self.files_seen, "file", "files"),
            self.files_hashed,
            self.files_present,
            plural(self.files_uploaded, "file", "files"),
            indicatif::HumanBytes(self.bytes_sent),
            plural(self.conflicts, "conflict", "conflicts"),
            plural(self.failures.len() as u64, "failure", "failures"),
        );
        if self.files_behind > 0 {
            line.push_str(&format!(", {} behind the server (pull to get them)", self.files_behind));
        }
        line
    }

    fn fail(&mut self, path: &str, reason: impl Into<String>) {
        self.failures.push(Failure { path: path.to_owned(), reason: reason.into() });
    }
}

/// Walks the folder and pushes every file in it (one round).
pub async fn push(session: &mut Session, options: &PushOptions) -> Result<PushSummary, SyncError> {
    let walked =
        walk(&session.root, &options.filters).map_err(SyncError::io(format!("reading {}", session.root.display())))?;
    {
        // forget files that are gone, so the cache does not grow forever
        let root = session.root.clone();
        session.cache.lock().expect("not poisoned").retain(|rel| root.join(rel).is_file());
    }
    let mut summary = push_files(session, options, walked.files).await?;
    for (path, reason) in walked.skipped {
        summary.fail(&path, reason);
    }
    Ok(summary)
}

/// A file with its hash and where it goes.
struct Planned {
    file: LocalFile,
    hash: FileHash,
    media_path: String,
}

/// Pushes these files (one round; `--watch` calls it with the files that changed).
pub async fn push_files(
    session: &mut Session,
    options: &PushOptions,
    files: Vec<LocalFile>,
) -> Result<PushSummary, SyncError> {
    let taken = files.iter().map(|f| (f.rel.clone(), f.stamp())).collect();
    let mut summary = PushSummary { files_seen: files.len() as u64, taken, ..PushSummary::default() };
    let hashed = hashing::hash_all(session, files, &mut summary).await?;
    session.remote.refresh(&session.api).await?;

    let mut planned = Vec::with_capacity(hashed.len());
    for (file, hash) in hashed {
        let media_path = session.media_path(&file.rel);
        match MediaPath::parse(&media_path) {
            Ok(_) => planned.push(Planned { file, hash, media_path }),
            Err(e) => summary.fail(&file.rel, format!("cannot be a volume path: {e}")),
        }
    }
    planned.retain(|p| {
        // deleted there since this copy was in sync with it: an old copy does not bring it back
        if session.remote.get(&p.media_path).is_some_and(|r| r.is_deleted) && place::behind(session, p) {
            summary.files_behind += 1;
            session.progress.line(format!(
                "behind: {} was deleted on the server since this copy was in sync with it; left alone (pull --delete \
                 removes it here)",
                p.media_path
            ));
            return false;
        }
        let theirs = session.remote.get(&p.media_path).filter(|r| !r.is_deleted && r.file_hash != p.hash.file_hash);
        let Some(theirs) = theirs.filter(|r| !place::edited_from(session, p, &r.file_hash)) else { return true };
        // an old copy of what the server changed since: never sent, whatever the policy
        if place::behind(session, p) {
            summary.files_behind += 1;
            session.progress.line(place::behind_line(&p.media_path));
            return false;
        }
        // a path holding someone else's content would be skipped anyway: its bytes are not sent
        if options.on_conflict != ConflictPolicy::Skip {
            return true;
        }
        summary.conflicts += 1;
        summary.unresolved += 1;
        let verb = if options.dry_run { "would conflict" } else { "conflict" };
        let reason = place::conflict_reason(session, p, Some(&theirs.file_hash));
        session.progress.line(format!("{verb}: {} {reason}", p.media_path));
        false
    });

    // each content once, in order of first appearance
    let mut contents: Vec<(Sha256Hex, u64)> = Vec::new();
    let mut first_of: HashMap<(Sha256Hex, u64), usize> = HashMap::new();
    for (index, p) in planned.iter().enumerate() {
        first_of.entry(p.hash.key()).or_insert_with(|| {
            contents.push(p.hash.key());
            index
        });
    }
    let mut needed: Vec<(usize, Value)> = Vec::new();
    let mut refused: HashMap<(Sha256Hex, u64), String> = HashMap::new();
    for batch in contents.chunks(BATCH) {
        let answer = session.api.upload_check(batch).await?;
        if answer["upload_disabled"] == true {
            return Err(SyncError::Usage("uploads are disabled for this device on the server".into()));
        }
        let entries = answer["upload_list"].as_array().cloned().unwrap_or_default();
        if entries.len() != batch.len() {
            return Err(SyncError::Usage(format!(
                "the server answered {} entries for {} files; is {} a Ferry server?",
                entries.len(),
                batch.len(),
                session.api.server()
            )));
        }
        for (key, entry) in batch.iter().zip(entries) {
            if let Some(error) = entry["error"].as_str() {
                refused.insert(key.clone(), format!("the server refuses this file: {error}"));
            } else if entry["skip_upload"] != true {
                needed.push((first_of[key], entry));
            }
        }
    }

    if options.dry_run {
        let needed_keys: HashSet<(Sha256Hex, u64)> = needed.iter().map(|(i, _)| planned[*i].hash.key()).collect();
        count_present(&planned, &first_of, &needed_keys, &refused, &mut summary);
        for (index, _) in &needed {
            let p = &planned[*index];
            session.progress.line(format!("would upload {} ({})", p.file.rel, indicatif::HumanBytes(p.hash.size)));
        }
        summary.files_uploaded = needed.len() as u64;
        for p in &planned {
            let other = session.remote.get(&p.media_path).filter(|r| !r.is_deleted && r.file_hash != p.hash.file_hash);
            if other.is_some_and(|r| place::edited_from(session, p, &r.file_hash)) {
                summary.files_updated += 1;
                session.progress.line(format!("would update {} (changed here)", p.media_path));
            } else if other.is_some() {
                summary.conflicts += 1;
                summary.unresolved += u64::from(options.on_conflict == ConflictPolicy::Skip);
                session.progress.line(format!("would conflict: {} holds other content on the server", p.media_path));
            }
        }
        for p in &planned {
            if let Some(reason) = refused.get(&p.hash.key()) {
                summary.fail(&p.file.rel, reason.clone());
            }
        }
        return Ok(summary);
    }

    let sent = transfer::send_all(session, &planned, &needed, &mut summary).await?;
    for p in planned.iter().filter(|p| sent.transient.contains(&p.hash.key())) {
        summary.retry_later.insert(p.file.rel.clone());
    }
    let mut unavailable = refused;
    unavailable.extend(sent.failed);
    count_present(&planned, &first_of, &sent.uploaded, &unavailable, &mut summary);
    let changed = place::place_all(session, &planned, &unavailable, options.on_conflict, &mut summary).await?;
    session.save_cache()?; // what is now in sync with the server
    if changed > 0 {
        // the mirror learns this run's own items now, so the next run asks for nothing
        session.remote.refresh(&session.api).await?;
    }
    Ok(summary)
}

/// Counts the files whose content the server had without this run sending it: all but the
/// first file of each content that was sent, and those whose content is unavailable.
fn count_present(
    planned: &[Planned],
    first_of: &HashMap<(Sha256Hex, u64), usize>,
    sent: &HashSet<(Sha256Hex, u64)>,
    unavailable: &HashMap<(Sha256Hex, u64), String>,
    summary: &mut PushSummary,
) {
    for (index, p) in planned.iter().enumerate() {
        let key = p.hash.key();
        if unavailable.contains_key(&key) || (sent.contains(&key) && first_of[&key] == index) {
            continue;
        }
        summary.files_present += 1;
        summary.bytes_deduplicated += p.hash.size;
    }
}
