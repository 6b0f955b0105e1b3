//! The `https-step` command line; see `https_step_host::cli`.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stderr = Arc::new(Mutex::new(std::io::stderr()));
    let code = runtime.block_on(https_step_host::cli::execute(
        &args,
        None,
        &mut std::io::stdout().lock(),
        stderr,
    ));
    Ok(ExitCode::from(code))
}
