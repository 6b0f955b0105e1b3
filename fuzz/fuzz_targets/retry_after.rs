#![no_main]
//! Fuzz target `retry_after`: see `https_step_fuzz_checks::retry_after`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::retry_after(data));
