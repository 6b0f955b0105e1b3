//! `cargo run --release -p https-step-tests --example https-step-soak [-- RUNS TENANTS [CSV]]`
//! (default 10000 runs over 50 tenants); see `https_step_tests::soak`. With
//! `CSV`, the RSS after every batch is written there (`runs,rss_kib`).

use std::fmt::Write as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.first().map_or(Ok(10_000), |a| a.parse())?;
    let tenants = args.get(1).map_or(Ok(50), |a| a.parse())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = tokio.block_on(https_step_tests::soak::run(runs, tenants))?;
    print!("{}", report.summary);
    if let Some(path) = args.get(2) {
        let mut csv = String::from("runs,rss_kib\n");
        for (i, kib) in report.rss_kib.iter().enumerate() {
            let _ = writeln!(csv, "{},{kib}", ((i + 1) * report.batch).min(runs));
        }
        std::fs::write(path, csv)?;
    }
    Ok(())
}
