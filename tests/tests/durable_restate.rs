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

use anyhow::{Context as _, Result, bail, ensure};
use https_step_tests::loopback::{LoopbackServer, Reply, in_order};
use https_step_tests::shared::{ChildProcess, free_port, npm_packages, tokio, wait_for};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the environment of this binary's child that plays the CLI.
const CLI_ROLE: &str = "HTTPS_STEP_DURABLE_TEST_CLI";
/// The Standard Webhooks secret of the signed step.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// Runs waiting at once in the third part.
const WAITING_RUNS: usize = 1000;

fn main() -> Result<()> {
    if std::env::var_os(CLI_ROLE).is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let stderr = Arc::new(std::sync::Mutex::new(std::io::stderr()));
        let code = runtime.block_on(https_step_host::cli::execute(
            &args,
            None,
            &mut std::io::stdout().lock(),
            stderr,
        ));
        std::process::exit(i32::from(code));
    }
    let args = Arguments::from_args();
    let trial = Trial::test(
        "durable_runs_survive_sigkill_deduplicate_and_wait_for_free",
        || durable_runs().map_err(|e| Failed::from(format!("{e:#}"))),
    );
    libtest_mimic::run(&args, vec![trial]).exit()
}

/// Where the engine listens; the same addresses after a restart.
struct EngineAddrs {
    ingress: SocketAddr,
    admin: SocketAddr,
    fabric: SocketAddr,
}

/// The restate-server binary of the pinned npm package.
fn restate_server() -> Result<PathBuf> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts/restate");
    let dir = npm_packages(&sources, Path::new(env!("CARGO_TARGET_TMPDIR")))?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => bail!("restate-server ships no binary for {other}"),
    };
    let bin = dir.join(format!(
        "node_modules/@restatedev/restate-server-{}-{arch}/bin/restate-server",
        std::env::consts::OS
    ));
    ensure!(bin.exists(), "{} is missing after npm ci", bin.display());
    Ok(bin)
}

/// Starts the engine on `addrs` with its data in `work/engine`, and waits
/// until its admin API and ingress answer.
fn start_engine(bin: &Path, work: &Path, addrs: &EngineAddrs) -> Result<ChildProcess> {
    let engine = ChildProcess::start(
        Command::new(bin)
            .args([
                "--no-logo",
                "--node-name",
                "n1",
                "--listen-mode",
                "tcp",
                "--bind-address",
                &addrs.fabric.to_string(),
            ])
            .arg("--base-dir")
            .arg(work.join("engine"))
            .env("RESTATE_ADMIN__BIND_ADDRESS", addrs.admin.to_string())
            .env("RESTATE_INGRESS__BIND_ADDRESS", addrs.ingress.to_string())
            .env("RESTATE_DISABLE_TELEMETRY", "true")
            .env("RESTATE_LOG_DISABLE_ANSI_CODES", "true"),
        work.join("engine.log"),
    )?;
    wait_for(Duration::from_secs(60), "restate-server to answer", || {
        Ok(
            get(addrs.admin, "/health")?.0 == 200
                && get(addrs.ingress, "/restate/health")?.0 == 200,
        )
    })
    .with_context(|| engine.log_tail(30))?;
    Ok(engine)
}

/// Starts the step's service (`https-step serve-restate`) on `addr` with the
/// policies of `work/policies`, and waits until it accepts connections.
fn start_service(work: &Path, addr: SocketAddr) -> Result<ChildProcess> {
    let service = ChildProcess::start(
        Command::new(std::env::current_exe()?)
            .env(CLI_ROLE, "1")
            .args(["serve-restate", "--listen", &addr.to_string(), "--policies"])
            .arg(work.join("policies")),
        work.join("service.log"),
    )?;
    service.wait_listening(addr, Duration::from_secs(60))?;
    Ok(service)
}

/// One HTTP/1.1 exchange with the engine: its status and body.
async fn exchange(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, String)> {
    let mut headers = headers.to_vec();
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let (status, _, text) = https_step_tests::shared::http(
        method,
        &format!("http://{addr}{path}"),
        &headers,
        body.map(|b| b.to_string().into_bytes()),
    )
    .await?;
    Ok((status, text))
}

/// [`exchange`], waited for.
fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, String)> {
    tokio().block_on(exchange(method, addr, path, headers, body))
}

fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    request("GET", addr, path, &[], None)
}

/// A 2xx answer's JSON.
fn ok_json(answer: (u16, String)) -> Result<Value> {
    ensure!(
        (200..300).contains(&answer.0),
        "status {}: {}",
        answer.0,
        answer.1
    );
    serde_json::from_str(&answer.1).with_context(|| format!("not JSON: {}", answer.1))
}

/// Rows of a query of the engine's introspection tables (SQL).
fn sql(admin: SocketAddr, query: &str) -> Result<Vec<Value>> {
    let rows = ok_json(request(
        "POST",
        admin,
        "/query",
        &[("accept", "application/json")],
        Some(&json!({"query": query})),
    )?)?;
    Ok(rows["rows"].as_array().cloned().unwrap_or_default())
}

/// A scripted upstream: `replies` in order, then the last one again.
fn upstream(replies: Vec<Reply>) -> Result<LoopbackServer> {
    Ok(tokio().block_on(LoopbackServer::http(in_order(replies)))?)
}

fn durable_runs() -> Result<()> {
    let bin = restate_server()?;
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
    let addrs = EngineAddrs {
        ingress: free_port()?,
        admin: free_port()?,
        fabric: free_port()?,
    };
    let service_addr = free_port()?;
    let mut engine = start_engine(bin, work, &addrs)?;
    let mut service = start_service(work, service_addr)?;
    let uri = format!("http://{service_addr}");
    ok_json(request(
        "POST",
        addrs.admin,
        "/deployments",
        &[],
        Some(&json!({"uri": uri})),
    )?)
    .context("registering the service")?;

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
    )?)?;
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
    service = start_service(work, service_addr)?;
    let output = ok_json(get(
        addrs.ingress,
        &format!("/restate/invocation/{id}/attach"),
    )?)
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
    )?)?;
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
                    .await?,
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
    )?)?;
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
