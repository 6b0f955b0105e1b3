//! A short soak (the full one is `https-step-soak`, figures in RELIABILITY.md):
//! every run accounted for, server requests = reported attempts, no slot leaked.

#[test]
fn soak_smoke_run() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = tokio.block_on(https_step_tests::soak::run(400, 10))?;
    eprintln!("{}", report.summary);
    Ok(())
}
