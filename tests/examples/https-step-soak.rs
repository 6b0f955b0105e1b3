//! `cargo run --release -p https-step-tests --example https-step-soak [-- RUNS TENANTS]`
//! (default 10000 runs over 50 tenants); see `https_step_tests::soak`.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.first().map_or(Ok(10_000), |a| a.parse())?;
    let tenants = args.get(1).map_or(Ok(50), |a| a.parse())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    print!(
        "{}",
        tokio.block_on(https_step_tests::soak::run(runs, tenants))?
    );
    Ok(())
}
