//! The fuzzers' corpora replayed as an ordinary test (no instrumented build): every committed
//! input of every target, and every regression kept under `fuzz/regressions/<target>/`, goes
//! through the same check `cargo fuzz` runs (`ferry::fuzzing`). A failure names the file;
//! `cargo fuzz run TARGET FILE` reproduces it under the fuzzer.

use std::path::{Path, PathBuf};

use ferry::fuzzing::{TARGETS, check, shut_down};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a directory entry").path()).collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_is_a_check_and_has_a_corpus() {
    let mut built: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|file| file.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    built.sort();
    let mut checks: Vec<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    checks.sort();
    assert_eq!(built, checks, "fuzz/fuzz_targets/ and ferry::fuzzing::TARGETS name different targets");
    // each file runs its own check, and cargo fuzz knows it (it lists only `[[bin]]`s)
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &checks {
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(source.contains(&format!("check(\"{name}\", data)")), "fuzz_targets/{name}.rs runs another check");
        assert!(
            manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")),
            "no [[bin]] {name}"
        );
    }
    for target in TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(target.name));
        assert!(seeds.len() >= 3, "fuzz/corpus/{} has {} inputs", target.name, seeds.len());
    }
}

#[test]
fn every_committed_fuzz_input_keeps_its_promise() {
    // a thread per target (the request targets share one server and take turns on it)
    let outcomes: Vec<(usize, Vec<String>)> = std::thread::scope(|scope| {
        let replays: Vec<_> = TARGETS
            .iter()
            .map(|target| {
                scope.spawn(move || {
                    let folders =
                        [fuzz_dir().join("corpus").join(target.name), fuzz_dir().join("regressions").join(target.name)];
                    let files: Vec<PathBuf> = folders.iter().flat_map(|folder| inputs(folder)).collect();
                    let broken = files
                        .iter()
                        .filter(|file| {
                            let data = std::fs::read(file).expect("a corpus file");
                            std::panic::catch_unwind(|| check(target.name, &data)).is_err()
                        })
                        .map(|file| format!("{}: {}", target.name, file.display()))
                        .collect();
                    (files.len(), broken)
                })
            })
            .collect();
        replays.into_iter().map(|replay| replay.join().expect("a replay thread")).collect()
    });
    shut_down();
    let broken: Vec<&String> = outcomes.iter().flat_map(|(_, broken)| broken).collect();
    assert!(broken.is_empty(), "fuzz targets broke their promise on (cargo fuzz run TARGET FILE):\n{broken:#?}");
    let replayed: usize = outcomes.iter().map(|(count, _)| count).sum();
    assert!(replayed >= TARGETS.len() * 3, "only {replayed} inputs replayed");
}

/// The fuzzers build Ferry from `fuzz/Cargo.lock`: the crates both lock files name must be the
/// same versions, or the fuzzers test a parser (TOML, multipart, JPEG…) Ferry does not ship.
#[test]
fn the_fuzzers_build_ferry_with_its_own_dependency_versions() {
    let packages = |file: &Path| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(file).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let listed = table["package"].as_array().unwrap().iter();
        listed.map(|p| (p["name"].as_str().unwrap().to_owned(), p["version"].as_str().unwrap().to_owned())).collect()
    };
    let shipped = packages(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"));
    let fuzzed = packages(&fuzz_dir().join("Cargo.lock"));
    let drifted: Vec<_> = fuzzed
        .iter()
        .filter(|(name, version)| {
            let shipped_versions: Vec<_> = shipped.iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
            !shipped_versions.is_empty() && !shipped_versions.contains(&version)
        })
        .collect();
    assert!(
        drifted.is_empty(),
        "fuzz/Cargo.lock differs from Cargo.lock (cp Cargo.lock fuzz/ and rebuild): {drifted:?}"
    );
}
