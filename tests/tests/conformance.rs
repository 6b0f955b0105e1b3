//! Runs every case in `tests/cases/` as its own test (libtest-mimic), against
//! one compiled component shared by all cases (the suite's shared fixtures).

use https_step_tests::shared::{step_runtime, tokio};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args = Arguments::from_args();
    println!(
        "guest component (wasm32-wasip2, profile guest): {} bytes",
        https_step_guest_artifact::WASM.len()
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut trials = Vec::new();
    for path in https_step_tests::case_files(&dir)? {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        trials.push(Trial::test(format!("case::{name}"), move || {
            let case = https_step_tests::load(&path).map_err(|e| Failed::from(format!("{e:#}")))?;
            tokio()
                .block_on(https_step_tests::run_case(step_runtime(), &name, &case))
                .map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    libtest_mimic::run(&args, trials).exit()
}
