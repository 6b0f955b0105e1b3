//! Attempt-at-a-time execution through the host (README "Durable runs"):
//! `StepRuntime::run_attempt` against a loopback server answering 503, 503,
//! 201. Each call makes one attempt and returns the wait and the state;
//! between calls the runtime holds nothing (no slot, no instance), and the
//! server sees one idempotency key and one Standard Webhooks id throughout.

use https_step_core::{AttemptResult, parse_step_config};
use https_step_host::Tenant;
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn each_call_is_one_attempt_and_nothing_is_held_between_them() -> anyhow::Result<()> {
    let runtime = step_runtime();
    tokio().block_on(async {
        let served = AtomicUsize::new(0);
        let replies = [Reply::json(503, &json!({})), Reply::json(503, &json!({})), Reply::json(201, &json!({"id": "ord_1"}))];
        let server = LoopbackServer::http(Arc::new(move |_: &Recorded| replies[served.fetch_add(1, Ordering::SeqCst).min(2)].clone())).await?;
        let config = parse_step_config(&json!({
            "url": format!("{}/v1/orders", server.origin()),
            "method": "POST",
            "body": {"json": {"sku": "A-1"}},
            "signing": {"secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "scheme": "standard-webhooks"},
            "retry": {"intervals_ms": [30000, 60000]},
            "expected_status": [201]
        }).to_string())
        .config;
        let tenant = Arc::new(Tenant::builder("durable").allow(&server.origin())?.build()?);
        let mut state = None;
        let mut waits = Vec::new();
        let outcome = loop {
            let result = runtime.run_attempt(&tenant, &config, "{}", state.as_ref(), Arc::new(|_: &str| {})).await?;
            assert_eq!(runtime.runs_in_flight(), 0, "nothing is held between attempts");
            match result {
                AttemptResult::Wait(wait) => {
                    waits.push(wait.wait_ms);
                    state = Some(wait.state);
                }
                AttemptResult::Done(done) => break done,
            }
        };
        let outcome = outcome.map_err(|f| anyhow::anyhow!("{}", f.error))?;
        assert_eq!(waits, [30000, 60000], "the waits are the caller's, never slept here");
        assert_eq!((outcome.attempts.len(), outcome.response.map(|r| r.status)), (3, Some(201)));
        let seen = server.requests();
        assert_eq!(seen.len(), 3);
        for header in ["idempotency-key", "webhook-id"] {
            let values: Vec<Vec<&str>> = seen.iter().map(|r| r.header_values(header)).collect();
            assert!(values[0].len() == 1 && values.iter().all(|v| v == &values[0]), "{header}: {values:?}");
        }
        let signing = json!({"secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "scheme": "standard-webhooks"});
        for r in &seen {
            https_step_tests::signature::verify_both(&signing, r).map_err(anyhow::Error::msg)?;
        }
        anyhow::Ok(())
    })
}
