//! The step as an HTTP service (README "HTTP service"): the service
//! component (world `https-step-service`, exporting
//! `wasi:http/incoming-handler`) served by `wasmtime serve` — wasmtime-cli
//! 48.0.8, the newest 48.x CLI on crates.io (the harness runs wasmtime
//! 48.0.10 with the same 48.0.8 WASI crates), installed on first use with
//! `cargo install --locked --root` into `target/tools/` and reused — on a free
//! 127.0.0.1 port, started here and stopped with its process group.
//!
//! Checked: the component imports only what the `wasi:http/proxy` world
//! offers; a signed POST retried 503 → 201 returns, field by field, what
//! `https-step run` prints for the same step; `/validate` lists every
//! problem, as `https-step validate --json`; a malformed body, an oversized
//! one, an unknown path and a wrong method each get a JSON error; 200
//! concurrent `/run` requests all complete with their own results. Prints
//! the component's size and one request's latency against the CLI path's.

use anyhow::{Context as _, Result, bail, ensure};
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply, in_order};
use https_step_tests::shared::{
    ChildProcess, TempJson, command_output, free_port, http, step_runtime, tokio,
};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pinned engine: the newest wasmtime-cli of the harness's major
/// release (48.0.9 and later were published for the `wasmtime` crates only).
const WASMTIME_CLI: &str = "48.0.8";
/// The Standard Webhooks secret of the signed step.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn main() -> Result<()> {
    let args = Arguments::from_args();
    let serve = Arc::new(Serve::start()?);
    let service = |name: &str, check: fn(&Serve) -> Result<()>| {
        let serve = serve.clone();
        Trial::test(name, move || {
            check(&serve).map_err(|e| Failed::from(format!("{e:#}\n{}", serve.log_tail())))
        })
    };
    let trials = vec![
        Trial::test("imports_only_the_proxy_world", || {
            imports_only_the_proxy_world().map_err(|e| Failed::from(format!("{e:#}")))
        }),
        service(
            "a_signed_post_retried_503_then_201_matches_the_cli",
            a_signed_post_retried_503_then_201_matches_the_cli,
        ),
        service(
            "validate_lists_every_problem_as_the_cli_does",
            validate_lists_every_problem_as_the_cli_does,
        ),
        service(
            "unusable_requests_get_a_json_error",
            unusable_requests_get_a_json_error,
        ),
        service(
            "two_hundred_concurrent_runs_all_complete",
            two_hundred_concurrent_runs_all_complete,
        ),
        service("latency_against_the_cli_path", latency_against_the_cli_path),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(serve);
    conclusion.exit()
}

/// `wasmtime serve` with the service component (stopped when dropped), and
/// its working directory (removed then).
struct Serve {
    process: ChildProcess,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Serve {
    fn start() -> Result<Serve> {
        let wasmtime = wasmtime_cli()?;
        let dir = std::env::temp_dir().join(format!("https-step-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let component = dir.join("https-step-service.wasm");
        std::fs::write(&component, https_step_guest_artifact::SERVICE_WASM)?;
        let addr = free_port()?;
        let process = ChildProcess::start(
            Command::new(&wasmtime)
                .args(["serve", "--addr", &addr.to_string()])
                .arg(&component),
            dir.join("serve.log"),
        )?;
        process.wait_listening(addr, Duration::from_secs(60))?;
        Ok(Serve { process, addr, dir })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log_tail(&self) -> String {
        self.process.log_tail(20)
    }

    /// `POST path` with a JSON body: status and parsed answer.
    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let (status, _, text) = tokio().block_on(http(
            "POST",
            &self.url(path),
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        ))?;
        Ok((
            status,
            serde_json::from_str(&text).with_context(|| format!("not JSON ({status}): {text}"))?,
        ))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The features of the `wasmtime` built for the test: `serve` and what it
/// needs, not the CLI's twenty other defaults (6 minutes to build on two
/// cores instead of about 10).
const SERVE_FEATURES: &str =
    "serve,run,cranelift,pooling-allocator,parallel-compilation,component-model-async";

/// `wasmtime` of wasmtime-cli [`WASMTIME_CLI`], installed on first use into
/// `target/tools/`.
fn wasmtime_cli() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("../tools")
        .join(format!("wasmtime-cli-{WASMTIME_CLI}-serve"));
    let bin = root.join("bin/wasmtime");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        command_output(
            Command::new(cargo)
                .args([
                    "install",
                    "--locked",
                    "--quiet",
                    &format!("wasmtime-cli@{WASMTIME_CLI}"),
                    "--no-default-features",
                    "--features",
                    SERVE_FEATURES,
                    "--root",
                ])
                .arg(&root)
                // The outer build's settings are not the tool's.
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET"),
        )?;
    }
    let version = command_output(Command::new(&bin).arg("--version"))?;
    ensure!(
        version.contains(WASMTIME_CLI),
        "{} is {version}",
        bin.display()
    );
    Ok(bin)
}

/// An interface's name without its version: `wasi:http/types`.
fn unversioned(name: &str) -> &str {
    name.split('@').next().unwrap_or_default()
}

fn imports_only_the_proxy_world() -> Result<()> {
    // What the world in wit/ declares (it includes wasi:http/proxy).
    let mut wit = wit_parser::Resolve::default();
    let (package, _) = wit.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"))?;
    let world = wit.select_world(&[package], Some("https-step-service"))?;
    let may_import: Vec<String> = wit.worlds[world]
        .imports
        .keys()
        .map(|k| wit.name_world_key(k))
        .collect();
    let must_export: Vec<String> = wit.worlds[world]
        .exports
        .keys()
        .map(|k| wit.name_world_key(k))
        .collect();
    // What the built component does.
    let wit_component::DecodedWasm::Component(built, built_world) =
        wit_component::decode(https_step_guest_artifact::SERVICE_WASM)?
    else {
        bail!("the service is not a component");
    };
    let imports: Vec<String> = built.worlds[built_world]
        .imports
        .keys()
        .map(|k| built.name_world_key(k))
        .collect();
    let exports: Vec<String> = built.worlds[built_world]
        .exports
        .keys()
        .map(|k| built.name_world_key(k))
        .collect();
    ensure!(!imports.is_empty(), "no imports at all?");
    for import in &imports {
        ensure!(
            may_import
                .iter()
                .any(|i| unversioned(i) == unversioned(import)),
            "{import} is not in the world https-step-service ({may_import:?})"
        );
    }
    ensure!(
        exports
            .iter()
            .map(|e| unversioned(e))
            .eq(must_export.iter().map(|e| unversioned(e))),
        "exports {exports:?}, the world {must_export:?}"
    );
    println!(
        "service component: {} bytes; imports {imports:?}; exports {exports:?}",
        https_step_guest_artifact::SERVICE_WASM.len()
    );
    Ok(())
}

/// A scripted upstream: `replies` in order, then the last one again.
fn upstream(replies: Vec<Reply>) -> Result<LoopbackServer> {
    Ok(tokio().block_on(LoopbackServer::http(in_order(replies)))?)
}

/// The CLI with one shared runtime (the conformance suite's code path).
fn cli(args: &[String]) -> Result<(u8, Value)> {
    let run = tokio().block_on(https_step_tests::run_cli(step_runtime(), args));
    Ok((
        run.exit,
        serde_json::from_str(run.stdout.trim())
            .with_context(|| format!("CLI printed {}{}", run.stdout, run.stderr))?,
    ))
}

/// `value` in a file for the CLI, removed when dropped.
fn json_file(value: &Value) -> Result<TempJson> {
    TempJson::new("https-step-service", value)
}

/// A file's path as a CLI argument.
fn arg(file: &TempJson) -> String {
    file.path().display().to_string()
}

fn signed_step(origin: &str) -> Value {
    json!({
        "url": format!("{origin}/v1/orders/{{{{ order.id }}}}"),
        "method": "POST",
        "body": {"json": {"sku": "{{ order.sku }}", "qty": 2}},
        "signing": {"secret": SECRET, "scheme": "standard-webhooks"},
        "retry": {"intervals_ms": [100]},
        "expected_status": [201],
        "outputs": {"id": "/id"}
    })
}

fn a_signed_post_retried_503_then_201_matches_the_cli(serve: &Serve) -> Result<()> {
    let replies = || {
        vec![
            Reply::json(503, &json!({"busy": true})),
            Reply::json(201, &json!({"id": "ord_7", "sku": "A-1"})),
        ]
    };
    let (for_service, for_cli) = (upstream(replies())?, upstream(replies())?);
    let context = json!({"order": {"id": "7", "sku": "A-1"}});
    let (status, service) = serve.post(
        "/run",
        &json!({"step": signed_step(&for_service.origin()), "context": context}),
    )?;
    ensure!(status == 200, "{status}: {service:#}");
    let (context_file, step_file) = (
        json_file(&context)?,
        json_file(&signed_step(&for_cli.origin()))?,
    );
    let (exit, cli) = cli(&[
        "run".into(),
        arg(&step_file),
        "--context".into(),
        arg(&context_file),
        "--allow".into(),
        for_cli.origin(),
    ])?;
    ensure!(exit == 0, "{cli:#}");
    let fields: Vec<&str> = cli
        .as_object()
        .context("an object")?
        .keys()
        .map(String::as_str)
        .collect();
    ensure!(
        fields
            == service
                .as_object()
                .context("an object")?
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        "the same fields"
    );
    for field in fields {
        // Attempts differ only in how long they took.
        let without_times = |v: &Value| {
            let mut v = v.clone();
            if let Some(list) = v.as_array_mut() {
                list.iter_mut()
                    .for_each(|a| drop(a.as_object_mut().map(|a| a.remove("elapsed_ms"))));
            }
            v
        };
        ensure!(
            without_times(&service[field]) == without_times(&cli[field]),
            "{field}: service {} vs CLI {}",
            service[field],
            cli[field]
        );
    }
    ensure!(
        service["outputs"] == json!({"id": "ord_7"})
            && service["attempts"].as_array().map(Vec::len) == Some(2),
        "{service:#}"
    );
    let seen = for_service.requests();
    ensure!(
        seen.len() == 2 && seen.iter().all(|r| r.target == "/v1/orders/7"),
        "{:?}",
        seen.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
    let signing = json!({"secret": SECRET, "scheme": "standard-webhooks"});
    for r in &seen {
        https_step_tests::signature::verify_both(&signing, r).map_err(anyhow::Error::msg)?;
    }
    ensure!(
        seen[0].header_values("webhook-id") == seen[1].header_values("webhook-id"),
        "one webhook id for both attempts"
    );
    Ok(())
}

fn validate_lists_every_problem_as_the_cli_does(serve: &Serve) -> Result<()> {
    let step = json!({"url": "ftp://x/{{ unclosed", "method": "FROB", "timeout_ms": 0, "retry": {"multiplier": 0.5}, "headers": [{"key": "Bad Name", "value": "v"}]});
    let (status, service) = serve.post("/validate", &json!({"step": step}))?;
    ensure!(status == 200, "{status}: {service}");
    let step_file = json_file(&step)?;
    let (exit, cli) = cli(&["validate".into(), arg(&step_file), "--json".into()])?;
    ensure!(exit == 1, "invalid");
    ensure!(service == cli, "service {service:#}\nCLI {cli:#}");
    let paths: Vec<&str> = service
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    for path in [
        "url",
        "method",
        "timeout_ms",
        "retry.multiplier",
        "headers[0].key",
    ] {
        ensure!(
            paths.iter().any(|p| p.starts_with(path)),
            "{path} missing from {paths:?}"
        );
    }
    let (status, valid) = serve.post(
        "/validate",
        &json!({"step": {"url": "https://api.example.com/x"}}),
    )?;
    ensure!(status == 200 && valid == json!([]), "{status}: {valid}");
    Ok(())
}

fn unusable_requests_get_a_json_error(serve: &Serve) -> Result<()> {
    let call = |method: &str,
                path: &str,
                body: Option<Vec<u8>>|
     -> Result<(u16, http::HeaderMap, Value)> {
        let (status, headers, text) =
            tokio().block_on(http(method, &serve.url(path), &[], body))?;
        Ok((
            status,
            headers,
            serde_json::from_str(&text).with_context(|| format!("not JSON ({status}): {text}"))?,
        ))
    };
    let (status, _, malformed) = call("POST", "/run", Some(b"{\"step\": {\"url\": ".to_vec()))?;
    ensure!(
        status == 400 && malformed["error"]["kind"] == "bad-request",
        "{status}: {malformed}"
    );
    let (status, _, unknown_field) = call("POST", "/run", Some(br#"{"stp": {}}"#.to_vec()))?;
    ensure!(
        status == 400
            && unknown_field["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown field `stp`")),
        "{status}: {unknown_field}"
    );
    // The client writes its whole body before it reads: the service drains
    // it, so the 413 arrives instead of a broken pipe (each size a few times,
    // as the close raced the client's write before the drain).
    for size in [
        1024 * 1024 + 1,
        4 * 1024 * 1024,
        1024 * 1024 + 1,
        4 * 1024 * 1024,
    ] {
        let (status, _, oversized) = call("POST", "/run", Some(vec![b' '; size]))?;
        ensure!(
            status == 413 && oversized["error"]["kind"] == "request-too-large",
            "{size} bytes: {status}: {oversized}"
        );
    }
    let (status, _, unknown) = call("GET", "/nowhere", None)?;
    ensure!(
        status == 404 && unknown["error"]["kind"] == "not-found",
        "{status}: {unknown}"
    );
    let (status, headers, wrong) = call("GET", "/run", None)?;
    ensure!(
        status == 405
            && headers.get("allow").is_some_and(|v| v == "POST")
            && wrong["error"]["kind"] == "method-not-allowed",
        "{status}: {wrong}"
    );
    let (status, _, health) = call("GET", "/health", None)?;
    ensure!(
        status == 200 && health["ok"] == json!(true),
        "{status}: {health}"
    );
    // A step that fails is the step's own failure: 422 and the output JSON.
    let (status, failed) = serve.post("/run", &json!({"step": {"url": "ftp://x"}}))?;
    ensure!(
        status == 422 && failed["error"]["kind"] == "invalid-config",
        "{status}: {failed}"
    );
    Ok(())
}

fn two_hundred_concurrent_runs_all_complete(serve: &Serve) -> Result<()> {
    let echo = tokio().block_on(LoopbackServer::http(Arc::new(|r: &Recorded| {
        Reply::json(200, &json!({"path": r.target}))
    })))?;
    let url = serve.url("/run");
    let results = tokio().block_on(async {
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..200 {
            let body = json!({"step": {"url": format!("{}/items/{{{{ n }}}}", echo.origin()), "outputs": {"path": "/path"}}, "context": {"n": i}});
            let url = url.clone();
            runs.spawn(async move { (i, http("POST", &url, &[], Some(body.to_string().into_bytes())).await) });
        }
        let mut results = Vec::new();
        while let Some(done) = runs.join_next().await {
            results.push(done?);
        }
        anyhow::Ok(results)
    })?;
    ensure!(results.len() == 200);
    for (i, result) in results {
        let (status, _, text) = result?;
        let out: Value = serde_json::from_str(&text)?;
        ensure!(
            status == 200 && out["outputs"]["path"] == json!(format!("/items/{i}")),
            "run {i}: {status} {out}"
        );
    }
    ensure!(echo.requests().len() == 200);
    Ok(())
}

fn latency_against_the_cli_path(serve: &Serve) -> Result<()> {
    let server = tokio().block_on(LoopbackServer::http_unrecorded(Arc::new(|_: &Recorded| {
        Reply::json(201, &json!({"id": "ord_1"}))
    })))?;
    let step = json!({"url": format!("{}/v1/orders", server.origin()), "method": "POST", "body": {"json": {"sku": "A-1"}}, "signing": {"secret": SECRET, "scheme": "standard-webhooks"}, "expected_status": [201]});
    let step_file = json_file(&step)?;
    let args = [
        "run".to_string(),
        arg(&step_file),
        "--allow".into(),
        server.origin(),
    ];
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut via_cli, mut via_service) = (Vec::new(), Vec::new());
    for round in 0..6 {
        for _ in 0..20 {
            let t = Instant::now();
            cli(&args)?;
            let cli_time = t.elapsed();
            let t = Instant::now();
            serve.post("/run", &json!({"step": step}))?;
            if round > 0 {
                via_cli.push(cli_time);
                via_service.push(t.elapsed());
            }
        }
    }
    let (c, s) = (p50(via_cli), p50(via_service));
    println!(
        "one signed POST: CLI path (in-process, shared runtime) p50 {:.0} us; wasmtime serve /run over loopback HTTP p50 {:.0} us (+{:.0} us)",
        c.as_secs_f64() * 1e6,
        s.as_secs_f64() * 1e6,
        (s.as_secs_f64() - c.as_secs_f64()) * 1e6
    );
    Ok(())
}
