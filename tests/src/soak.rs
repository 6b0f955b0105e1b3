//! The soak run: many runs across many tenants against an upstream that
//! randomly answers 200/201/429/503, stalls, resets or sends oversized
//! bodies, with retries on. Afterwards every run must be accounted for, the
//! server must have seen exactly as many requests per run as the run reports
//! attempts, no slot may be left in use, and RSS must not grow from the first
//! thousand runs to the last.

use crate::loopback::{LoopbackServer, Recorded, Reply};
use anyhow::{Result, bail};
use https_step_host::{StepRuntime, Tenant};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A deterministic pseudo-random number for (run, attempt) (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn reply_for(run: u64, attempt: u64) -> Reply {
    let json = |status| Reply::json(status, &serde_json::json!({"run": run, "attempt": attempt}));
    match mix(run * 31 + attempt) % 100 {
        0..=44 => json(200),
        45..=59 => json(201),
        60..=69 => Reply::Respond {
            status: 429,
            headers: vec![("retry-after".into(), "0".into())],
            body: Vec::new(),
            delay_ms: 0,
        },
        70..=81 => json(503),
        82..=87 => Reply::Hang,
        88..=93 => Reply::Raw {
            bytes: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec(),
            reset: true,
        },
        _ => Reply::Respond {
            status: 200,
            headers: vec![],
            body: vec![b'x'; 10_000],
            delay_ms: 0,
        },
    }
}

/// Runs `total` runs over `tenants` tenants (as many concurrent workers) and
/// returns the report; fails if any invariant is broken.
pub async fn run(total: usize, tenants: usize) -> Result<String> {
    let seen: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let counter = seen.clone();
    let server = LoopbackServer::http_unrecorded(Arc::new(move |r: &Recorded| {
        let run: u64 = r
            .path()
            .trim_start_matches("/soak/")
            .parse()
            .unwrap_or(u64::MAX);
        let mut seen = counter.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = seen.entry(run).or_insert(0);
        *attempt += 1;
        reply_for(run, *attempt)
    }))
    .await?;
    let runtime = Arc::new(StepRuntime::builder().max_concurrency(tenants).build()?);
    let origin = server.origin();
    let outcomes: Arc<Mutex<HashMap<u64, (String, usize)>>> = Arc::default();
    let started = Instant::now();
    let mut rss_per_thousand = Vec::new();
    let batch = tenants * (1000 / tenants).max(1);
    let mut next = 0usize;
    // Built once: each tenant keeps its policy, TLS settings and pooled
    // connections across batches, as a host's tenants do.
    let tenant_list: Vec<Arc<Tenant>> = (0..tenants)
        .map(|w| {
            Ok(Arc::new(
                Tenant::builder(format!("tenant-{w}"))
                    .allow(&origin)?
                    .build()?,
            ))
        })
        .collect::<Result<_>>()?;
    while next < total {
        let end = (next + batch).min(total);
        let mut workers = Vec::new();
        for (w, tenant) in tenant_list.iter().enumerate() {
            let (tenant, runtime, origin, outcomes) = (
                tenant.clone(),
                runtime.clone(),
                origin.clone(),
                outcomes.clone(),
            );
            let runs: Vec<u64> = (next..end)
                .filter(|i| i % tenants == w)
                .map(|i| i as u64)
                .collect();
            workers.push(tokio::spawn(async move {
                for run in runs {
                    let config = https_step_core::parse_step_config(
                        &serde_json::json!({
                            "url": format!("{origin}/soak/{run}"),
                            "timeout_ms": 200,
                            "max_response_bytes": 4096,
                            "retry": {"intervals_ms": [10, 20]}
                        })
                        .to_string(),
                    )
                    .config;
                    let result = runtime
                        .run(&tenant, &config, "{}", Arc::new(|_: &str| {}))
                        .await?;
                    let recorded = match result {
                        Ok(o) => ("ok".to_string(), o.attempts.len()),
                        Err(f) => (f.error.kind().to_string(), f.attempts.len()),
                    };
                    outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(run, recorded);
                }
                anyhow::Ok(())
            }));
        }
        for w in workers {
            w.await??;
        }
        rss_per_thousand.push(crate::shared::status_kib("VmRSS:"));
        next = end;
    }
    let elapsed = started.elapsed();
    let outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let mut mismatches = Vec::new();
    for run in 0..total as u64 {
        let Some((kind, attempts)) = outcomes.get(&run) else {
            bail!("run {run} has no recorded outcome");
        };
        *kinds.entry(kind.clone()).or_default() += 1;
        let requests = seen.get(&run).copied().unwrap_or(0);
        if requests != *attempts as u64 {
            mismatches.push(format!(
                "run {run}: server saw {requests}, outcome reports {attempts}"
            ));
        }
    }
    if !mismatches.is_empty() {
        bail!(
            "{} runs disagree with the server: {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(5)]
        );
    }
    if runtime.runs_in_flight() != 0 {
        bail!(
            "{} run slots still in use after the soak",
            runtime.runs_in_flight()
        );
    }
    let first = rss_per_thousand.first().copied().unwrap_or(0);
    let last = rss_per_thousand.last().copied().unwrap_or(0);
    let growth_kib = last.saturating_sub(first);
    // Only meaningful over many batches: the full soak's bound is 10 MB.
    if rss_per_thousand.len() >= 5 && growth_kib > 10 * 1024 {
        bail!(
            "RSS grew {} KiB from the first batch to the last (bound 10 MiB): {rss_per_thousand:?}",
            growth_kib
        );
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {total} runs over {tenants} tenants in {:.1} s ({:.0} runs/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "outcomes: {kinds:?}");
    let _ = writeln!(
        out,
        "requests seen by the server: {} = attempts reported, for every run",
        seen.values().sum::<u64>()
    );
    let _ = writeln!(
        out,
        "slots in use afterwards: 0; RSS after each batch of {batch} runs (MiB): {:?}",
        rss_per_thousand
            .iter()
            .map(|k| k / 1024)
            .collect::<Vec<_>>()
    );
    let _ = writeln!(
        out,
        "RSS growth from the first batch to the last: {:.1} MiB",
        growth_kib as f64 / 1024.0
    );
    Ok(out)
}
