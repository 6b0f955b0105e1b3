//! `cargo run --release -p https-step-tests --features p3-experiment --example https-step-p3 [-- N]`:
//! one request through wasi:http 0.2 against the same through 0.3; see
//! `https_step_tests::p3_experiment` and BENCHMARKS.md.

fn main() -> anyhow::Result<()> {
    let n = std::env::args().nth(1).map_or(Ok(2000), |n| n.parse())?;
    print!("{}", https_step_tests::p3_experiment::run(n)?);
    Ok(())
}
