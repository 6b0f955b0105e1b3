//! A real Restate for the durable tests: `restate-server` from the npm
//! package pinned in `tests/hosts/restate/package-lock.json` (installed on
//! first use under `target/npm/`), on 127.0.0.1 with free ports and a
//! temporary base directory; the step's service (`https-step serve-restate`)
//! as processes of the test binary itself, which plays the command line when
//! [`CLI_ROLE`] is set (an integration test cannot name another package's
//! binary); and the HTTP exchanges with the engine's ingress and admin API.
//! Every process is started here and stopped with its process group.

use crate::shared::{ChildProcess, free_port, npm_packages, tokio, wait_for};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Set in the environment of a test binary's child that plays the CLI.
pub const CLI_ROLE: &str = "HTTPS_STEP_TEST_CLI";

/// In a test binary's `main`, first: when this process was started as the
/// command line ([`start_service`]), runs it and exits.
pub fn serve_cli_if_asked() -> Result<()> {
    if std::env::var_os(CLI_ROLE).is_none() {
        return Ok(());
    }
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

/// The restate-server binary of the pinned npm package; `target_tmp` is the
/// test's `CARGO_TARGET_TMPDIR`.
pub fn restate_server(target_tmp: &Path) -> Result<PathBuf> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts/restate");
    let dir = npm_packages(&sources, target_tmp)?;
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

/// Where an engine listens; the same addresses after a restart.
#[derive(Debug, Clone, Copy)]
pub struct EngineAddrs {
    /// The ingress (invocations).
    pub ingress: SocketAddr,
    /// The admin API (deployments, SQL).
    pub admin: SocketAddr,
    /// The node's own port.
    pub fabric: SocketAddr,
}

impl EngineAddrs {
    /// Three free ports on 127.0.0.1.
    pub fn free() -> Result<EngineAddrs> {
        Ok(EngineAddrs {
            ingress: free_port()?,
            admin: free_port()?,
            fabric: free_port()?,
        })
    }
}

/// Starts the engine `bin` on `addrs` with its data in `work/engine`, and
/// waits until its admin API and ingress answer.
pub fn start_engine(bin: &Path, work: &Path, addrs: &EngineAddrs) -> Result<ChildProcess> {
    let engine = ChildProcess::start(
        Command::new(bin)
            .args([
                "--no-logo",
                "--node-name",
                "n1",
                "--listen-mode",
                "tcp",
                "--bind-address",
            ])
            .arg(addrs.fabric.to_string())
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

/// Starts the step's service (`https-step serve-restate --max-concurrency
/// SLOTS`) on `addr` with the policies of `work/policies` and its shared
/// limits in the engine whose ingress is `ingress`, logging to
/// `work/<log>`, and waits until it accepts connections.
pub fn start_service(
    work: &Path,
    addr: SocketAddr,
    ingress: SocketAddr,
    slots: usize,
    log: &str,
) -> Result<ChildProcess> {
    let service = ChildProcess::start(
        Command::new(std::env::current_exe()?)
            .env(CLI_ROLE, "1")
            .args(["serve-restate", "--listen", &addr.to_string()])
            .args(["--max-concurrency", &slots.to_string()])
            .args(["--ingress", &format!("http://{ingress}"), "--policies"])
            .arg(work.join("policies")),
        work.join(log),
    )?;
    service.wait_listening(addr, Duration::from_secs(60))?;
    Ok(service)
}

/// Registers the deployment at `uri` with the engine.
pub fn register(admin: SocketAddr, uri: &str) -> Result<()> {
    ok_json(request(
        "POST",
        admin,
        "/deployments",
        &[],
        Some(&json!({"uri": uri})),
    ))
    .with_context(|| format!("registering {uri}"))?;
    Ok(())
}

/// One HTTP/1.1 exchange with the engine: its status and body.
pub async fn exchange(
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
    let (status, _, text) = crate::shared::http(
        method,
        &format!("http://{addr}{path}"),
        &headers,
        body.map(|b| b.to_string().into_bytes()),
    )
    .await?;
    Ok((status, text))
}

/// [`exchange`], waited for.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, String)> {
    tokio().block_on(exchange(method, addr, path, headers, body))
}

/// A GET, waited for.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    request("GET", addr, path, &[], None)
}

/// A 2xx answer's JSON.
pub fn ok_json(answer: Result<(u16, String)>) -> Result<Value> {
    let (status, text) = answer?;
    ensure!((200..300).contains(&status), "status {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// Rows of a query of the engine's introspection tables (SQL).
pub fn sql(admin: SocketAddr, query: &str) -> Result<Vec<Value>> {
    let rows = ok_json(request(
        "POST",
        admin,
        "/query",
        &[("accept", "application/json")],
        Some(&json!({"query": query})),
    ))?;
    Ok(rows["rows"].as_array().cloned().unwrap_or_default())
}
