//! Progress for a person: `indicatif` bars with rates and ETA when stderr is a terminal (a
//! bar per phase, and one per large file in flight), plain lines otherwise (logs, pipes,
//! CI), nothing but problems with `--quiet`. Results go to stdout; progress never does.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain-line mode reports a phase still running.
const LINE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// The run's progress display.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
}

impl Progress {
    /// Bars on a terminal, lines elsewhere; `quiet` silences all but problems.
    pub fn new(quiet: bool) -> Self {
        let mode = match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Bars,
            (false, false) => Mode::Lines,
        };
        let target = if mode == Mode::Bars { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Self { mode, multi: MultiProgress::with_draw_target(target) }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A line of news (above the bars on a terminal); not shown with `--quiet`.
    pub fn line(&self, text: impl AsRef<str>) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(text.as_ref());
            }
            Mode::Lines => eprintln!("{}", text.as_ref()),
            Mode::Quiet => {}
        }
    }

    /// A problem: always shown.
    pub fn warn(&self, text: impl AsRef<str>) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(text.as_ref());
            }
            _ => eprintln!("{}", text.as_ref()),
        }
    }

    /// A phase over `total` bytes of `files` files (hashing, uploading, downloading).
    pub fn phase(&self, name: &'static str, total: u64, files: u64) -> Phase {
        let bar = if self.mode == Mode::Bars {
            let bar = self.multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>11} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name);
            bar.set_message(format!("0/{files} files"));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        } else {
            // counts only: line mode prints from its figures
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        };
        Phase(Arc::new(PhaseState {
            progress: self.clone(),
            name,
            bar,
            files,
            files_done: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }))
    }

    /// A bar for one large file in flight (nothing in line mode: the phase reports).
    pub fn file_bar(&self, name: &str, size: u64, done: u64) -> ProgressBar {
        if self.mode != Mode::Bars {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>11} [{bar:30.green/white}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix("  file");
        bar.set_message(shorten(name, 40));
        bar.set_position(done);
        // what a resumed transfer already had is not speed
        bar.reset_eta();
        bar
    }
}

struct PhaseState {
    progress: Progress,
    name: &'static str,
    bar: ProgressBar,
    files: u64,
    files_done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

/// One phase's bar (cheap to clone into tasks).
#[derive(Clone)]
pub struct Phase(Arc<PhaseState>);

impl Phase {
    pub fn add_bytes(&self, bytes: u64) {
        self.0.bar.inc(bytes);
        self.maybe_line();
    }

    /// Bytes done before this run (a resumed transfer): taken off what is left to do
    /// rather than counted as progress, which would show as speed.
    pub fn skip_bytes(&self, bytes: u64) {
        let length = self.0.bar.length().unwrap_or(0);
        self.0.bar.set_length(length.saturating_sub(bytes));
    }

    pub fn file_done(&self) {
        let done = self.0.files_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.0.bar.set_message(format!("{done}/{} files", self.0.files));
        self.maybe_line();
    }

    /// In line mode, a line every few seconds while the phase runs.
    fn maybe_line(&self) {
        if self.0.progress.mode != Mode::Lines {
            return;
        }
        let mut last = self.0.last_line.lock().expect("not poisoned");
        if last.elapsed() >= LINE_EVERY {
            *last = Instant::now();
            let s = &self.0;
            eprintln!(
                "{}: {} of {}, {}/{} files",
                s.name,
                HumanBytes(s.bar.position()),
                HumanBytes(s.bar.length().unwrap_or(0)),
                s.files_done.load(Ordering::Relaxed),
                s.files
            );
        }
    }

    /// Ends the phase: the bar stays drawn with its final figures; line mode says how it went.
    pub fn finish(&self) {
        let s = &self.0;
        s.bar.finish();
        if s.progress.mode == Mode::Lines && s.files > 0 {
            let took = s.started.elapsed().as_secs_f64();
            let bytes = s.bar.position();
            eprintln!(
                "{}: {}/{} files, {} in {took:.1} s ({}/s)",
                s.name,
                s.files_done.load(Ordering::Relaxed),
                s.files,
                HumanBytes(bytes),
                HumanBytes((bytes as f64 / took.max(0.001)) as u64)
            );
        }
    }
}

/// The end of a long name, which says most about it.
fn shorten(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        return name.to_owned();
    }
    let tail: String = name.chars().skip(count - (max - 1)).collect();
    format!("…{tail}")
}
