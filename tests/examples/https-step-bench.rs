//! `cargo run --release -p https-step-tests --example https-step-bench [-- --quick]`:
//! the component against native Rust on the same requests; see
//! `https_step_tests::bench` and BENCHMARKS.md.

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = if quick {
        https_step_tests::bench::Settings::QUICK
    } else {
        https_step_tests::bench::Settings::FULL
    };
    let tokio = if std::env::var_os("BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    if let Some(n) = std::env::args()
        .skip_while(|a| a != "--component-loop")
        .nth(1)
    {
        // For profiling: `perf record -g -- https-step-bench --component-loop 5000 [--wasm FILE]`.
        let wasm = match std::env::args().skip_while(|a| a != "--wasm").nth(1) {
            Some(path) => Some(std::fs::read(path)?),
            None => None,
        };
        return tokio.block_on(https_step_tests::bench::component_loop(n.parse()?, wasm));
    }
    print!(
        "{}",
        tokio.block_on(https_step_tests::bench::run(settings))?
    );
    Ok(())
}
