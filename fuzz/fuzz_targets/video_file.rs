#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::check("video_file", data));
