#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::check("config_file", data));
