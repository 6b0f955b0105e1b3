//! The conformance runner: each case file in `tests/cases/` gives a step
//! config, a scripted upstream server on 127.0.0.1 and expectations on both
//! the CLI's output and what the server received. Cases run through the real
//! CLI code path (`https_step_host::cli::execute`) in-process, sharing one
//! compiled component.
//!
//! # How to add a case
//! Write `tests/cases/<behaviour>.json` (format: [`Case`]); `$SERVER` in any
//! string of `step`, `context` or `args` becomes the server's origin. Run
//! `cargo test --release -p https-step-tests -- <behaviour>`.

use crate::loopback::{CertShape, LoopbackServer, Recorded, Reply, TestCert, Validity};
use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use https_step_host::StepRuntime;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A component implementing the step's world badly on purpose
/// (`tests/fault-guest`: an infinite loop, a memory bomb, a trap), built by
/// this crate's build script for the sandbox tests.
pub const FAULT_WASM: &[u8] = include_bytes!(env!("HTTPS_STEP_FAULT_WASM"));

pub mod bench;
pub mod loopback;
#[cfg(feature = "p3-experiment")]
pub mod p3_experiment;
pub mod python;
pub mod restate;
pub mod shared;
pub mod signature;
pub mod soak;

/// One conformance case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What behaviour the case pins down.
    pub description: String,
    /// `run` (default) or `validate` (then `--json` is passed).
    #[serde(default = "default_command")]
    pub command: String,
    /// The step config (`$SERVER` is substituted).
    pub step: Value,
    /// The workflow context, if any.
    #[serde(default)]
    pub context: Option<Value>,
    /// The upstream server.
    #[serde(default)]
    pub server: ServerSpec,
    /// Pass `--allow <server origin>` (default true).
    #[serde(default = "yes")]
    pub allow_server: bool,
    /// Pass `--ca-cert` for a TLS server (default true).
    #[serde(default = "yes")]
    pub trust_server: bool,
    /// Extra CLI arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// A tenant policy (TOML) passed with `--policy`; `$SERVER` and `$PORT`
    /// are substituted.
    #[serde(default)]
    pub policy: Option<String>,
    /// Expectations ([`Expect`]); `$SERVER` and `$PORT` are substituted.
    pub expect: Value,
}

fn default_command() -> String {
    "run".into()
}

fn yes() -> bool {
    true
}

/// The scripted server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Serve HTTPS with a self-signed certificate.
    #[serde(default)]
    pub tls: bool,
    /// Names in the certificate (default `127.0.0.1`, `localhost`).
    #[serde(default)]
    pub tls_names: Option<Vec<String>>,
    /// The certificate expired in 2020.
    #[serde(default)]
    pub tls_expired: bool,
    /// The certificate is valid only from 2090.
    #[serde(default)]
    pub tls_not_yet_valid: bool,
    /// `leaf` (default: self-signed, CA:FALSE), `self-signed-ca` (CA:TRUE, as
    /// `openssl req -x509` makes it) or `ca-issued-ca` (a CA:TRUE certificate
    /// issued by a root, which is the one trusted).
    #[serde(default)]
    pub tls_shape: Option<String>,
    /// Answer every ClientHello with this fatal TLS alert instead of a handshake.
    #[serde(default)]
    pub tls_alert: Option<u8>,
    /// Close every connection after the ClientHello (an aborted handshake).
    #[serde(default)]
    pub tls_abort: bool,
    /// Nothing listens: the port is bound, then closed (connection refused).
    #[serde(default)]
    pub refused: bool,
    /// Replies in order; the last one repeats. Default: one `200 {}`.
    #[serde(default)]
    pub replies: Vec<ReplySpec>,
}

/// One scripted reply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// Status (default 200).
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Headers as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Text body.
    #[serde(default)]
    pub body: Option<String>,
    /// JSON body (adds `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// Binary body, base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// A body of this many `x` bytes.
    #[serde(default)]
    pub body_repeat: Option<usize>,
    /// A body of this many nested JSON arrays (`[[[…]]]`).
    #[serde(default)]
    pub body_nested_arrays: Option<usize>,
    /// Wait before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Instead of a normal response: `hang`, `close`, `endless`, `trickle`
    /// (`body_repeat` bytes, one every `delay_ms`), `huge-headers`
    /// (`body_repeat` bytes of header lines), `raw` or `raw-reset` (send `raw`
    /// as is, then close with FIN or RST).
    #[serde(default)]
    pub behavior: Option<String>,
    /// Bytes for `raw` / `raw-reset`.
    #[serde(default)]
    pub raw: Option<String>,
}

fn ok_status() -> u16 {
    200
}

impl ReplySpec {
    fn to_reply(&self) -> Result<Reply> {
        Ok(match self.behavior.as_deref() {
            Some("hang") => Reply::Hang,
            Some("close") => Reply::Close,
            Some("endless") => Reply::Endless {
                status: self.status,
            },
            Some("trickle") => Reply::Trickle {
                status: self.status,
                total: self.body_repeat.unwrap_or(100),
                every_ms: self.delay_ms,
            },
            Some("huge-headers") => {
                let mut head = format!("HTTP/1.1 {} OK\r\n", self.status);
                let line = format!("x-filler: {}\r\n", "f".repeat(1000));
                while head.len() < self.body_repeat.unwrap_or(1 << 20) {
                    head.push_str(&line);
                }
                head.push_str("content-length: 0\r\n\r\n");
                Reply::Raw {
                    bytes: head.into_bytes(),
                    reset: false,
                }
            }
            Some(kind @ ("raw" | "raw-reset")) => Reply::Raw {
                bytes: self.raw.clone().unwrap_or_default().into_bytes(),
                reset: kind == "raw-reset",
            },
            Some(other) => bail!("unknown behavior {other:?}"),
            None => {
                let mut headers = self.headers.clone();
                let body = if let Some(json) = &self.json {
                    headers.push(("content-type".into(), "application/json".into()));
                    json.to_string().into_bytes()
                } else if let Some(b64) = &self.body_base64 {
                    base64::engine::general_purpose::STANDARD.decode(b64)?
                } else if let Some(n) = self.body_repeat {
                    vec![b'x'; n]
                } else if let Some(n) = self.body_nested_arrays {
                    format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()
                } else {
                    self.body.clone().unwrap_or_default().into_bytes()
                };
                Reply::Respond {
                    status: self.status,
                    headers,
                    body,
                    delay_ms: self.delay_ms,
                }
            }
        })
    }
}

/// Expectations. Absent fields are not checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// CLI exit code.
    pub exit: u8,
    /// `ok` of the output.
    #[serde(default)]
    pub ok: Option<bool>,
    /// `continued` of the output.
    #[serde(default)]
    pub continued: Option<bool>,
    /// `status` of the output (`null` allowed).
    #[serde(default)]
    pub status: Option<Value>,
    /// `error.kind`.
    #[serde(default)]
    pub error_kind: Option<String>,
    /// `error.code` (`auth` errors: the OAuth 2.0 error code; `null` = absent).
    #[serde(default)]
    pub error_code: Option<Value>,
    /// Substrings of `error.message`.
    #[serde(default)]
    pub error_message_contains: Vec<String>,
    /// Exactly these problems, in order (from `error.problems`, or the
    /// `validate --json` array).
    #[serde(default)]
    pub problems: Option<Vec<ProblemExpect>>,
    /// `json` of the output.
    #[serde(default)]
    pub json: Option<Value>,
    /// `body` of the output.
    #[serde(default)]
    pub body: Option<Value>,
    /// `body_base64` of the output.
    #[serde(default)]
    pub body_base64: Option<Value>,
    /// `content_type` of the output (`response_format` binary).
    #[serde(default)]
    pub content_type: Option<Value>,
    /// `body_sha256` of the output (`response_format` binary).
    #[serde(default)]
    pub body_sha256: Option<Value>,
    /// `outputs` of the output.
    #[serde(default)]
    pub outputs: Option<Value>,
    /// `pages` of the output (paginated steps; `null` = absent).
    #[serde(default)]
    pub pages: Option<Value>,
    /// `truncated` of the output.
    #[serde(default)]
    pub truncated: Option<Value>,
    /// `stopped` of the output.
    #[serde(default)]
    pub stopped: Option<Value>,
    /// `page` of each attempt, in order (`null` for none).
    #[serde(default)]
    pub attempt_pages: Option<Vec<Value>>,
    /// `poll` of each attempt, in order (`null` for none).
    #[serde(default)]
    pub attempt_polls: Option<Vec<Value>>,
    /// Subset of response headers (`name` lower-case → value).
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// Number of attempts in the output.
    #[serde(default)]
    pub attempts: Option<usize>,
    /// `wait_reason` of each attempt, in order (`null` for none).
    #[serde(default)]
    pub wait_reasons: Option<Vec<Value>>,
    /// Upper bound of the CLI's wall time.
    #[serde(default)]
    pub max_elapsed_ms: Option<u64>,
    /// Lower bound of the CLI's wall time.
    #[serde(default)]
    pub min_elapsed_ms: Option<u64>,
    /// Headers present with one identical value in every request.
    #[serde(default)]
    pub same_header_in_all_requests: Vec<String>,
    /// Headers whose value differs between consecutive requests.
    #[serde(default)]
    pub header_changes_between_requests: Vec<String>,
    /// Every request verifies under each of these signings, checked with the
    /// step's own verifier and with an independent HMAC implementation.
    #[serde(default)]
    pub every_request_signed: Vec<Value>,
    /// Exactly these requests reached the server, in order.
    #[serde(default)]
    pub requests: Option<Vec<RequestExpect>>,
    /// Connections the server accepted.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Substrings of stderr.
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    /// Strings that must appear in neither stdout nor stderr (secrets).
    #[serde(default)]
    pub never_printed: Vec<String>,
}

/// An expected problem.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemExpect {
    /// Exact field path.
    pub path: String,
    /// Substring of the message.
    #[serde(default)]
    pub contains: Option<String>,
}

/// An expected request as the server saw it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestExpect {
    /// Method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// Raw query string (`null` = none).
    #[serde(default)]
    pub query: Option<Value>,
    /// Header (lower-case name) → all its values, in order.
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Headers that must be absent.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// Exact body text.
    #[serde(default)]
    pub body: Option<String>,
    /// Body parsed as JSON.
    #[serde(default)]
    pub json: Option<Value>,
    /// Exact body bytes, base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// The body parsed as `multipart/form-data` by multer (with the boundary
    /// of the request's `Content-Type`): exactly these parts, in order.
    #[serde(default)]
    pub multipart: Option<Vec<PartExpect>>,
    /// The exact request head on the wire, as lines without CRLF (the
    /// request line first, then each header line in order); compared
    /// after the server's `$PORT` is substituted.
    #[serde(default)]
    pub head: Option<Vec<String>>,
}

/// An expected part of a multipart body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartExpect {
    /// Field name, as the parser reads it.
    pub name: String,
    /// File name (absent: no `filename`).
    #[serde(default)]
    pub filename: Option<String>,
    /// The part's Content-Type (absent: none).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Content as text.
    #[serde(default)]
    pub text: Option<String>,
    /// Content bytes, base64.
    #[serde(default)]
    pub base64: Option<String>,
}

/// A part as multer parsed it.
#[derive(Debug)]
pub struct ParsedPart {
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// Parses a recorded multipart body with multer: its parts, or why not.
async fn parse_multipart(request: &Recorded) -> Result<Vec<ParsedPart>, String> {
    let content_type = request
        .header_values("content-type")
        .first()
        .copied()
        .ok_or("no Content-Type")?;
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| format!("Content-Type {content_type:?}: {e}"))?;
    let mut parser = multer::Multipart::with_reader(&request.body[..], boundary);
    let mut parts = Vec::new();
    while let Some(field) = parser.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().map(str::to_string);
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(ToString::to_string);
        let bytes = field.bytes().await.map_err(|e| e.to_string())?.to_vec();
        parts.push(ParsedPart {
            name,
            filename,
            content_type,
            bytes,
        });
    }
    Ok(parts)
}

/// Reads a case file.
pub fn load(path: &Path) -> Result<Case> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every `*.json` under `dir`, sorted.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Replaces `$SERVER` (the origin) and `$PORT` in every string.
fn substitute(value: &Value, origin: &str) -> Value {
    match value {
        Value::String(s) => Value::String(substitute_str(s, origin)),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, origin)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, origin)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_str(s: &str, origin: &str) -> String {
    let port = origin.rsplit(':').next().unwrap_or_default();
    s.replace("$SERVER", origin).replace("$PORT", port)
}

/// A unique scratch directory for one case.
fn scratch(name: &str) -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "https-step-case-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What one run of the CLI produced.
pub struct CliRun {
    /// Exit code.
    pub exit: u8,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the CLI in-process with `args`.
pub async fn run_cli(runtime: &StepRuntime, args: &[String]) -> CliRun {
    let mut stdout = Vec::new();
    let stderr = Arc::new(Mutex::new(Vec::<u8>::new()));
    let started = Instant::now();
    let exit =
        https_step_host::cli::execute(args, Some(runtime), &mut stdout, stderr.clone()).await;
    let elapsed = started.elapsed();
    let stderr =
        String::from_utf8_lossy(&stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    CliRun {
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
        elapsed,
    }
}

/// Runs one case; the error lists every unmet expectation.
pub async fn run_case(runtime: &StepRuntime, name: &str, case: &Case) -> Result<()> {
    let replies: Vec<Reply> = case
        .server
        .replies
        .iter()
        .map(ReplySpec::to_reply)
        .collect::<Result<_>>()?;
    let served = Arc::new(AtomicUsize::new(0));
    // Reply headers may name the server ($SERVER, $PORT), known only once it runs.
    let address: Arc<std::sync::OnceLock<(String, u16)>> = Arc::default();
    let known = address.clone();
    let responder = Arc::new(move |_: &Recorded| {
        let i = served.fetch_add(1, Ordering::SeqCst);
        let reply = replies
            .get(i)
            .or(replies.last())
            .cloned()
            .unwrap_or_else(|| Reply::json(200, &serde_json::json!({})));
        match (reply, known.get()) {
            (
                Reply::Respond {
                    status,
                    headers,
                    body,
                    delay_ms,
                },
                Some((origin, port)),
            ) => Reply::Respond {
                status,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| {
                        (
                            n,
                            v.replace("$SERVER", origin)
                                .replace("$PORT", &port.to_string()),
                        )
                    })
                    .collect(),
                body,
                delay_ms,
            },
            (reply, _) => reply,
        }
    });
    let server = if case.server.tls_alert.is_some() || case.server.tls_abort {
        Some(LoopbackServer::tls_refusing(case.server.tls_alert).await?)
    } else if case.server.tls {
        let validity = match (case.server.tls_expired, case.server.tls_not_yet_valid) {
            (true, _) => Validity::Expired,
            (_, true) => Validity::NotYet,
            _ => Validity::Current,
        };
        let shape = match case.server.tls_shape.as_deref() {
            None | Some("leaf") => CertShape::Leaf,
            Some("self-signed-ca") => CertShape::SelfSignedCa,
            Some("ca-issued-ca") => CertShape::CaIssuedCa,
            Some(other) => bail!("unknown tls_shape {other:?}"),
        };
        let names = case
            .server
            .tls_names
            .clone()
            .unwrap_or_else(|| vec!["127.0.0.1".into(), "localhost".into()]);
        Some(
            LoopbackServer::https_cert(
                &TestCert {
                    names,
                    validity,
                    shape,
                },
                responder,
            )
            .await?,
        )
    } else if case.server.refused {
        None
    } else {
        Some(LoopbackServer::http(responder).await?)
    };
    let origin = match &server {
        Some(s) => s.origin(),
        None => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            drop(listener);
            format!("http://127.0.0.1:{port}")
        }
    };
    if let Some(s) = &server {
        let _ = address.set((origin.clone(), s.port()));
    }
    let dir = scratch(name)?;
    let step_path = dir.join("step.json");
    std::fs::write(
        &step_path,
        serde_json::to_vec_pretty(&substitute(&case.step, &origin))?,
    )?;
    let mut args = vec![case.command.clone(), step_path.display().to_string()];
    if case.command == "validate" {
        // Validation needs no server, and is given no policy.
        args.push("--json".into());
    } else {
        if case.allow_server {
            args.extend(["--allow".into(), origin.clone()]);
        }
        if let (Some(pem), true) = (
            server
                .as_ref()
                .and_then(|s| s.ca_pem())
                .filter(|p| !p.is_empty()),
            case.trust_server,
        ) {
            let ca = dir.join("ca.pem");
            std::fs::write(&ca, pem)?;
            args.extend(["--ca-cert".into(), ca.display().to_string()]);
        }
        if let Some(policy) = &case.policy {
            let path = dir.join("policy.toml");
            std::fs::write(&path, substitute_str(policy, &origin))?;
            args.extend(["--policy".into(), path.display().to_string()]);
        }
        if let Some(context) = &case.context {
            let path = dir.join("context.json");
            std::fs::write(&path, serde_json::to_vec(&substitute(context, &origin))?)?;
            args.extend(["--context".into(), path.display().to_string()]);
        }
    }
    args.extend(case.args.iter().map(|a| substitute_str(a, &origin)));

    let run = tokio::time::timeout(Duration::from_secs(60), run_cli(runtime, &args))
        .await
        .context("the CLI did not finish within 60 s")?;
    let _ = std::fs::remove_dir_all(&dir);
    let requests = server
        .as_ref()
        .map(LoopbackServer::requests)
        .unwrap_or_default();
    let connections = server.as_ref().map_or(0, LoopbackServer::connections);
    let expect: Expect =
        serde_json::from_value(substitute(&case.expect, &origin)).context("reading expect")?;
    let mut multiparts = Vec::new();
    for r in &requests {
        multiparts.push(parse_multipart(r).await);
    }
    let failures = check(&expect, &run, &requests, &multiparts, connections);
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(
            "{}\n  - {}\n--- args: {:?}\n--- stdout:\n{}\n--- stderr:\n{}\n--- server saw {} request(s) on {} connection(s): {:#?}",
            case.description,
            failures.join("\n  - "),
            args,
            run.stdout,
            run.stderr,
            requests.len(),
            connections,
            requests
        )
    }
}

fn check(
    e: &Expect,
    run: &CliRun,
    requests: &[Recorded],
    multiparts: &[Result<Vec<ParsedPart>, String>],
    connections: usize,
) -> Vec<String> {
    let mut f = Vec::new();
    if e.exit != run.exit {
        same(&mut f, "exit code", &e.exit.into(), &run.exit.into());
    }
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    let field = |name: &str| out.get(name).cloned().unwrap_or(Value::Null);
    if let Some(ok) = e.ok {
        same(&mut f, "ok", &ok.into(), &field("ok"));
    }
    if let Some(c) = e.continued {
        same(&mut f, "continued", &c.into(), &field("continued"));
    }
    for (name, want) in [
        ("status", &e.status),
        ("json", &e.json),
        ("body", &e.body),
        ("body_base64", &e.body_base64),
        ("content_type", &e.content_type),
        ("body_sha256", &e.body_sha256),
        ("outputs", &e.outputs),
        ("pages", &e.pages),
        ("truncated", &e.truncated),
        ("stopped", &e.stopped),
    ] {
        if let Some(want) = want {
            same(&mut f, name, want, &field(name));
        }
    }
    let error = field("error");
    if let Some(kind) = &e.error_kind {
        same(
            &mut f,
            "error.kind",
            &Value::from(kind.as_str()),
            &error["kind"],
        );
    }
    if let Some(code) = &e.error_code {
        same(&mut f, "error.code", code, &error["code"]);
    }
    for (key, want) in [
        ("wait_reason", &e.wait_reasons),
        ("page", &e.attempt_pages),
        ("poll", &e.attempt_polls),
    ] {
        if let Some(want) = want {
            let got: Vec<Value> = field("attempts")
                .as_array()
                .map(|a| a.iter().map(|a| a[key].clone()).collect())
                .unwrap_or_default();
            same(
                &mut f,
                &format!("attempts[].{key}"),
                &Value::from(want.clone()),
                &Value::from(got),
            );
        }
    }
    let message = error["message"].as_str().unwrap_or_default();
    for part in &e.error_message_contains {
        if !message.contains(part.as_str()) {
            f.push(format!(
                "error.message should contain {part:?}: {message:?}"
            ));
        }
    }
    if let Some(want) = &e.problems {
        let got = if out.is_array() {
            out.clone()
        } else {
            error["problems"].clone()
        };
        let got = got.as_array().cloned().unwrap_or_default();
        let paths: Vec<&str> = got
            .iter()
            .map(|p| p["path"].as_str().unwrap_or("?"))
            .collect();
        let want_paths: Vec<&str> = want.iter().map(|p| p.path.as_str()).collect();
        if paths != want_paths {
            f.push(format!(
                "problem paths: expected {want_paths:?}, got {paths:?}"
            ));
        }
        for (w, g) in want.iter().zip(&got) {
            if let Some(part) = &w.contains {
                let msg = g["message"].as_str().unwrap_or_default();
                if !msg.contains(part.as_str()) {
                    f.push(format!(
                        "problem {:?} should contain {part:?}: {msg:?}",
                        w.path
                    ));
                }
            }
        }
    }
    for (name, want) in &e.response_headers {
        let got = field("headers")
            .as_array()
            .and_then(|hs| {
                hs.iter()
                    .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                    .cloned()
            })
            .map(|h| h[1].clone())
            .unwrap_or(Value::Null);
        same(
            &mut f,
            &format!("response header {name}"),
            &Value::from(want.as_str()),
            &got,
        );
    }
    if let Some(n) = e.attempts {
        same(
            &mut f,
            "attempts",
            &n.into(),
            &field("attempts").as_array().map_or(0, Vec::len).into(),
        );
    }
    if let Some(max) = e.max_elapsed_ms
        && run.elapsed > Duration::from_millis(max)
    {
        f.push(format!("took {:?}, more than {max} ms", run.elapsed));
    }
    if let Some(min) = e.min_elapsed_ms
        && run.elapsed < Duration::from_millis(min)
    {
        f.push(format!("took {:?}, less than {min} ms", run.elapsed));
    }
    for name in &e.same_header_in_all_requests {
        let values: Vec<Vec<&str>> = requests.iter().map(|r| r.header_values(name)).collect();
        if values.first().is_none_or(|v| v.len() != 1) || values.iter().any(|v| v != &values[0]) {
            f.push(format!(
                "header {name} should be the same single value in every request: {values:?}"
            ));
        }
    }
    for name in &e.header_changes_between_requests {
        for pair in requests.windows(2) {
            if pair[0].header_values(name) == pair[1].header_values(name) {
                f.push(format!(
                    "header {name} should change between requests: {:?}",
                    pair[0].header_values(name)
                ));
            }
        }
    }
    for signing in &e.every_request_signed {
        for (i, r) in requests.iter().enumerate() {
            if let Err(why) = signature::verify_both(signing, r) {
                f.push(format!("request {i}: signature for {signing}: {why}"));
            }
        }
    }
    if let Some(n) = e.connections {
        same(&mut f, "server connections", &n.into(), &connections.into());
    }
    if let Some(want) = &e.requests {
        if want.len() != requests.len() {
            f.push(format!(
                "server requests: expected {}, got {}",
                want.len(),
                requests.len()
            ));
        }
        for (i, ((w, got), parts)) in want.iter().zip(requests).zip(multiparts).enumerate() {
            check_request(&mut f, i, w, got, parts);
        }
    }
    for part in &e.stderr_contains {
        if !run.stderr.contains(part.as_str()) {
            f.push(format!("stderr should contain {part:?}"));
        }
    }
    for secret in &e.never_printed {
        if run.stdout.contains(secret.as_str()) || run.stderr.contains(secret.as_str()) {
            f.push(format!("{secret:?} was printed"));
        }
    }
    f
}

fn same(f: &mut Vec<String>, what: &str, want: &Value, got: &Value) {
    if want != got {
        f.push(format!("{what}: expected {want}, got {got}"));
    }
}

fn check_request(
    f: &mut Vec<String>,
    i: usize,
    w: &RequestExpect,
    got: &Recorded,
    parts: &Result<Vec<ParsedPart>, String>,
) {
    let mut eq = |what: &str, want: Value, have: Value| {
        same(f, &format!("request {i} {what}"), &want, &have)
    };
    eq(
        "method",
        w.method.as_str().into(),
        got.method.as_str().into(),
    );
    eq("path", w.path.as_str().into(), got.path().into());
    if let Some(q) = &w.query {
        eq(
            "query",
            q.clone(),
            got.query().map_or(Value::Null, Value::from),
        );
    }
    for (name, values) in &w.headers {
        eq(
            &format!("header {name}"),
            values.clone().into(),
            got.header_values(name).into(),
        );
    }
    for name in &w.absent_headers {
        eq(
            &format!("header {name}"),
            Value::Array(vec![]),
            got.header_values(name).into(),
        );
    }
    if let Some(body) = &w.body {
        eq(
            "body",
            body.as_str().into(),
            String::from_utf8_lossy(&got.body).into_owned().into(),
        );
    }
    if let Some(json) = &w.json {
        let have = serde_json::from_slice::<Value>(&got.body).unwrap_or(Value::Null);
        eq("json body", json.clone(), have);
    }
    if let Some(lines) = &w.head {
        let mut want = lines.join("\r\n");
        want.push_str("\r\n\r\n");
        eq("head", want.into(), got.head.as_str().into());
    }
    if let Some(b64) = &w.body_base64 {
        let have = base64::engine::general_purpose::STANDARD.encode(&got.body);
        if &have != b64 {
            f.push(format!("request {i} body: expected {} bytes (base64 {b64:.60}…), got {} bytes (base64 {have:.60}…)", base64::engine::general_purpose::STANDARD.decode(b64).map_or(0, |b| b.len()), got.body.len()));
        }
    }
    if let Some(want) = &w.multipart {
        match parts {
            Err(why) => f.push(format!(
                "request {i}: the body is not multipart/form-data that multer reads: {why}"
            )),
            Ok(parts) => {
                if parts.len() != want.len() {
                    f.push(format!(
                        "request {i}: expected {} parts, multer read {}: {parts:?}",
                        want.len(),
                        parts.len()
                    ));
                }
                for (k, (w, p)) in want.iter().zip(parts).enumerate() {
                    let mut eq = |what: &str, want: Value, have: Value| {
                        same(f, &format!("request {i} part {k} {what}"), &want, &have)
                    };
                    eq("name", w.name.as_str().into(), p.name.clone().into());
                    eq(
                        "filename",
                        w.filename.clone().into(),
                        p.filename.clone().into(),
                    );
                    eq(
                        "content type",
                        w.content_type.clone().into(),
                        p.content_type.clone().into(),
                    );
                    if let Some(text) = &w.text {
                        eq(
                            "text",
                            text.as_str().into(),
                            String::from_utf8_lossy(&p.bytes).into_owned().into(),
                        );
                    }
                    if let Some(b64) = &w.base64 {
                        eq(
                            "bytes (base64)",
                            b64.as_str().into(),
                            base64::engine::general_purpose::STANDARD
                                .encode(&p.bytes)
                                .into(),
                        );
                    }
                }
            }
        }
    }
}
