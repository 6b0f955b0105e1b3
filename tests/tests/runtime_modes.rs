//! The runtime's opt-in modes (README "Embedding the host library"):
//! per-core runtimes (each tenant's runs on one core's thread, called from
//! any runtime) and instance reuse (a tenant's next run in its last run's
//! instance), each giving the same results as the default mode.

use https_step_core::parse_step_config;
use https_step_host::{HostLimits, StepRuntime, Tenant};
use https_step_tests::loopback::{LoopbackServer, Reply};
use serde_json::json;
use std::sync::{Arc, Mutex};

fn step(origin: &str) -> https_step_core::StepConfig {
    let parsed = parse_step_config(&json!({"url": format!("{origin}/v1/items"), "method": "POST", "body": {"json": {"a": 1}}, "expected_status": [201]}).to_string());
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.config
}

/// Runs `config` for `tenant`; the status and the progress lines, each with
/// the name of the thread that reported it.
async fn run(
    runtime: &StepRuntime,
    tenant: &Arc<Tenant>,
    config: &https_step_core::StepConfig,
) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let progress = Arc::new(move |line: &str| {
        let thread = std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string();
        sink.lock().expect("lock").push((thread, line.to_string()));
    });
    let outcome = runtime
        .run(tenant, config, "{}", progress)
        .await?
        .map_err(|f| anyhow::anyhow!("{}", f.error))?;
    let lines = lines.lock().expect("lock").clone();
    Ok((outcome.response.map_or(0, |r| r.status), lines))
}

#[test]
fn per_core_runs_each_tenant_on_one_core_thread() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let runtime = StepRuntime::builder().per_core(2).build()?;
    tokio.block_on(async {
        let server =
            LoopbackServer::http(Arc::new(|_: &_| Reply::json(201, &json!({"id": 1})))).await?;
        let config = step(&server.origin());
        // Tenants are numbered as they are built, process-wide, and take
        // the cores in turn; eight of them span both cores even if the other
        // tests of this binary build theirs (three) in between.
        let tenants: Vec<Arc<Tenant>> = (0..8)
            .map(|i| {
                Ok(Arc::new(
                    Tenant::builder(format!("t{i}"))
                        .allow(&server.origin())?
                        .build()?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut cores_of = Vec::new();
        for tenant in &tenants {
            let mut threads = std::collections::BTreeSet::new();
            for _ in 0..2 {
                let (status, lines) = run(&runtime, tenant, &config).await?;
                assert_eq!(status, 201);
                threads.extend(lines.into_iter().map(|(thread, _)| thread));
            }
            assert_eq!(threads.len(), 1, "one tenant, one core: {threads:?}");
            let thread = threads.into_iter().next().unwrap_or_default();
            assert!(thread.starts_with("https-step-core-"), "{thread}");
            cores_of.push(thread);
        }
        cores_of.sort();
        cores_of.dedup();
        assert_eq!(cores_of.len(), 2, "eight tenants spread over both cores");
        assert_eq!(server.requests().len(), 16);
        assert_eq!(runtime.runs_in_flight(), 0);
        anyhow::Ok(())
    })
}

#[test]
fn a_reused_instance_serves_the_next_run_of_its_tenant_only_and_starts_afresh() -> anyhow::Result<()>
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtime = StepRuntime::builder().reuse_instances(1).build()?;
    tokio.block_on(async {
        let server =
            LoopbackServer::http(Arc::new(|_: &_| Reply::json(201, &json!({"id": 1})))).await?;
        let config = step(&server.origin());
        // One request per run: a kept instance's request budget is renewed.
        let limits = HostLimits {
            max_requests_per_run: 1,
            ..HostLimits::default()
        };
        let acme = Arc::new(
            Tenant::builder("acme")
                .allow(&server.origin())?
                .limits(limits.clone())
                .build()?,
        );
        let beta = Arc::new(
            Tenant::builder("beta")
                .allow(&server.origin())?
                .limits(limits)
                .build()?,
        );
        for n in 1..=3 {
            let (status, lines) = run(&runtime, &acme, &config).await?;
            assert_eq!(status, 201);
            // Each run's progress goes to its own callback.
            assert_eq!(
                lines
                    .iter()
                    .filter(|(_, l)| l.starts_with("attempt 1: 201"))
                    .count(),
                1,
                "run {n}: {lines:?}"
            );
        }
        assert_eq!(
            runtime.instantiations(),
            1,
            "one instance for a tenant's consecutive runs"
        );
        run(&runtime, &beta, &config).await?;
        assert_eq!(
            runtime.instantiations(),
            2,
            "another tenant never gets acme's instance"
        );
        assert_eq!(server.requests().len(), 4);
        anyhow::Ok(())
    })
}

#[test]
fn an_instance_that_trapped_is_never_kept() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtime = StepRuntime::builder()
        .reuse_instances(1)
        .component(https_step_tests::FAULT_WASM.to_vec())
        .build()?;
    tokio.block_on(async {
        let tenant = Arc::new(Tenant::builder("acme").build()?);
        let trap = parse_step_config(r#"{"url": "fault://trap"}"#).config;
        let calm = parse_step_config(r#"{"url": "fault://none"}"#).config;
        runtime
            .run(&tenant, &calm, "{}", Arc::new(|_: &str| {}))
            .await?
            .ok();
        runtime
            .run(&tenant, &calm, "{}", Arc::new(|_: &str| {}))
            .await?
            .ok();
        assert_eq!(runtime.instantiations(), 1, "kept after a run that ended");
        assert!(matches!(
            runtime
                .run(&tenant, &trap, "{}", Arc::new(|_: &str| {}))
                .await,
            Err(https_step_host::Error::GuestTrap { .. })
        ));
        runtime
            .run(&tenant, &calm, "{}", Arc::new(|_: &str| {}))
            .await?
            .ok();
        assert_eq!(
            runtime.instantiations(),
            2,
            "the trapped instance was dropped; the next run got a fresh one"
        );
        anyhow::Ok(())
    })
}
