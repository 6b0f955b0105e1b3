//! Runs every case in `tests/cases/` as its own test (libtest-mimic), against
//! one compiled component shared by all cases.

use https_step_host::StepRuntime;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn main() -> anyhow::Result<()> {
    let args = Arguments::from_args();
    let tokio = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build()?);
    let runtime: Arc<OnceLock<StepRuntime>> = Arc::new(OnceLock::new());
    println!(
        "guest component (wasm32-wasip2, profile guest): {} bytes",
        https_step_guest_artifact::WASM.len()
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut trials = Vec::new();
    for path in https_step_tests::case_files(&dir)? {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (tokio, runtime) = (tokio.clone(), runtime.clone());
        trials.push(Trial::test(format!("case::{name}"), move || {
            let case = https_step_tests::load(&path).map_err(|e| Failed::from(format!("{e:#}")))?;
            let runtime = match runtime.get() {
                Some(r) => r,
                None => {
                    let built = StepRuntime::builder().build().map_err(|e| Failed::from(e.to_string()))?;
                    runtime.get_or_init(|| built)
                }
            };
            tokio
                .block_on(https_step_tests::run_case(runtime, &name, &case))
                .map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    libtest_mimic::run(&args, trials).exit()
}
