#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::check("signed_url", data));
