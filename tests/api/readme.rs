//! README.md's walk-throughs, run as written (issue 29): every bash block not marked
//! `<!-- walkthrough: skip (why) -->` is extracted in order and run as one script from a
//! scratch directory against a real server on the embedded default, so the README cannot
//! drift from the program. Only what names this machine is replaced: the binary, the
//! repository's examples, the scratch directory and the server's address.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

const SKIP: &str = "<!-- walkthrough: skip";

/// The README's runnable bash blocks, in order. A shell block under another name would be
/// silently left out, so there is none: every shell block is ```bash.
fn walkthrough(readme: &str) -> Vec<String> {
    let (mut blocks, mut current, mut skipped, mut previous) = (Vec::new(), None::<String>, false, "");
    for line in readme.lines() {
        let fence = line.trim();
        if current.is_none() && ["```sh", "```shell", "```console", "```zsh"].contains(&fence) {
            panic!("README has a {fence} block: write shell as ```bash (run, or marked {SKIP} (why) -->)");
        }
        match (&mut current, line.trim_start().starts_with("```")) {
            (None, true) if fence == "```bash" => {
                skipped = previous.starts_with(SKIP);
                current = Some(String::new());
            }
            (Some(block), true) => {
                if !skipped {
                    blocks.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
        if !line.trim().is_empty() {
            previous = line.trim();
        }
    }
    blocks
}

/// Runs `command` in a process group of its own, at most `limit` (then the whole group is
/// killed: curl, the clients and the CLI it started too); (exit code, stdout + stderr).
fn run_bounded(mut command: Command, limit: Duration) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut child = command.process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).ok();
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        err.read_to_string(&mut text).ok();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > limit {
            Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, format!("{}\n--- stderr ---\n{}", reader.join().unwrap(), err_reader.join().unwrap()))
}

fn pictures(home: &Path) {
    let card = home.join("Pictures").join("card");
    std::fs::create_dir_all(&card).unwrap();
    for n in 0..3u64 {
        std::fs::write(card.join(format!("IMG_{n:04}.JPG")), bytes_of(4000 + n as usize, 70 + n)).unwrap();
    }
}

#[test]
fn the_readme_walkthroughs_run_as_written_against_a_real_server() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = walkthrough(&readme);
    assert!(blocks.len() >= 15, "found {} runnable blocks", blocks.len());
    let scratch = tempfile::tempdir().unwrap();
    let (root, home) = (scratch.path().join("checkout"), scratch.path().join("home"));
    std::fs::create_dir_all(&root).unwrap();
    pictures(&home);
    // no curl of the walk-through may hang the test
    std::fs::write(home.join(".curlrc"), "--max-time 60\n").unwrap();
    let server = FerryProcess::start(&root.join("ferry-data"), &[]);
    let bound = server.address.trim_start_matches("http://").to_owned();

    let binary = env!("CARGO_BIN_EXE_ferry");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let script = blocks
        .join("\n")
        .replace("cargo build --release && F=$PWD/target/release/ferry", &format!("F={binary}"))
        .replace("EXAMPLES=$PWD/examples", &format!("EXAMPLES={}", examples.display()))
        .replace("/tmp/ferry-walk", &scratch.path().join("walk").display().to_string())
        .replace("http://127.0.0.1:8080", &server.address);
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(&root)
        .env("HOME", &home)
        // what `serve` listens on, as the admin CLI reads it for the links it signs
        .env("FERRY_LISTEN", &bound)
        .env_remove("FERRY_DATA_DIR")
        .env_remove("FERRY_PUBLIC_URL")
        .env_remove("FERRY_DATABASE_URL")
        .env_remove("FERRY_CONFIG");
    let (code, output) = run_bounded(bash, Duration::from_secs(300));
    assert_eq!(code, Some(0), "the walk-through stopped:\n{output}");
    assert!(!output.contains("Traceback"), "{output}");
    // a few answers the README shows, as they came
    for shown in [
        r#""error":"unauthorized","message":"a valid API token is required""#, // the /api/me meant to fail
        r#""deduplicated":true"#,                                              // the signed PUT sent twice
        r#""status":"finished""#,                                              // the session finished
        "upload-offset: 3000000",                                              // tus, all sent
        "ferry_uploads_total{",                                                // metrics
    ] {
        assert!(output.contains(shown), "the walk-through did not show {shown}:\n{output}");
    }
    // what the last blocks promise: the pull mirrored the push, and the backup restored
    assert_eq!(std::fs::read_dir(home.join("photos-mirror")).map(|d| d.count()).unwrap_or(0), 1, "{output}");
    assert!(output.contains("\"rows_without_blobs\":[]"), "{output}");
}
