//! The code's structure as issue 18 agreed it: top-level modules import each other without
//! a cycle, no source file grows past ~400 lines, an error code is written once (in
//! `domain::ErrorCode`), and library code returns typed errors, not `Result<_, String>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 420;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text before a file's unit tests (what the module itself imports and says).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&root().join("src")) {
        let from = top_module(&file);
        if from == "lib" || from == "main" {
            continue;
        }
        let code = code_of(&file);
        let mut named = BTreeSet::new();
        for piece in code.split("crate::").skip(1) {
            let module: String = piece.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            named.insert(module);
        }
        // `use crate::{a::X, b::Y}`
        for group in code.split("use crate::{").skip(1) {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                if let Some((module, _)) = item.trim().split_once("::") {
                    named.insert(module.trim().to_owned());
                }
            }
        }
        named.retain(|m| !m.is_empty() && *m != from);
        imports.entry(from).or_default().extend(named);
    }
    // depth-first search for a back edge
    fn visit(
        module: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            panic!("import cycle: {} -> {module}", path[at..].join(" -> "));
        }
        if done.contains(module) {
            return;
        }
        path.push(module.to_owned());
        for next in imports.get(module).into_iter().flatten() {
            visit(next, imports, path, done);
        }
        path.pop();
        done.insert(module.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        visit(module, &imports, &mut Vec::new(), &mut done);
    }
}

#[test]
fn no_source_file_grows_past_about_400_lines() {
    let mut long = Vec::new();
    for dir in ["src", "benches", "tests"] {
        for file in rust_files(&root().join(dir)) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by what they do: {long:?}");
}

#[test]
fn each_error_code_is_written_once() {
    let codes_file = root().join("src/domain/error_code.rs");
    let table = std::fs::read_to_string(&codes_file).unwrap();
    let codes: Vec<&str> = table
        .lines()
        .filter_map(|l| l.trim().split_once(" = \"").map(|(_, rest)| rest.split('"').next().unwrap()))
        .collect();
    assert!(codes.len() > 50, "the table was read: {codes:?}");
    for file in rust_files(&root().join("src")) {
        if file == codes_file || file.starts_with(root().join("src/cli")) {
            continue; // the admin CLI's codes are its own contract
        }
        let code = code_of(&file);
        // one-word codes (`conflict`, `gone`) are also plain words of messages
        for error in codes.iter().filter(|c| c.contains('_')) {
            let quoted = format!("\"{error}\"");
            // a JSON key of the same spelling (`"upload_disabled": true`, `answer["upload_disabled"]`)
            // is not a code
            let as_value = code
                .match_indices(&quoted)
                .any(|(at, _)| !code[at + quoted.len()..].starts_with(':') && !code[..at].ends_with('['));
            assert!(
                !as_value,
                "{} writes the error code {quoted}; name it ErrorCode::… instead",
                file.strip_prefix(root()).unwrap().display()
            );
        }
    }
}

#[test]
fn library_code_returns_typed_errors() {
    for file in rust_files(&root().join("src")) {
        let code = code_of(&file);
        for (n, line) in code.lines().enumerate() {
            let returns_string_error = line.contains("-> Result<") && line.trim_end().ends_with(", String> {");
            assert!(
                !returns_string_error,
                "{}:{}: return a typed error, not String: {line}",
                file.strip_prefix(root()).unwrap().display(),
                n + 1
            );
        }
    }
}

/// Every route is registered with `utoipa_axum::routes!`, which takes its path and methods
/// from the handler's description: a route added with axum's own `.route` would be served
/// without appearing in `/openapi.json` (the other half of the parity test in tests/api).
#[test]
fn every_route_is_registered_with_its_description() {
    let mut undescribed = Vec::new();
    for path in rust_files(&root().join("src/http")) {
        for (n, line) in code_of(&path).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default().replace("ApiRouter::new()", "");
            if [".route(", ".route_service(", ".nest_service(", "Router::new()"].iter().any(|c| code.contains(c)) {
                undescribed.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(undescribed.is_empty(), "routes registered without a description:\n{}", undescribed.join("\n"));
}
