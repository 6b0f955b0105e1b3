#![no_main]
//! Fuzz target `config`: see `https_step_fuzz_checks::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::config(data));
