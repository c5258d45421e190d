//! Walking the local folder: regular files with their sizes and times, `--include` and
//! `--exclude` globs on the path relative to the folder (`*` crosses `/`, so `*.jpg`
//! matches at any depth), hidden files and symlinks skipped unless asked for.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::hash_cache::mtime_ns;

/// Pull keeps partial downloads here, inside the folder (so the final rename stays on one
/// filesystem); a walk never reports it.
pub const PARTIAL_DIR: &str = ".ferry-partial";

/// Which files a walk reports.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    pub hidden: bool,
    pub follow_symlinks: bool,
}

impl Filters {
    /// Errors name the bad pattern (globset's message quotes it).
    pub fn new(
        include: &[String],
        exclude: &[String],
        hidden: bool,
        follow_symlinks: bool,
    ) -> Result<Self, globset::Error> {
        let set = |patterns: &[String]| -> Result<Option<GlobSet>, globset::Error> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for pattern in patterns {
                builder.add(Glob::new(pattern)?);
            }
            builder.build().map(Some)
        };
        Ok(Self { include: set(include)?, exclude: set(exclude)?, hidden, follow_symlinks })
    }

    /// Whether a file at `rel` (relative, `/`-separated) is wanted.
    pub fn wants(&self, rel: &str) -> bool {
        let hidden = rel.split('/').any(|segment| segment.starts_with('.'));
        (self.hidden || !hidden)
            && !rel.split('/').any(|segment| segment == PARTIAL_DIR)
            && self.include.as_ref().is_none_or(|set| set.is_match(rel))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(rel))
    }

    /// Whether a directory at `rel` may hold wanted files.
    fn enters(&self, rel: &str, name: &str) -> bool {
        name != PARTIAL_DIR
            && (self.hidden || !name.starts_with('.'))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(rel))
    }
}

/// A regular file found by the walk.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Relative to the folder, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Birth time where the filesystem keeps one.
    pub created: Option<SystemTime>,
    pub identity: Option<FileIdentity>,
}

impl LocalFile {
    pub fn stamp(&self) -> Stamp {
        Stamp { size: self.size, mtime_ns: self.mtime_ns, ctime_ns: self.ctime_ns }
    }
}

/// What a file's metadata says of its bytes, the hash cache's key. The ctime is in it
/// because the mtime alone can be put back after an edit (some editors and copy tools do):
/// any write, and setting the mtime, move the ctime to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> std::io::Result<Self> {
        Ok(Self { size: meta.len(), mtime_ns: mtime_ns(meta.modified()?), ctime_ns: ctime_ns(meta) })
    }
}

fn ctime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec())
}

/// Which file a path holds, beyond its name: the same one after an edit in place, another
/// after it was deleted and a new one made under the name (a camera card formatted and
/// filled again reuses IMG_0001.JPG). `None` where the filesystem keeps no birth time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    born_ns: i64,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> Option<Self> {
        let born = meta.created().ok()?;
        Some(Self { dev: meta.dev(), ino: meta.ino(), born_ns: mtime_ns(born) })
    }
}

/// What a walk found: files, and paths it had to leave out with the reason.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<LocalFile>,
    pub skipped: Vec<(String, String)>,
}

/// Walks `root` (files in path order).
pub fn walk(root: &Path, filters: &Filters) -> std::io::Result<Walked> {
    let mut walked = Walked::default();
    let root_meta = std::fs::metadata(root)?;
    let mut seen_dirs = HashSet::from([(root_meta.dev(), root_meta.ino())]);
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // the root itself must be readable; a subfolder that is not is reported
            Err(e) if rel_dir.is_empty() => return Err(e),
            Err(e) if e.kind() == ErrorKind::NotFound => continue, // removed since it was listed
            Err(e) => {
                walked.skipped.push((rel_dir, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                let shown = entry.path().display().to_string();
                walked.skipped.push((shown, "the name is not valid UTF-8".into()));
                continue;
            };
            let rel = if rel_dir.is_empty() { name.clone() } else { format!("{rel_dir}/{name}") };
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // gone since it was listed
                Err(e) => {
                    walked.skipped.push((rel, e.to_string()));
                    continue;
                }
            };
            let meta = if kind.is_symlink() {
                if !filters.follow_symlinks {
                    continue;
                }
                match std::fs::metadata(entry.path()) {
                    Ok(meta) => meta,
                    Err(e) => {
                        walked.skipped.push((rel, format!("broken symlink: {e}")));
                        continue;
                    }
                }
            } else {
                match entry.metadata() {
                    Ok(meta) => meta,
                    // gone since its folder was listed (a temporary file): nothing to push
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => {
                        walked.skipped.push((rel, e.to_string()));
                        continue;
                    }
                }
            };
            if meta.is_dir() {
                // a symlinked folder seen before (a loop) is walked once
                if filters.enters(&rel, &name) && seen_dirs.insert((meta.dev(), meta.ino())) {
                    pending.push((entry.path(), rel));
                }
            } else if meta.is_file() && filters.wants(&rel) {
                let modified = meta.modified()?;
                walked.files.push(LocalFile {
                    rel,
                    abs: entry.path(),
                    size: meta.len(),
                    modified,
                    mtime_ns: mtime_ns(modified),
                    ctime_ns: ctime_ns(&meta),
                    created: meta.created().ok(),
                    identity: FileIdentity::of(&meta),
                });
            }
        }
    }
    walked.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_hidden_files_globs_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in ["a.jpg", "b.txt", "sub/c.jpg", ".hidden/d.jpg", "sub/.e.jpg", "tmp/f.jpg", ".ferry-partial/x"] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), path).unwrap();
        }
        std::os::unix::fs::symlink(root.join("a.jpg"), root.join("link.jpg")).unwrap();
        let names = |filters: &Filters| -> Vec<String> {
            walk(root, filters).unwrap().files.into_iter().map(|f| f.rel).collect()
        };
        assert_eq!(names(&Filters::default()), ["a.jpg", "b.txt", "sub/c.jpg", "tmp/f.jpg"]);
        let jpgs = Filters::new(&["*.jpg".into()], &["tmp/**".into()], false, false).unwrap();
        assert_eq!(names(&jpgs), ["a.jpg", "sub/c.jpg"]);
        let all = Filters::new(&[], &[], true, true).unwrap();
        assert_eq!(
            names(&all),
            [".hidden/d.jpg", "a.jpg", "b.txt", "link.jpg", "sub/.e.jpg", "sub/c.jpg", "tmp/f.jpg"]
        );
    }

    #[test]
    fn files_and_folders_that_vanish_during_the_walk_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("kept.jpg"), b"kept").unwrap();
        let rounds = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        // an editor's or a camera's temporary files: made and removed all the time
        let churn = std::thread::spawn({
            let (root, rounds) = (root.clone(), rounds.clone());
            move || {
                for n in 0..1_000u64 {
                    let folder = root.join(format!("tmp{}", n % 4));
                    let _ = std::fs::create_dir_all(&folder);
                    for i in 0..20 {
                        let _ = std::fs::write(folder.join(format!("{i}.part")), b"x");
                    }
                    let _ = std::fs::remove_dir_all(&folder);
                    rounds.store(n + 1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let mut walks = Vec::new();
        // walks for as long as the churn goes on (and at most 100,000: bounded either way)
        while rounds.load(std::sync::atomic::Ordering::Relaxed) < 1_000 && walks.len() < 100_000 {
            walks.push(walk(&root, &Filters::default()));
        }
        churn.join().unwrap();
        for walked in walks {
            let walked = walked.expect("a file removed during the walk does not end it");
            assert!(walked.files.iter().any(|f| f.rel == "kept.jpg"));
            assert!(walked.skipped.is_empty(), "{:?}", walked.skipped);
        }
    }
}
