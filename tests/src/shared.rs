//! Process-wide fixtures for the library-level integration tests — one tokio
//! runtime and one step runtime per test binary, since building a
//! `StepRuntime` (engine, pool, component) is the expensive part — and this
//! process's memory figures for the benchmark, soak and bound tests.

use https_step_host::StepRuntime;
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
