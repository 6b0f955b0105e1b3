#![no_main]
//! Fuzz target `signing`: see `https_step_fuzz_checks::signing`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::signing(data));
