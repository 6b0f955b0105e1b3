#![no_main]
//! Fuzz target `query`: see `https_step_fuzz_checks::query`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::query(data));
