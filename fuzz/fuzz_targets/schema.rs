#![no_main]
//! Fuzz target `schema`: see `https_step_fuzz_checks::schema`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::schema(data));
