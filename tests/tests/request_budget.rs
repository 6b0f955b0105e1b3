//! The tenant's budget of requests per run (`max_requests_per_run`, default
//! 64) against real runs: a listing longer than the budget stops like
//! `max_pages` does — every item fetched so far kept, `truncated`, a
//! `stopped` reason naming the budget — and a job polled past it fails
//! `denied` with a message naming the setting and its value, never as a
//! connection problem.

use https_step_core::PagesStop;
use https_step_host::{HostLimits, Tenant, parse_step_config};
use https_step_tests::loopback::{LoopbackServer, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use serde_json::json;
use std::sync::Arc;

/// A tenant of the default limits allowed to reach `server`.
fn tenant(server: &LoopbackServer) -> Arc<Tenant> {
    let tenant = Tenant::builder("budget")
        .allow(&server.origin())
        .expect("allow")
        .build()
        .expect("tenant");
    Arc::new(tenant)
}

fn quiet() -> https_step_host::ProgressFn {
    Arc::new(|_: &str| {})
}

#[test]
fn a_listing_longer_than_the_budget_keeps_the_pages_it_got() {
    tokio().block_on(async {
        // Page n (1 to 120) holds the item n.
        let server = LoopbackServer::http(Arc::new(|r: &_| {
            let page: u32 = r
                .query()
                .and_then(|q| q.strip_prefix("page="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let data = if (1..=120).contains(&page) { json!([page]) } else { json!([]) };
            Reply::json(200, &json!({"data": data}))
        }))
        .await
        .expect("server");
        let parsed = parse_step_config(
            &json!({
                "url": format!("{}/items", server.origin()),
                "pagination": {"next": {"page": {"param": "page"}}, "items": "/data", "max_pages": 120},
            })
            .to_string(),
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let outcome = step_runtime()
            .run(&tenant(&server), &parsed.config, "{}", quiet())
            .await
            .expect("the host ran it")
            .expect("the pages within the budget are the step's output");
        let budget = HostLimits::default().max_requests_per_run;
        let items: Vec<u32> = serde_json::from_str(
            outcome.response.and_then(|r| r.json).as_deref().unwrap_or("null"),
        )
        .expect("the items as a JSON list");
        assert_eq!(items, (1..=budget).collect::<Vec<_>>());
        let pages = outcome.pagination.expect("pagination");
        assert_eq!(pages.pages.len(), budget as usize);
        assert!(pages.truncated);
        assert_eq!(pages.stopped, PagesStop::MaxRequestsPerRun);
        assert_eq!(server.requests().len(), budget as usize, "not one request past the budget");
    });
}

#[test]
fn polling_past_the_budget_is_denied_naming_the_setting() {
    tokio().block_on(async {
        let server = LoopbackServer::http(Arc::new(|r: &_| {
            if r.path() == "/jobs" {
                Reply::Respond {
                    status: 202,
                    headers: vec![("location".into(), "/jobs/1".into())],
                    body: Vec::new(),
                    delay_ms: 0,
                }
            } else {
                Reply::json(202, &json!({"status": "running"}))
            }
        }))
        .await
        .expect("server");
        let parsed = parse_step_config(
            &json!({
                "url": format!("{}/jobs", server.origin()),
                "method": "POST",
                "poll": {"interval_ms": 0, "max_polls": 200},
            })
            .to_string(),
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let failure = step_runtime()
            .run(&tenant(&server), &parsed.config, "{}", quiet())
            .await
            .expect("the host ran it")
            .expect_err("the budget ends the polling");
        assert_eq!(failure.error.kind(), "denied", "{}", failure.error);
        let message = failure.error.to_string();
        let budget = HostLimits::default().max_requests_per_run;
        assert!(
            message.contains(&format!("made {budget} requests"))
                && message.contains("max_requests_per_run"),
            "{message}"
        );
        assert_eq!(server.requests().len(), budget as usize);
    });
}
