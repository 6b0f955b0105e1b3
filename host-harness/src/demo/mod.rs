//! `https-step demo`: realistic steps against an embedded HTTPS echo server
//! on 127.0.0.1 (certificate generated at start), with a readable transcript
//! of what the server received and what the step returned.

mod server;

use crate::{StepRuntime, Tenant};
use https_step_core::parse_step_config_value;
use serde_json::{Value, json};
use server::{Answer, EchoServer, Received};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the demo's server does: create orders, list them, accept webhooks
/// (after one 503, to show a retry), 404 otherwise.
fn respond(request: &Received, webhooks_seen: &AtomicUsize) -> Answer {
    match (request.method.as_str(), request.path()) {
        ("POST", "/v1/webhooks") => match webhooks_seen.fetch_add(1, Ordering::SeqCst) {
            0 => (503, json!({"error": "warming_up"})),
            _ => (200, json!({"received": true})),
        },
        ("POST", "/v1/orders") => {
            let item: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            (
                201,
                json!({"id": "ord_1001", "status": "created", "order": item}),
            )
        }
        ("GET", "/v1/orders") => (
            200,
            json!({"orders": [{"id": "ord_1001", "status": "open"}], "query": request.query()}),
        ),
        _ => (404, json!({"error": "not_found", "path": request.path()})),
    }
}

struct DemoStep {
    title: &'static str,
    config: Value,
    /// Whether the outcome must be a continued error (else plain success).
    continues: bool,
}

fn steps(origin: &str) -> Vec<DemoStep> {
    vec![
        DemoStep {
            title: "Create an order (POST with a JSON body, expects 201)",
            config: json!({
                "url": format!("{origin}/v1/orders"),
                "method": "POST",
                "headers": [
                    {"key": "Authorization", "value": "Bearer demo-token-123"},
                    {"key": "X-Request-Source", "value": "workflow-demo"}
                ],
                "body": {"json": {"sku": "BOOK-42", "quantity": 2, "gift": true, "customer": {"name": "Ada Lovelace"}}},
                "expected_status": [201],
                "timeout_ms": 5000
            }),
            continues: false,
        },
        DemoStep {
            title: "List open orders (GET with query parameters)",
            config: json!({
                "url": format!("{origin}/v1/orders"),
                "method": "GET",
                "query": [
                    {"key": "status", "value": "open"},
                    {"key": "customer", "value": "Ada Lovelace & Co/Ltd"}
                ],
                "expected_status": ["2xx"]
            }),
            continues: false,
        },
        DemoStep {
            title: "Deliver a signed webhook (Persona signature, retried after a 503)",
            config: json!({
                "url": format!("{origin}/v1/webhooks"),
                "method": "POST",
                "body": {"json": {"event": "inquiry.approved", "inquiry_id": "inq_42"}},
                "signing": {"secret": "wbhsec_demo_secret", "scheme": "persona"},
                "retry": {"intervals_ms": [200, 400]}
            }),
            continues: false,
        },
        DemoStep {
            title: "Fetch a missing order (expects 200, continues on error)",
            config: json!({
                "url": format!("{origin}/v1/orders/ord_9999"),
                "method": "GET",
                "expected_status": [200],
                "continue_on_error": true
            }),
            continues: true,
        },
    ]
}

/// Header values never shown in the transcript.
fn shown(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("authorization") {
        "*** (redacted)".to_string()
    } else {
        value.to_string()
    }
}

/// Why the demo could not run at all.
pub(crate) enum Failure {
    /// The embedded server did not start.
    Server(std::io::Error),
    /// The host refused a run or its tenant.
    Host(crate::Error),
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        Failure::Host(e)
    }
}

/// Runs the demo, writing the transcript to `out`; whether every step did
/// what the demo expects.
pub(crate) async fn run(runtime: &StepRuntime, out: &mut dyn Write) -> Result<bool, Failure> {
    let io = Failure::Server;
    let webhooks_seen = AtomicUsize::new(0);
    let server = EchoServer::start(Arc::new(move |r: &Received| respond(r, &webhooks_seen)))
        .await
        .map_err(io)?;
    let origin = server.origin().to_string();
    let tenant = Arc::new(
        Tenant::builder("demo")
            .allow(&origin)?
            .ca_certs_pem(server.ca_pem().as_bytes())?
            .build()?,
    );
    let mut w = String::new();
    w.push_str(&format!(
        "https-step demo: component {} KB, HTTPS echo server at {origin} (self-signed certificate generated now)\n",
        https_step_guest_artifact::WASM.len() / 1024
    ));
    let mut all_as_expected = true;
    let steps = steps(&origin);
    let count = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        let parsed = parse_step_config_value(&step.config);
        let seen_before = server.received().len();
        let progress_lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = progress_lines.clone();
        let result = runtime
            .run(
                &tenant,
                &parsed.config,
                "{}",
                Arc::new(move |l: &str| {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(l.to_string())
                }),
            )
            .await?;
        w.push_str(&format!("\n── Step {}: {} ──\n", i + 1, step.title));
        for request in server.received().iter().skip(seen_before) {
            w.push_str(&format!(
                "→ the server received: {} {}\n",
                request.method, request.target
            ));
            for (name, value) in &request.headers {
                w.push_str(&format!("    {name}: {}\n", shown(name, value)));
            }
            if !request.body.is_empty() {
                w.push_str(&format!("    {}\n", String::from_utf8_lossy(&request.body)));
            }
        }
        let (response, attempts, verdict) = match &result {
            Ok(o) => (
                o.response.as_ref(),
                &o.attempts,
                match &o.continued_error {
                    None => "ok".to_string(),
                    Some(e) => format!("continued after error ({}): {e}", e.kind()),
                },
            ),
            Err(f) => (
                f.response.as_ref(),
                &f.attempts,
                format!("FAILED ({}): {}", f.error.kind(), f.error),
            ),
        };
        for a in attempts.iter().filter(|a| a.wait_ms.is_some()) {
            w.push_str(&format!(
                "  attempt {} got {}; waited {} ms ({}) before retrying\n",
                a.number,
                a.status
                    .map_or_else(|| "no response".to_string(), |s| s.to_string()),
                a.wait_ms.unwrap_or_default(),
                a.wait_reason.map_or("", |r| r.as_str())
            ));
        }
        if let Some(r) = response {
            let ms = attempts.last().map_or(0, |a| a.elapsed_ms);
            w.push_str(&format!(
                "← {} in {ms} ms (attempt {})\n    {}\n",
                r.status,
                attempts.len(),
                r.body
            ));
        }
        w.push_str(&format!("= outcome: {verdict}\n"));
        let as_expected = match &result {
            Ok(o) => o.continued_error.is_some() == step.continues,
            Err(_) => false,
        };
        all_as_expected &= as_expected;
    }
    w.push_str(&format!(
        "\n{} steps run, {} requests received by the server over {} connection(s).\n",
        count,
        server.received().len(),
        server.connections()
    ));
    if !all_as_expected {
        w.push_str("demo: a step did not behave as expected\n");
    }
    let _ = out.write_all(w.as_bytes());
    Ok(all_as_expected)
}
