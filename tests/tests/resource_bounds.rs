//! Resource bounds of a run, measured on this process: an endless response
//! body is cut at the cap without the host buffering it.

use https_step_host::loopback::{LoopbackServer, Reply};
use https_step_host::{StepRuntime, Tenant};
use https_step_tests::shared::status_kib;
use std::sync::Arc;

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
        let before = status_kib("VmHWM:");
        for _ in 0..3 {
            let result = runtime.run(&tenant, &config, "{}", Arc::new(|_: &str| {})).await?;
            let failure = result.expect_err("an endless body cannot succeed");
            assert_eq!(failure.error.kind(), "response-too-large", "{}", failure.error);
        }
        let grown_mib = status_kib("VmHWM:").saturating_sub(before) / 1024;
        // The guest holds at most the cap (plus Vec growth) in its own linear
        // memory; the host must not buffer the stream on top of that.
        assert!(grown_mib < 96, "peak RSS grew by {grown_mib} MiB for an {} MiB cap", cap >> 20);
        eprintln!("peak RSS growth over 3 endless-body runs with an 8 MiB cap: {grown_mib} MiB");
        Ok(())
    })
}
