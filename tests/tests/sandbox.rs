//! The host's sandbox through the library API: every blocked address class is
//! refused before a connection is made (a static resolver stands in for DNS),
//! and runaway guests — infinite loop, memory bomb, trap — end their own run
//! while other tenants' concurrent runs succeed; a full runtime answers Busy
//! and recovers.

use https_step_host::{Error, HostLimits, LimitKind, StepRuntime, Tenant};
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn fault_runtime() -> &'static StepRuntime {
    static RT: OnceLock<StepRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        StepRuntime::builder()
            .component(https_step_tests::FAULT_WASM.to_vec())
            .max_memory_bytes(64 << 20)
            .build()
            .expect("fault runtime")
    })
}

fn config(url: &str) -> https_step_core::StepConfig {
    let parsed = https_step_core::parse_step_config(
        &serde_json::json!({"url": url, "timeout_ms": 5000}).to_string(),
    );
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.config
}

fn quiet() -> https_step_host::ProgressFn {
    Arc::new(|_: &str| {})
}

async fn ok_server() -> LoopbackServer {
    LoopbackServer::https_for(
        &["127.0.0.1", "localhost", "mixed.test", "evil.test"],
        Arc::new(|_: &_| Reply::json(200, &serde_json::json!({"ok": true}))),
    )
    .await
    .expect("server")
}

/// Runs `url` for a tenant that trusts the server's certificate and has no
/// allow entries but `allow`; returns the step's error kind (or "ok").
async fn kind_of(
    server: &LoopbackServer,
    url: &str,
    allow: &[&str],
    resolve: &[(&str, &[&str])],
) -> String {
    let mut tenant = Tenant::builder("t")
        .ca_certs_pem(server.ca_pem().unwrap_or_default().as_bytes())
        .expect("ca");
    for a in allow {
        tenant = tenant.allow(a).expect("allow");
    }
    for (name, addrs) in resolve {
        tenant = tenant.resolve(
            name,
            addrs
                .iter()
                .map(|a| a.parse::<IpAddr>().expect("ip"))
                .collect(),
        );
    }
    let tenant = Arc::new(tenant.build().expect("tenant"));
    match step_runtime()
        .run(&tenant, &config(url), "{}", quiet())
        .await
        .expect("runs")
    {
        Ok(_) => "ok".into(),
        Err(f) => format!("{}: {}", f.error.kind(), f.error),
    }
}

#[test]
fn every_blocked_address_class_is_refused_without_a_connection() {
    tokio().block_on(async {
        let server = ok_server().await;
        let port = server.port();
        let cases = [
            format!("https://127.0.0.1:{port}/"),
            format!("https://[::ffff:127.0.0.1]:{port}/"),
            format!("https://2130706433:{port}/"),
            format!("https://0x7f.1:{port}/"),
            format!("https://0177.0.0.1:{port}/"),
            format!("https://[::1]:{port}/"),
            format!("https://localhost:{port}/"),
            format!("https://evil.test:{port}/"),
            format!("http://127.0.0.1:{port}/"),
        ];
        for url in &cases {
            let kind = kind_of(
                &server,
                url,
                &[],
                &[
                    ("evil.test", &["127.0.0.1"]),
                    ("localhost", &["127.0.0.1", "::1"]),
                ],
            )
            .await;
            assert!(kind.starts_with("denied:"), "{url}: {kind}");
        }
        assert_eq!(
            server.connections(),
            0,
            "a refused request must not connect"
        );
    });
}

#[test]
fn mixed_answers_are_dialled_only_to_allowed_addresses() {
    tokio().block_on(async {
        let server = ok_server().await;
        let port = server.port();
        // 127.0.0.2 is blocked (loopback, not covered by the entry) and comes
        // first; nothing listens there, so dialling it would fail the run.
        let kind = kind_of(
            &server,
            &format!("https://mixed.test:{port}/"),
            &["https://127.0.0.1/32:*"],
            &[("mixed.test", &["127.0.0.2", "127.0.0.1"])],
        )
        .await;
        assert_eq!(kind, "ok");
        assert_eq!(server.connections(), 1);
        // All answers blocked: destination-IP-prohibited, no connection.
        let kind = kind_of(
            &server,
            &format!("https://mixed.test:{port}/"),
            &[],
            &[("mixed.test", &["127.0.0.2", "127.0.0.1"])],
        )
        .await;
        assert!(kind.contains("destination-IP-prohibited"), "{kind}");
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn an_allowed_origin_unlocks_loopback() {
    tokio().block_on(async {
        let server = ok_server().await;
        let url = format!("https://127.0.0.1:{}/", server.port());
        assert_eq!(kind_of(&server, &url, &[&server.origin()], &[]).await, "ok");
        assert_eq!(
            kind_of(&server, &url, &["https://127.0.0.0/8:*"], &[]).await,
            "ok"
        );
    });
}

fn tenant_with(limits: HostLimits) -> Arc<Tenant> {
    Arc::new(
        Tenant::builder("fault")
            .limits(limits)
            .build()
            .expect("tenant"),
    )
}

/// Runs healthy steps for another tenant while `fault` runs; all must succeed.
async fn others_succeed_during<
    F: std::future::Future<
            Output = Result<
                Result<https_step_host::StepOutcome, https_step_host::StepFailure>,
                Error,
            >,
        >,
>(
    fault: F,
) -> Error {
    let server = LoopbackServer::http(Arc::new(|_: &_| Reply::json(200, &serde_json::json!({}))))
        .await
        .expect("server");
    let tenant = Arc::new(
        Tenant::builder("healthy")
            .allow(&server.origin())
            .expect("allow")
            .build()
            .expect("tenant"),
    );
    let healthy = async {
        let started = Instant::now();
        let mut done = 0;
        while started.elapsed() < Duration::from_millis(300) || done < 5 {
            let r = step_runtime()
                .run(
                    &tenant,
                    &config(&format!("{}/x", server.origin())),
                    "{}",
                    quiet(),
                )
                .await;
            assert!(matches!(r, Ok(Ok(_))), "a healthy run failed: {r:?}");
            done += 1;
        }
        done
    };
    let (fault_result, done) = tokio::join!(fault, healthy);
    assert!(done >= 5);
    fault_result.expect_err("the faulty run must fail")
}

#[test]
fn an_infinite_loop_is_stopped_by_the_cpu_budget_while_others_run() {
    tokio().block_on(async {
        let tenant = tenant_with(HostLimits {
            cpu_ms: 300,
            ..HostLimits::default()
        });
        let started = Instant::now();
        let err = others_succeed_during(fault_runtime().run(
            &tenant,
            &config("fault://loop"),
            "{}",
            quiet(),
        ))
        .await;
        assert!(
            matches!(
                err,
                Error::ResourceLimit {
                    kind: LimitKind::Cpu,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_memory_bomb_hits_the_memory_limit_while_others_run() {
    tokio().block_on(async {
        let tenant = tenant_with(HostLimits {
            memory_bytes: 32 << 20,
            ..HostLimits::default()
        });
        let err = others_succeed_during(fault_runtime().run(
            &tenant,
            &config("fault://oom"),
            "{}",
            quiet(),
        ))
        .await;
        assert!(
            matches!(
                err,
                Error::ResourceLimit {
                    kind: LimitKind::Memory,
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn a_trap_ends_only_its_own_run() {
    tokio().block_on(async {
        let tenant = tenant_with(HostLimits::default());
        let err = others_succeed_during(fault_runtime().run(
            &tenant,
            &config("fault://trap"),
            "{}",
            quiet(),
        ))
        .await;
        assert!(matches!(err, Error::GuestTrap { .. }), "{err}");
        // The same runtime keeps working.
        let fine = fault_runtime()
            .run(&tenant, &config("fault://nothing"), "{}", quiet())
            .await;
        assert!(matches!(fine, Ok(Ok(_))), "{fine:?}");
    });
}

#[test]
fn a_full_runtime_answers_busy_and_recovers() {
    tokio().block_on(async {
        let runtime = Arc::new(
            StepRuntime::builder()
                .max_concurrency(2)
                .build()
                .expect("runtime"),
        );
        let server = Arc::new(
            LoopbackServer::http(Arc::new(|r: &https_step_tests::loopback::Recorded| {
                if r.path() == "/slow" {
                    Reply::Respond {
                        status: 200,
                        headers: vec![],
                        body: vec![],
                        delay_ms: 800,
                    }
                } else {
                    Reply::json(200, &serde_json::json!({}))
                }
            }))
            .await
            .expect("server"),
        );
        // The runtime's only tenant: it may use both slots.
        let tenant = Arc::new(
            Tenant::builder("t")
                .allow(&server.origin())
                .expect("allow")
                .limits(HostLimits {
                    max_concurrent_runs: Some(2),
                    ..HostLimits::default()
                })
                .build()
                .expect("tenant"),
        );
        let slow = || {
            let (runtime, tenant, url) = (
                runtime.clone(),
                tenant.clone(),
                format!("{}/slow", server.origin()),
            );
            tokio::spawn(async move { runtime.run(&tenant, &config(&url), "{}", quiet()).await })
        };
        let (a, b) = (slow(), slow());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let busy = runtime
            .run(
                &tenant,
                &config(&format!("{}/x", server.origin())),
                "{}",
                quiet(),
            )
            .await;
        assert!(
            matches!(
                busy,
                Err(Error::Busy {
                    slots: 2,
                    share: 2,
                    ..
                })
            ),
            "{busy:?}"
        );
        for h in [a, b] {
            assert!(matches!(h.await.expect("join"), Ok(Ok(_))));
        }
        let again = runtime
            .run(
                &tenant,
                &config(&format!("{}/x", server.origin())),
                "{}",
                quiet(),
            )
            .await;
        assert!(matches!(again, Ok(Ok(_))), "{again:?}");
    });
}

/// A server that never answers, and a tenant with `limits` allowed to reach it.
async fn hanging(limits: HostLimits) -> (LoopbackServer, Arc<Tenant>) {
    let server = LoopbackServer::http(Arc::new(|_: &_| Reply::Hang))
        .await
        .expect("server");
    let tenant = Tenant::builder("t")
        .allow(&server.origin())
        .expect("allow")
        .limits(limits)
        .build()
        .expect("tenant");
    (server, Arc::new(tenant))
}

#[test]
fn the_run_deadline_cancels_a_guest_blocked_on_io() {
    tokio().block_on(async {
        let (server, tenant) = hanging(HostLimits {
            max_run_ms: 500,
            ..HostLimits::default()
        })
        .await;
        let started = Instant::now();
        let r = step_runtime()
            .run(
                &tenant,
                &config(&format!("{}/hang", server.origin())),
                "{}",
                quiet(),
            )
            .await;
        assert!(
            matches!(
                r,
                Err(Error::ResourceLimit {
                    kind: LimitKind::RunTime,
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}

/// A tenant's first-byte timeout shorter than the step's `timeout_ms` ends
/// the attempt, and both the step's error and the host's event name that
/// limit, not `timeout_ms`.
#[test]
fn a_host_timeout_names_the_host_limit_not_timeout_ms() {
    tokio().block_on(async {
        let (server, tenant) = hanging(HostLimits {
            first_byte_timeout_ms: 300,
            ..HostLimits::default()
        })
        .await;
        let mut step = config(&format!("{}/hang", server.origin()));
        step.timeout_ms = Some(20_000);
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let progress: https_step_host::ProgressFn = Arc::new(move |l: &str| {
            sink.lock().expect("lock").push(l.to_string());
        });
        let started = Instant::now();
        let failure = step_runtime()
            .run(&tenant, &step, "{}", progress)
            .await
            .expect("the host ran the step")
            .expect_err("the step timed out");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(failure.error.kind(), "timeout", "{}", failure.error);
        let message = failure.error.to_string();
        assert!(message.contains("first_byte_timeout_ms"), "{message}");
        assert!(!message.contains("within timeout_ms"), "{message}");
        let lines = lines.lock().expect("lock");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("first_byte_timeout_ms (300 ms)")),
            "{lines:?}"
        );
    });
}
