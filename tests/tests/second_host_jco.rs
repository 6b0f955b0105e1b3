//! The unchanged component on a second host: transpiled to JavaScript by
//! jco and run by Node with `@bytecodealliance/preview2-shim` (both pinned
//! in `tests/hosts/jco/package-lock.json`, installed with `npm ci` on first
//! use into a directory under `target/` and reused). The shim has no
//! `wasi:keyvalue`, so `tests/hosts/jco/keyvalue-*.js` provide an in-memory
//! one. Node blocks while the step runs, so the upstream — the scripted
//! loopback server — runs in this process, the step in a Node child process.
//!
//! Checked: a GET with query parameters, a signed POST retried 503 → 503 →
//! 201 under one idempotency key, a timeout, `validate` problems, a template
//! from the context; and that the component imports only standard WASI
//! interfaces (jco's own `wit` view of it). Known differences from the
//! harness (README "Second host"): no egress policy, no first-byte or
//! between-bytes timeouts (the guest's deadline still holds), a TLS failure
//! surfaces as another kind.

use anyhow::{Context as _, Result};
use https_step_tests::loopback::{LoopbackServer, Reply, in_order};
use https_step_tests::shared::{TempJson, command_output as run};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// This directory's sources.
fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts/jco")
}

/// The pinned packages (installed once per lock file) and the component
/// transpiled into them; the path of the generated `step.js`.
fn transpiled() -> Result<PathBuf> {
    // The tests of this binary run in parallel threads: one prepares.
    static STEP_JS: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut prepared = STEP_JS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = &*prepared {
        return Ok(path.clone());
    }
    let dir =
        https_step_tests::shared::npm_packages(&sources(), Path::new(env!("CARGO_TARGET_TMPDIR")))?;
    // The component of this build, transpiled afresh (a second or so).
    let wasm = dir.join("step.wasm");
    std::fs::write(&wasm, https_step_guest_artifact::WASM)?;
    for file in ["keyvalue-store.js", "keyvalue-atomics.js"] {
        std::fs::copy(sources().join(file), dir.join(file))?;
    }
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    run(Command::new(dir.join("node_modules/.bin/jco"))
        .args([
            "transpile",
            "step.wasm",
            "-o",
            "out",
            "--name",
            "step",
            "--quiet",
        ])
        .args([
            "--map",
            "wasi:keyvalue/store=../keyvalue-store.js",
            "--map",
            "wasi:keyvalue/atomics=../keyvalue-atomics.js",
        ])
        .current_dir(&dir))?;
    std::fs::write(out.join("package.json"), r#"{"type": "module"}"#)?;
    let step_js = out.join("step.js");
    *prepared = Some(step_js.clone());
    Ok(step_js)
}

/// Runs one request (`run.mjs`'s format) under Node; its output line.
fn node(request: Value) -> Result<Value> {
    let step_js = transpiled()?;
    let file = TempJson::new("https-step-jco", &request)?;
    let out = run(Command::new("node")
        .arg(sources().join("run.mjs"))
        .arg(&step_js)
        .arg(file.path()))?;
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("node printed {out:?}"))
}

/// A step config as jco's bindings spell it: camelCase fields, absent
/// options as null (undefined in JavaScript), variants as `{tag, val}`.
fn config(url: &str, method: &str) -> Value {
    json!({"url": url, "method": method, "headers": [], "query": [], "continueOnError": false, "outputs": []})
}

/// A scripted upstream on 127.0.0.1, run by this process's tokio runtime.
fn upstream(replies: Vec<Reply>) -> Result<LoopbackServer> {
    Ok(https_step_tests::shared::tokio().block_on(LoopbackServer::http(in_order(replies)))?)
}

#[test]
fn get_with_query_and_a_template_from_the_context() -> Result<()> {
    let server = upstream(vec![Reply::json(200, &json!({"id": "usr_7"}))])?;
    let mut step = config(
        &format!("{}/users/{{{{ user.id }}}}", server.origin()),
        "get",
    );
    step["query"] = json!([{"key": "fields", "value": "id name"}, {"key": "tag", "value": "a&b"}]);
    let out = node(
        json!({"command": "run", "config": step, "context": json!({"user": {"id": "7/x"}}).to_string()}),
    )?;
    assert_eq!(out["ok"], json!(true), "{out:#}");
    assert_eq!(out["outcome"]["response"]["status"], json!(200));
    assert_eq!(
        out["outcome"]["response"]["json"],
        json!(r#"{"id":"usr_7"}"#)
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/users/7%2Fx?fields=id%20name&tag=a%26b");
    Ok(())
}

#[test]
fn a_signed_post_is_retried_with_one_idempotency_key() -> Result<()> {
    let server = upstream(vec![
        Reply::json(503, &json!({})),
        Reply::json(503, &json!({})),
        Reply::json(201, &json!({"id": "ord_1"})),
    ])?;
    let mut step = config(&format!("{}/v1/orders", server.origin()), "post");
    step["body"] = json!({"tag": "json", "val": r#"{"sku":"BOOK-42"}"#});
    step["signing"] = json!({"secrets": ["jco_signing_secret"], "scheme": "persona"});
    step["retry"] = json!({"intervalsMs": [50, 50]});
    step["expectedStatus"] = json!([{"tag": "code", "val": 201}]);
    let out = node(json!({"command": "run", "config": step}))?;
    assert_eq!(
        (
            out["ok"].clone(),
            out["outcome"]["response"]["status"].clone()
        ),
        (json!(true), json!(201)),
        "{out:#}"
    );
    let waits: Vec<Value> = out["outcome"]["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .map(|a| a["waitReason"].clone())
        .collect();
    assert_eq!(waits, [json!("interval"), json!("interval"), Value::Null]);
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    let keys: Vec<Vec<&str>> = seen
        .iter()
        .map(|r| r.header_values("idempotency-key"))
        .collect();
    assert!(
        keys[0].len() == 1 && keys.iter().all(|k| k == &keys[0]),
        "{keys:?}"
    );
    let signing = json!({"secret": "jco_signing_secret", "scheme": "persona"});
    for r in &seen {
        https_step_tests::signature::verify_both(&signing, r).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

#[test]
fn the_guests_own_deadline_holds_without_the_shims_timeouts() -> Result<()> {
    let server = upstream(vec![Reply::Hang])?;
    let mut step = config(&format!("{}/slow", server.origin()), "get");
    step["timeoutMs"] = json!(400);
    let started = std::time::Instant::now();
    let out = node(json!({"command": "run", "config": step}))?;
    assert_eq!(out["ok"], json!(false), "{out:#}");
    assert_eq!(out["failure"]["error"]["tag"], json!("timeout"), "{out:#}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn validate_lists_every_problem() -> Result<()> {
    let mut step = config("htp://nope", "get");
    step["headers"] = json!([{"key": "X-Evil", "value": "a\r\nInjected: 1"}]);
    step["body"] = json!({"tag": "text", "val": {"text": "x"}});
    step["timeoutMs"] = json!(0);
    let out = node(json!({"command": "validate", "config": step}))?;
    let paths: Vec<&str> = out["problems"]
        .as_array()
        .context("problems")?
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        ["url", "headers[0].value", "body", "timeout_ms"],
        "{out:#}"
    );
    Ok(())
}

#[test]
fn the_component_imports_only_standard_wasi_interfaces() -> Result<()> {
    let step_js = transpiled()?;
    let dir = step_js.parent().and_then(Path::parent).context("dir")?;
    let wit = run(Command::new(dir.join("node_modules/.bin/jco"))
        .args(["wit", "step.wasm"])
        .current_dir(dir))?;
    let imports: Vec<&str> = wit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(imports.len() > 5, "{wit}");
    for import in imports {
        let standard = import.starts_with("wasi:")
            && (import.ends_with("@0.2.12")
                || import.starts_with("wasi:keyvalue/") && import.ends_with("@0.2.0-draft"));
        // The world's own `types` interface only carries type definitions.
        let own_types = import == "workflow:https-step/types@0.2.0";
        assert!(
            standard || own_types,
            "non-standard import {import:?} in\n{wit}"
        );
    }
    Ok(())
}
