//! Durable runs on an existing engine (README "Durable runs"): the step's
//! Restate service (`https-step serve-restate`) registered with a real
//! `restate-server` (npm `@restatedev/restate-server`, pinned in
//! `tests/hosts/restate/package-lock.json`, installed on first use under
//! `target/npm/`), both on 127.0.0.1 with free ports and a temporary base
//! directory, both started here and stopped by their process ids.
//!
//! 1. A signed POST whose upstream answers 503, 503, 201 with 3 s waits:
//!    during the first wait the engine and the service are killed (SIGKILL),
//!    stay down past the wait, and are started again; the run continues from
//!    the journal: the upstream sees exactly 3 requests, one idempotency key
//!    and one webhook id, and the result is the 201.
//! 2. The same invocation sent again with the platform's idempotency key
//!    returns the same result without a new upstream request.
//! 3. 1,000 runs waiting in a durable sleep: the service holds no runtime
//!    slot (its `stats` handler), every run is suspended in the engine; the
//!    service's RSS is printed.
//!
//! The service process is this test binary run again as the `https-step`
//! command line (`https_step_host::cli::execute`, what the binary's `main`
//! calls), since an integration test cannot name another package's binary.

use anyhow::{Context as _, Result, ensure};
use https_step_tests::loopback::{LoopbackServer, Reply, in_order};
use https_step_tests::restate::{
    EngineAddrs, exchange, get, ok_json, register, request, restate_server, serve_cli_if_asked,
    sql, start_engine, start_service,
};
use https_step_tests::shared::{free_port, tokio, wait_for};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Standard Webhooks secret of the signed step.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// Runs waiting at once in the third part.
const WAITING_RUNS: usize = 1000;
/// The service's run slots.
const SLOTS: usize = 64;

fn main() -> Result<()> {
    serve_cli_if_asked()?;
    let args = Arguments::from_args();
    let trial = Trial::test(
        "durable_runs_survive_sigkill_deduplicate_and_wait_for_free",
        || durable_runs().map_err(|e| Failed::from(format!("{e:#}"))),
    );
    libtest_mimic::run(&args, vec![trial]).exit()
}

/// A scripted upstream: `replies` in order, then the last one again.
fn upstream(replies: Vec<Reply>) -> Result<LoopbackServer> {
    Ok(tokio().block_on(LoopbackServer::http(in_order(replies)))?)
}

fn durable_runs() -> Result<()> {
    let bin = restate_server(Path::new(env!("CARGO_TARGET_TMPDIR")))?;
    let work = std::env::temp_dir().join(format!("https-step-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("policies"))?;
    std::fs::write(
        work.join("policies/acme.toml"),
        "tenant = \"acme\"\nallowed_hosts = [\"http://127.0.0.1:*\"]\n",
    )?;
    let result = scenario(&bin, &work);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn scenario(bin: &Path, work: &Path) -> Result<()> {
    let addrs = EngineAddrs::free()?;
    let service_addr = free_port()?;
    let mut engine = start_engine(bin, work, &addrs)?;
    let mut service = start_service(work, service_addr, addrs.ingress, SLOTS, "service.log")?;
    register(addrs.admin, &format!("http://{service_addr}"))?;

    // 1. Killed during the first wait, continued after a restart.
    let orders = upstream(vec![
        Reply::json(503, &json!({})),
        Reply::json(503, &json!({})),
        Reply::json(201, &json!({"id": "ord_1"})),
    ])?;
    let signing = json!({"secret": SECRET, "scheme": "standard-webhooks"});
    let run = json!({
        "tenant": "acme",
        "step": {"url": format!("{}/v1/orders", orders.origin()), "method": "POST", "body": {"json": {"sku": "A-1"}},
                 "signing": signing, "retry": {"intervals_ms": [3000, 3000]}, "expected_status": [201]},
        "context": {}
    });
    let key = [("idempotency-key", "run-1/step-1")];
    let sent = ok_json(request(
        "POST",
        addrs.ingress,
        "/HttpsStep/run/send",
        &key,
        Some(&run),
    ))?;
    let id = sent["invocationId"]
        .as_str()
        .context("an invocation id")?
        .to_string();
    // The first attempt's result is in the journal once the wait after it is.
    wait_for(
        Duration::from_secs(60),
        "the first attempt and its wait in the journal",
        || {
            let rows = sql(
                addrs.admin,
                &format!("SELECT entry_type FROM sys_journal WHERE id = '{id}'"),
            )?;
            Ok(rows.iter().any(|r| r["entry_type"] == "Command: Sleep"))
        },
    )?;
    let first = orders.requests();
    ensure!(
        first.len() == 1,
        "one attempt before the crash, the upstream saw {}",
        first.len()
    );
    let killed = Instant::now();
    engine.kill()?;
    service.kill()?;
    std::thread::sleep(Duration::from_millis(4500));
    ensure!(
        orders.requests().len() == 1,
        "nothing ran while the engine and the service were down"
    );
    println!(
        "engine and service killed (SIGKILL) during the 3 s wait, down for {:?}",
        killed.elapsed()
    );
    engine = start_engine(bin, work, &addrs)?;
    service = start_service(work, service_addr, addrs.ingress, SLOTS, "service.log")?;
    let output = ok_json(get(
        addrs.ingress,
        &format!("/restate/invocation/{id}/attach"),
    ))
    .context("attaching to the run")?;
    ensure!(
        output["ok"] == json!(true) && output["status"] == json!(201),
        "{output:#}"
    );
    let statuses: Vec<&Value> = output["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .map(|a| &a["status"])
        .collect();
    ensure!(
        statuses == [&json!(503), &json!(503), &json!(201)],
        "{output:#}"
    );
    let seen = orders.requests();
    ensure!(
        seen.len() == 3,
        "exactly 3 requests upstream, saw {}",
        seen.len()
    );
    for header in ["idempotency-key", "webhook-id"] {
        let values: Vec<Vec<&str>> = seen.iter().map(|r| r.header_values(header)).collect();
        ensure!(
            values[0].len() == 1 && values.iter().all(|v| v == &values[0]),
            "one {header} for every attempt: {values:?}"
        );
    }
    for r in &seen {
        https_step_tests::signature::verify_both(&signing, r).map_err(anyhow::Error::msg)?;
    }

    // 2. The same invocation again: the same result, nothing sent.
    let again = ok_json(request(
        "POST",
        addrs.ingress,
        "/HttpsStep/run",
        &key,
        Some(&run),
    ))?;
    ensure!(again == output, "the same result:\n{again:#}\n{output:#}");
    ensure!(orders.requests().len() == 3, "no new upstream request");

    // 3. 1,000 runs waiting in a durable sleep hold nothing in the service.
    let down = upstream(vec![Reply::json(503, &json!({}))])?;
    let waiting = json!({
        "tenant": "acme",
        "step": {"url": format!("{}/v1/slow", down.origin()), "method": "POST", "body": {"json": {}},
                 "retry": {"intervals_ms": [600_000]}, "expected_status": [201]}
    });
    let started = Instant::now();
    tokio().block_on(async {
        let waiting = Arc::new(waiting);
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..WAITING_RUNS {
            let (waiting, ingress) = (waiting.clone(), addrs.ingress);
            sends.spawn(async move {
                let key = format!("sleep-{i}");
                ok_json(
                    exchange(
                        "POST",
                        ingress,
                        "/HttpsStep/run/send",
                        &[("idempotency-key", &key)],
                        Some(&waiting),
                    )
                    .await,
                )
            });
            if sends.len() >= 32 {
                sends.join_next().await.context("a send")???;
            }
        }
        while let Some(sent) = sends.join_next().await {
            sent??;
        }
        anyhow::Ok(())
    })?;
    let suspended = || -> Result<u64> {
        let rows = sql(
            addrs.admin,
            "SELECT count(*) AS n FROM sys_invocation WHERE idempotency_key LIKE 'sleep-%' AND status = 'suspended'",
        )?;
        Ok(rows.first().and_then(|r| r["n"].as_u64()).unwrap_or(0))
    };
    wait_for(
        Duration::from_secs(300),
        "1,000 first attempts and their suspended waits",
        || Ok(down.requests().len() >= WAITING_RUNS && suspended()? == WAITING_RUNS as u64),
    )
    .with_context(|| {
        format!(
            "upstream saw {}, suspended: {:?}",
            down.requests().len(),
            suspended().ok()
        )
    })?;
    let sleeping = sql(
        addrs.admin,
        "SELECT count(*) AS n FROM sys_invocation i JOIN sys_journal j ON i.id = j.id WHERE i.idempotency_key LIKE 'sleep-%' AND j.entry_type = 'Command: Sleep'",
    )?;
    ensure!(
        sleeping.first().and_then(|r| r["n"].as_u64()) == Some(WAITING_RUNS as u64),
        "every run is in a durable sleep: {sleeping:?}"
    );
    let stats = ok_json(request(
        "POST",
        addrs.ingress,
        "/HttpsStep/stats",
        &[],
        None,
    ))?;
    ensure!(
        stats["runs_in_flight"] == json!(0),
        "no runtime slot held while {WAITING_RUNS} runs wait: {stats}"
    );
    ensure!(
        down.requests().len() == WAITING_RUNS,
        "one attempt each so far"
    );
    println!(
        "{WAITING_RUNS} runs waiting in a durable sleep after {:.1} s: runs_in_flight 0, {} instantiations; service RSS {:.1} MiB, restate-server RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        stats["instantiations"],
        service.rss_mib(),
        engine.rss_mib()
    );
    service.kill()?;
    engine.kill()?;
    Ok(())
}
