//! Resource bounds of a run, measured on this process: an endless response
//! body is cut at the cap without the host buffering it.

use https_step_host::loopback::{LoopbackServer, Reply};
use https_step_host::{StepRuntime, Tenant};
use std::sync::Arc;

/// Peak resident set size of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn endless_body_is_cut_at_the_cap_with_bounded_host_memory() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let runtime = StepRuntime::builder().build()?;
    tokio.block_on(async {
        let server = LoopbackServer::http(Arc::new(|_: &_| Reply::Endless { status: 200 })).await?;
        let tenant = Arc::new(Tenant::builder("t").allow(&server.origin())?.build()?);
        let cap: u64 = 8 * 1024 * 1024;
        let config = https_step_core::parse_step_config(&format!(
            r#"{{"url": "{}/stream", "max_response_bytes": {cap}, "timeout_ms": 30000}}"#,
            server.origin()
        ))
        .config;
        let before = peak_rss_kib();
        for _ in 0..3 {
            let result = runtime.run(&tenant, &config, "{}", Arc::new(|_: &str| {})).await?;
            let failure = result.expect_err("an endless body cannot succeed");
            assert_eq!(failure.error.kind(), "response-too-large", "{}", failure.error);
        }
        let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
        // The guest holds at most the cap (plus Vec growth) in its own linear
        // memory; the host must not buffer the stream on top of that.
        assert!(grown_mib < 96, "peak RSS grew by {grown_mib} MiB for an {} MiB cap", cap >> 20);
        eprintln!("peak RSS growth over 3 endless-body runs with an 8 MiB cap: {grown_mib} MiB");
        Ok(())
    })
}
