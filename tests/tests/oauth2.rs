//! OAuth 2.0 client credentials across runs (README "Authentication"): the
//! token is cached in the tenant's store (`wasi:keyvalue`, scoped per tenant by
//! the host), so 50 concurrent cold runs of one tenant make exactly one token
//! request, a second tenant with the same grant makes its own, later runs
//! reuse the token, and a token is replaced ahead of its `expires_in`.

use https_step_host::Tenant;
use https_step_tests::loopback::{LoopbackServer, Recorded, Reply};
use https_step_tests::shared::{step_runtime, tokio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A token endpoint (`/token`, slow enough that concurrent runs overlap it)
/// and an API (`/api`) that accepts exactly the tokens it issued.
async fn servers(expires_in: u64) -> anyhow::Result<(LoopbackServer, Arc<AtomicUsize>)> {
    let issued = Arc::new(AtomicUsize::new(0));
    let count = issued.clone();
    let responder = Arc::new(move |r: &Recorded| {
        if r.path() == "/token" {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let body = serde_json::json!({"access_token": format!("at_issued_{n:04}"), "token_type": "Bearer", "expires_in": expires_in});
            return Reply::Respond {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
                delay_ms: 300,
            };
        }
        let issued_now = count.load(Ordering::SeqCst);
        let valid = r.header_values("authorization").first().is_some_and(|v| {
            v.strip_prefix("Bearer at_issued_")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=issued_now).contains(&n))
        });
        Reply::json(
            if valid { 200 } else { 401 },
            &serde_json::json!({"valid": valid}),
        )
    });
    Ok((LoopbackServer::http(responder).await?, issued))
}

fn config(origin: &str, margin: Option<u32>) -> https_step_core::StepConfig {
    let margin = margin
        .map(|m| format!(r#", "expiry_margin_s": {m}"#))
        .unwrap_or_default();
    let json = format!(
        r#"{{"url": "{origin}/api", "timeout_ms": 10000, "auth": {{"oauth2_client_credentials": {{
            "token_url": "{origin}/token", "client_id": "wf", "client_secret": "{{{{ secrets.cs }}}}", "scope": "read"{margin}}}}}}}"#
    );
    let parsed = https_step_core::parse_step_config(&json);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed.config
}

const CONTEXT: &str = r#"{"secrets": {"cs": "cs_shared_secret_77"}}"#;

async fn status(tenant: &Arc<Tenant>, config: &https_step_core::StepConfig) -> Result<u16, String> {
    match step_runtime()
        .run(tenant, config, CONTEXT, Arc::new(|_: &str| {}))
        .await
    {
        Ok(Ok(outcome)) => Ok(outcome.response.map_or(0, |r| r.status)),
        Ok(Err(failure)) => Err(format!("{}: {}", failure.error.kind(), failure.error)),
        Err(host) => Err(host.to_string()),
    }
}

#[test]
fn fifty_concurrent_cold_runs_of_one_tenant_make_one_token_request_and_tenants_never_share()
-> anyhow::Result<()> {
    tokio().block_on(async {
        let (server, issued) = servers(3600).await?;
        let origin = server.origin();
        let config = Arc::new(config(&origin, None));
        let tenant = |id: &str| anyhow::Ok(Arc::new(Tenant::builder(id).allow(&origin)?.build()?));
        let (a, b) = (tenant("tenant-a")?, tenant("tenant-b")?);

        let runs: Vec<_> = (0..50)
            .map(|_| {
                let (a, config) = (a.clone(), config.clone());
                tokio::spawn(async move { status(&a, &config).await })
            })
            .collect();
        for run in runs {
            assert_eq!(run.await?, Ok(200));
        }
        assert_eq!(
            issued.load(Ordering::SeqCst),
            1,
            "50 cold runs of one tenant: one token request"
        );

        assert_eq!(status(&a, &config).await, Ok(200));
        assert_eq!(
            issued.load(Ordering::SeqCst),
            1,
            "a later run reuses the cached token"
        );

        assert_eq!(status(&b, &config).await, Ok(200));
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "another tenant with the same grant gets its own token"
        );
        let tokens: Vec<Recorded> = server
            .requests()
            .into_iter()
            .filter(|r| r.path() == "/token")
            .collect();
        assert_eq!(tokens.len(), 2);
        anyhow::Ok(())
    })
}

#[test]
fn a_token_is_replaced_ahead_of_its_expiry() -> anyhow::Result<()> {
    tokio().block_on(async {
        // expires_in 5 s with a 2 s margin: usable for 2 to 3 s (whole seconds).
        let (server, issued) = servers(5).await?;
        let origin = server.origin();
        let tenant = Arc::new(Tenant::builder("expiring").allow(&origin)?.build()?);
        let config = config(&origin, Some(2));
        assert_eq!(status(&tenant, &config).await, Ok(200));
        assert_eq!(status(&tenant, &config).await, Ok(200));
        assert_eq!(issued.load(Ordering::SeqCst), 1, "still valid: reused");
        tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
        assert_eq!(status(&tenant, &config).await, Ok(200));
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "within the margin of expiry: fetched again before use"
        );
        anyhow::Ok(())
    })
}
