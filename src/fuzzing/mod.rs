//! What Ferry promises about hostile input, as checks over one input each: `cargo fuzz` runs
//! them under libFuzzer (`fuzz/`), and the API suite replays every committed corpus file
//! through the same checks (`tests/api/fuzz_corpora.rs`). A check panics when a promise
//! breaks; refusing the input is always allowed, answering it wrongly or crashing is not.
//!
//! The parsers are checked directly; the upload forms and tus headers go through the real
//! router over an embedded catalog and local store ([`requests`]), where the promise is the
//! one every endpoint makes: a documented refusal in JSON, never a 5xx, no staging left.

mod parsers;
mod requests;
mod tools;

/// One fuzz target: its name (the file under `fuzz/fuzz_targets/` and the corpus folder
/// under `fuzz/corpus/`) and its check.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
}

/// Every target; the replay test fails when a folder under `fuzz/fuzz_targets/` is missing here.
pub const TARGETS: &[Target] = &[
    Target { name: "media_path", check: parsers::media_path },
    Target { name: "range_header", check: parsers::range_header },
    Target { name: "signed_url", check: parsers::signed_url },
    Target { name: "index_json", check: parsers::index_json },
    Target { name: "config_file", check: parsers::config_file },
    Target { name: "image_file", check: parsers::image_file },
    Target { name: "video_probe", check: parsers::video_probe },
    Target { name: "video_file", check: tools::video_file },
    Target { name: "session_form", check: requests::session_form },
    Target { name: "gallery_form", check: requests::gallery_form },
    Target { name: "tus_headers", check: requests::tus_headers },
];

/// Runs target `name` on `data` (what each `fuzz_target!` body calls).
pub fn check(name: &str, data: &[u8]) {
    let target = TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    (target.check)(data)
}

/// Stops the server the request targets started, removing its data directory (the replay
/// test calls it when done; a fuzzing process just exits).
pub fn shut_down() {
    requests::shut_down()
}
