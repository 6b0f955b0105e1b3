//! Process-wide fixtures for the library-level integration tests — one tokio
//! runtime and one step runtime per test binary, since building a
//! `StepRuntime` (engine, pool, component) is the expensive part — and this
//! process's memory figures for the benchmark, soak and bound tests, and the
//! runner of the tools the tests provision.

use anyhow::{Context as _, bail};
use https_step_host::StepRuntime;
use std::process::Command;
use std::sync::OnceLock;

/// A multi-threaded tokio runtime shared by the tests of one binary.
pub fn tokio() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio"))
}

/// A step runtime with the embedded component and default settings.
pub fn step_runtime() -> &'static StepRuntime {
    static RT: OnceLock<StepRuntime> = OnceLock::new();
    RT.get_or_init(|| StepRuntime::builder().build().expect("runtime"))
}

/// A `kB` field of `/proc/self/status` (`VmRSS:` now, `VmHWM:` peak), in
/// KiB; 0 where it cannot be read.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets this process's peak RSS (`VmHWM:`) to its current RSS, so a later
/// reading is the peak of what ran in between (Linux `clear_refs`, value 5).
/// Returns false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `cmd` to its end (a tool the tests provision: pip, npm, jco, node);
/// its standard output, or an error with both of its outputs.
pub fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
