#![no_main]
//! Fuzz target `headers`: see `https_step_fuzz_checks::headers`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::headers(data));
