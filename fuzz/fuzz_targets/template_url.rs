#![no_main]
//! Fuzz target `template_url`: see `https_step_fuzz_checks::template_url`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| https_step_fuzz_checks::template_url(data));
