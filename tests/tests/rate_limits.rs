//! A tenant's limits per destination, in one process (README "Rate limits
//! and back-pressure"): an upstream's `429 Retry-After` holds back the
//! tenant's other requests to it — and no other tenant's —; a token bucket
//! keeps the upstream under `requests_per_second` and `burst`; a cap keeps at
//! most `max_in_flight` requests open. Held-back requests are answered by
//! the host's own `429`, which the step retries and names in `attempts`.

use https_step_host::{RateLimitEntry, Tenant, parse_step_config};
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tenant allowed to reach `server`, with `rules` (its share of the
/// default runtime's slots, 256, holds the 50 runs of a test at once).
fn tenant(id: &str, server: &LoopbackServer, rules: &[RateLimitEntry]) -> Arc<Tenant> {
    let mut b = Tenant::builder(id).allow(&server.origin()).expect("allow");
    for rule in rules {
        b = b.rate_limit(rule).expect("a valid rule");
    }
    Arc::new(b.build().expect("tenant"))
}

fn step(url: &str, extra: serde_json::Value) -> https_step_core::StepConfig {
    let mut config = json!({"url": url});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let parsed = parse_step_config(&config.to_string());
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.config
}

fn quiet() -> https_step_host::ProgressFn {
    Arc::new(|_: &str| {})
}

#[test]
fn a_429_with_retry_after_holds_back_the_tenant_and_only_it() {
    tokio().block_on(async {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let server = LoopbackServer::http(Arc::new(move |_: &Recorded| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Respond {
                    status: 429,
                    headers: vec![("retry-after".into(), "5".into())],
                    body: Vec::new(),
                    delay_ms: 0,
                }
            } else {
                Reply::json(200, &json!({"ok": true}))
            }
        }))
        .await
        .expect("server");
        let url = format!("{}/quota", server.origin());
        let t = tenant("t", &server, &[]);
        let first = step_runtime()
            .run(&t, &step(&url, json!({})), "{}", quiet())
            .await
            .expect("ran");
        assert_eq!(first.err().map(|f| f.attempts[0].status), Some(Some(429)));
        let started = Instant::now();
        // Ten more runs of the tenant inside the window: none reaches the upstream.
        for _ in 0..10 {
            let failure = step_runtime()
                .run(&t, &step(&url, json!({})), "{}", quiet())
                .await
                .expect("ran")
                .expect_err("held back");
            let attempt = &failure.attempts[0];
            assert_eq!(attempt.status, Some(429));
            let expected = format!("backoff {}", server.origin());
            assert_eq!(
                attempt.host_limit.as_deref(),
                Some(expected.as_str()),
                "{attempt:?}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the test ran inside the window"
        );
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "no request of the tenant reached the upstream"
        );
        // Another tenant is not held back.
        let u = tenant("u", &server, &[]);
        let other = step_runtime()
            .run(&u, &step(&url, json!({})), "{}", quiet())
            .await
            .expect("ran");
        assert!(other.is_ok(), "{other:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_token_bucket_keeps_the_upstream_under_its_rate() {
    tokio().block_on(async {
        let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let log = arrivals.clone();
        let server = LoopbackServer::http(Arc::new(move |_: &Recorded| {
            log.lock().expect("lock").push(Instant::now());
            Reply::json(200, &json!({"ok": true}))
        }))
        .await
        .expect("server");
        let rule = RateLimitEntry {
            origin: server.origin(),
            requests_per_second: Some(5.0),
            burst: Some(5),
            max_in_flight: None,
        };
        let t = tenant("rate", &server, &[rule]);
        let config = Arc::new(step(
            &format!("{}/items", server.origin()),
            json!({"timeout_ms": 1000, "retry": {"max_attempts": 20, "max_interval_ms": 2000}}),
        ));
        let runs: Vec<_> = (0..50)
            .map(|_| {
                let (t, config) = (t.clone(), config.clone());
                tokio::spawn(async move { step_runtime().run(&t, &config, "{}", quiet()).await })
            })
            .collect();
        let (mut local, mut sent) = (0, 0);
        for run in runs {
            let outcome = run
                .await
                .expect("join")
                .expect("ran")
                .expect("every run ends ok");
            let held = outcome
                .attempts
                .iter()
                .filter(|a| a.host_limit.is_some())
                .count();
            local += held;
            sent += outcome.attempts.len() - held;
        }
        assert!(
            local > 0,
            "some attempts were answered by the host's rate limit"
        );
        let arrivals = arrivals.lock().expect("lock").clone();
        // Every run reached the upstream; only an attempt the host let go
        // can have (one that timed out may have, and was retried).
        assert!(
            (50..=sent).contains(&arrivals.len()),
            "the upstream saw {} requests of 50 runs whose attempts sent {sent}",
            arrivals.len()
        );
        let first = arrivals[0];
        for (i, at) in arrivals.iter().enumerate() {
            let t = at.duration_since(first).as_secs_f64();
            // The (i+1)th request may come no earlier than the bucket allows,
            // with 50 ms for the timers' granularity.
            let allowed = 5.0 + 5.0 * (t + 0.05);
            assert!(
                (i + 1) as f64 <= allowed,
                "request {} at {t:.3} s: more than 5 + 5t",
                i + 1
            );
        }
    });
}

#[test]
fn at_most_max_in_flight_requests_are_open() {
    tokio().block_on(async {
        let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let log = arrivals.clone();
        // Each request is answered 300 ms after it arrives.
        let server = LoopbackServer::http(Arc::new(move |_: &Recorded| {
            log.lock().expect("lock").push(Instant::now());
            Reply::Respond {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{}".to_vec(),
                delay_ms: 300,
            }
        }))
        .await
        .expect("server");
        let rule = RateLimitEntry {
            origin: server.origin(),
            requests_per_second: None,
            burst: None,
            max_in_flight: Some(2),
        };
        let t = tenant("inflight", &server, &[rule]);
        let config = Arc::new(step(
            &format!("{}/slow", server.origin()),
            json!({"timeout_ms": 10000}),
        ));
        let runs: Vec<_> = (0..8)
            .map(|_| {
                let (t, config) = (t.clone(), config.clone());
                tokio::spawn(async move { step_runtime().run(&t, &config, "{}", quiet()).await })
            })
            .collect();
        for run in runs {
            run.await
                .expect("join")
                .expect("ran")
                .expect("held, then sent: ok");
        }
        let arrivals = arrivals.lock().expect("lock").clone();
        assert_eq!(arrivals.len(), 8);
        // A request is open from its arrival until its answer, 300 ms later.
        for at in &arrivals {
            let open = arrivals
                .iter()
                .filter(|other| {
                    **other <= *at && at.duration_since(**other) < Duration::from_millis(300)
                })
                .count();
            assert!(open <= 2, "{open} requests open at once");
        }
    });
}
