//! Run slots shared fairly between the tenants of one runtime (README
//! "Tenant sandbox"): with the default share (half the slots), a tenant
//! whose 24 runs wait 12 s each on its upstream does not keep another
//! tenant's run from finishing in about its own request time; runs beyond a
//! share queue (within the runtime's `slot_wait`) instead of failing.

use https_step_host::{StepRuntime, Tenant, parse_step_config};
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::shared::tokio;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn a_noisy_tenant_does_not_hold_up_a_quiet_one() {
    tokio().block_on(async {
        let runtime = Arc::new(
            StepRuntime::builder()
                .max_concurrency(8)
                .slot_wait(Duration::from_secs(120))
                .build()
                .expect("runtime"),
        );
        let arrived = Arc::new(AtomicUsize::new(0));
        let count = arrived.clone();
        let slow = LoopbackServer::http(Arc::new(move |_: &Recorded| {
            count.fetch_add(1, Ordering::SeqCst);
            Reply::Respond {
                status: 200,
                headers: vec![],
                body: Vec::new(),
                delay_ms: 12_000,
            }
        }))
        .await
        .expect("server");
        let fast = LoopbackServer::http(Arc::new(|_: &Recorded| {
            Reply::json(200, &json!({"ok": true}))
        }))
        .await
        .expect("server");
        let tenant = |id: &str, server: &LoopbackServer| {
            Arc::new(
                Tenant::builder(id)
                    .allow(&server.origin())
                    .expect("allow")
                    .build()
                    .expect("tenant"),
            )
        };
        let (noisy, quiet) = (tenant("noisy", &slow), tenant("quiet", &fast));
        let step = |url: String| {
            let parsed = parse_step_config(&json!({"url": url, "timeout_ms": 60000}).to_string());
            assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
            Arc::new(parsed.config)
        };
        let slow_step = step(format!("{}/slow", slow.origin()));
        let noisy_runs: Vec<_> = (0..24)
            .map(|_| {
                let (runtime, noisy, slow_step) =
                    (runtime.clone(), noisy.clone(), slow_step.clone());
                tokio::spawn(async move {
                    runtime
                        .run(&noisy, &slow_step, "{}", Arc::new(|_: &str| {}))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            arrived.load(Ordering::SeqCst),
            4,
            "the noisy tenant runs its share, 4 of 8 slots"
        );
        assert_eq!(runtime.runs_in_flight(), 4);
        let started = Instant::now();
        let quiet_run = runtime
            .run(
                &quiet,
                &step(format!("{}/fast", fast.origin())),
                "{}",
                Arc::new(|_: &str| {}),
            )
            .await
            .expect("a slot at once")
            .expect("ok");
        let took = started.elapsed();
        assert_eq!(quiet_run.response.map(|r| r.status), Some(200));
        assert!(
            took < Duration::from_secs(2),
            "the quiet tenant's run took {took:?}"
        );
        // The noisy tenant's other runs wait in its queue; none failed.
        for run in &noisy_runs {
            assert!(!run.is_finished(), "a noisy run ended early");
        }
        for run in noisy_runs {
            run.abort();
        }
        println!(
            "quiet run beside 24 noisy runs on 8 slots: {} ms",
            took.as_millis()
        );
    });
}
