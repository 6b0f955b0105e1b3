//! A few iterations of every benchmark measurement, so the benchmark keeps
//! working; no timing is asserted (speed goals live in BENCHMARKS.md).

#[test]
fn benchmark_smoke_run() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = tokio.block_on(https_step_tests::bench::run(
        https_step_tests::bench::Settings::QUICK,
    ))?;
    eprintln!("{report}");
    for line in [
        "latency ratio component/native",
        "per-core latency ratio component/native",
        "page faults per run",
        "experiment, instance reuse",
        "new connection per request",
        "component p50 breakdown",
        "throughput at",
        "instantiate p50",
        "runs in flight",
        "guest component",
        "peak guest memory",
        "one paginated step",
    ] {
        assert!(
            report.contains(line),
            "the report lacks {line:?}:\n{report}"
        );
    }
    Ok(())
}
