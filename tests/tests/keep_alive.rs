//! Keep-alive connection reuse in the host's egress: a tenant's later runs
//! reuse its idle connection to the same origin (HTTP and HTTPS), tenants
//! never share one, a connection whose response was not read to the end or
//! that the server closed is never reused, an idle one closes after
//! `idle_connection_ms`, and reuse can be turned off.

use https_step_host::{HostLimits, Tenant};
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use std::sync::Arc;

fn config(url: &str) -> https_step_core::StepConfig {
    let parsed = https_step_core::parse_step_config(
        &serde_json::json!({"url": url, "method": "POST", "body": {"json": {"n": 1}}, "timeout_ms": 5000}).to_string(),
    );
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.config
}

fn tenant(server: &LoopbackServer, id: &str, limits: HostLimits) -> Arc<Tenant> {
    let mut b = Tenant::builder(id)
        .allow(&server.origin())
        .expect("allow")
        .limits(limits);
    if let Some(pem) = server.ca_pem() {
        b = b.ca_certs_pem(pem.as_bytes()).expect("ca");
    }
    Arc::new(b.build().expect("tenant"))
}

/// Runs `path` once for `tenant`; "ok" or the error kind and message.
async fn run(server: &LoopbackServer, tenant: &Arc<Tenant>, path: &str) -> String {
    let url = format!("{}{path}", server.origin());
    match step_runtime()
        .run(tenant, &config(&url), "{}", Arc::new(|_: &str| {}))
        .await
        .expect("runs")
    {
        Ok(_) => "ok".into(),
        Err(f) => format!("{}: {}", f.error.kind(), f.error),
    }
}

fn connections_of(server: &LoopbackServer) -> Vec<usize> {
    server.requests().iter().map(|r| r.connection).collect()
}

fn ok_reply(_: &Recorded) -> Reply {
    Reply::json(200, &serde_json::json!({"ok": true}))
}

#[test]
fn a_tenant_reuses_its_connection_across_runs_over_http_and_https() {
    tokio().block_on(async {
        for server in [
            LoopbackServer::http(Arc::new(ok_reply))
                .await
                .expect("server"),
            LoopbackServer::https(Arc::new(ok_reply))
                .await
                .expect("server"),
        ] {
            let t = tenant(&server, "a", HostLimits::default());
            for _ in 0..3 {
                assert_eq!(run(&server, &t, "/x").await, "ok");
            }
            assert_eq!(connections_of(&server), [1, 1, 1], "{}", server.origin());
            assert_eq!(server.connections(), 1);
            assert_eq!(t.idle_connections(), 1);
        }
    });
}

#[test]
fn tenants_never_share_a_connection() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(ok_reply))
            .await
            .expect("server");
        let (a, b) = (
            tenant(&server, "a", HostLimits::default()),
            tenant(&server, "b", HostLimits::default()),
        );
        for t in [&a, &b, &a, &b] {
            assert_eq!(run(&server, t, "/x").await, "ok");
        }
        // a got connection 1, b connection 2, and each kept its own.
        assert_eq!(connections_of(&server), [1, 2, 1, 2]);
        // Dropping a tenant closes its idle connections.
        drop(a);
        assert_eq!(run(&server, &b, "/x").await, "ok");
        assert_eq!(server.connections(), 2);
    });
}

#[test]
fn reuse_can_be_turned_off() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(ok_reply))
            .await
            .expect("server");
        let t = tenant(
            &server,
            "a",
            HostLimits {
                max_idle_connections_per_origin: 0,
                ..HostLimits::default()
            },
        );
        for _ in 0..3 {
            assert_eq!(run(&server, &t, "/x").await, "ok");
        }
        assert_eq!(connections_of(&server), [1, 2, 3]);
        assert_eq!(t.idle_connections(), 0);
    });
}

#[test]
fn a_response_not_read_to_the_end_closes_its_connection() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(|r: &Recorded| {
            if r.path() == "/big" {
                Reply::Respond {
                    status: 200,
                    headers: vec![],
                    body: vec![b'x'; 64 * 1024],
                    delay_ms: 0,
                }
            } else {
                ok_reply(r)
            }
        }))
        .await
        .expect("server");
        let t = tenant(
            &server,
            "a",
            HostLimits {
                max_response_bytes: 1024,
                ..HostLimits::default()
            },
        );
        let big = run(&server, &t, "/big").await;
        assert!(big.starts_with("response-too-large"), "{big}");
        assert_eq!(t.idle_connections(), 0);
        assert_eq!(run(&server, &t, "/small").await, "ok");
        assert_eq!(connections_of(&server), [1, 2]);
    });
}

#[test]
fn a_connection_the_server_closed_is_replaced_without_an_error() {
    tokio().block_on(async {
        // The first answer is complete and then the server closes the
        // connection without saying so (no `Connection: close`), as a server
        // does when its keep-alive timeout ends.
        let server = LoopbackServer::http(Arc::new(|r: &Recorded| {
            if r.connection == 1 {
                Reply::Raw {
                    bytes: b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
                    reset: false,
                }
            } else {
                ok_reply(r)
            }
        }))
        .await
        .expect("server");
        let t = tenant(&server, "a", HostLimits::default());
        assert_eq!(run(&server, &t, "/first").await, "ok");
        // Give the close a moment to arrive, as it would between real runs.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(run(&server, &t, "/second").await, "ok");
        assert_eq!(connections_of(&server), [1, 2]);
    });
}

#[test]
fn retries_within_a_run_reuse_the_connection() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(|_: &Recorded| Reply::json(503, &serde_json::json!({"busy": true}))))
        .await
        .expect("server");
        let t = tenant(&server, "a", HostLimits::default());
        let url = format!("{}/busy", server.origin());
        let parsed = https_step_core::parse_step_config(
            &serde_json::json!({"url": url, "retry": {"intervals_ms": [10, 10]}, "timeout_ms": 5000}).to_string(),
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let outcome = step_runtime().run(&t, &parsed.config, "{}", Arc::new(|_: &str| {})).await.expect("runs");
        assert!(outcome.is_err());
        assert_eq!(connections_of(&server), [1, 1, 1]);
    });
}

#[test]
fn an_idle_connection_closes_after_idle_connection_ms() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(ok_reply))
            .await
            .expect("server");
        let t = tenant(
            &server,
            "a",
            HostLimits {
                idle_connection_ms: 200,
                ..HostLimits::default()
            },
        );
        assert_eq!(run(&server, &t, "/x").await, "ok");
        assert_eq!(t.idle_connections(), 1);
        // Closed by its own timer, with no later request to notice it.
        let start = std::time::Instant::now();
        while t.idle_connections() > 0 && start.elapsed() < std::time::Duration::from_secs(10) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            t.idle_connections(),
            0,
            "still idle after {:?}",
            start.elapsed()
        );
        assert_eq!(run(&server, &t, "/x").await, "ok");
        assert_eq!(connections_of(&server), [1, 2]);
    });
}

#[test]
fn a_response_without_a_body_returns_its_connection_at_once() {
    tokio().block_on(async {
        // 204 has no body (RFC 9110 §15.3.5): nothing is read, so the
        // connection must go back to the pool when the head arrives.
        let server = LoopbackServer::http(Arc::new(|_: &Recorded| Reply::Respond {
            status: 204,
            headers: vec![],
            body: vec![],
            delay_ms: 0,
        }))
        .await
        .expect("server");
        let t = tenant(&server, "a", HostLimits::default());
        for _ in 0..3 {
            assert_eq!(run(&server, &t, "/x").await, "ok");
        }
        assert_eq!(connections_of(&server), [1, 1, 1]);
    });
}
