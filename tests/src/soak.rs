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

/// How much RSS may grow over the second half of the batches of a long soak
/// (at least [`LONG_SOAK_BATCHES`]): a service that runs for weeks must not
/// grow with the number of runs it has made.
const SECOND_HALF_GROWTH_KIB: u64 = 2 * 1024;
/// Batches from which the second-half bound applies.
const LONG_SOAK_BATCHES: usize = 20;
/// RSS growth allowed from the first batch to the last of a short soak.
const SHORT_SOAK_GROWTH_KIB: u64 = 10 * 1024;

/// Runs `total` runs over `tenants` tenants (as many concurrent workers) and
/// returns the report; fails if any invariant is broken. What the soak keeps
/// itself is bounded: each batch of runs is checked against what the server
/// saw when it ends, and then forgotten (a tally of outcomes by kind and one
/// RSS figure per batch stay), so the RSS it reports is the product's.
pub async fn run(total: usize, tenants: usize) -> Result<Report> {
    // Requests the server saw per run of the current batch; emptied per batch.
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
    let started = Instant::now();
    let mut rss_per_batch = Vec::new();
    let mut kinds: HashMap<&'static str, usize> = HashMap::new();
    let mut requests_total = 0u64;
    // Batches of about a tenth of the runs, at most 1000 (so a short soak
    // still has several figures to compare), whole rounds of the tenants.
    let batch = tenants * ((total / 10).clamp(1, 1000) / tenants).max(1);
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
            let (tenant, runtime, origin) = (tenant.clone(), runtime.clone(), origin.clone());
            let runs: Vec<u64> = (next..end)
                .filter(|i| i % tenants == w)
                .map(|i| i as u64)
                .collect();
            workers.push(tokio::spawn(async move {
                let mut outcomes = Vec::with_capacity(runs.len());
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
                    outcomes.push(match result {
                        Ok(o) => (run, "ok", o.attempts.len()),
                        Err(f) => (run, f.error.kind(), f.attempts.len()),
                    });
                }
                anyhow::Ok(outcomes)
            }));
        }
        let mut outcomes = Vec::with_capacity(end - next);
        for w in workers {
            outcomes.extend(w.await??);
        }
        // The batch's runs against what the server saw, then forgotten.
        let mut seen_now = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
        if outcomes.len() != end - next {
            bail!("runs {next}..{end}: {} outcomes recorded", outcomes.len());
        }
        for (run, kind, attempts) in outcomes {
            let requests = seen_now.remove(&run).unwrap_or(0);
            if requests != attempts as u64 {
                bail!(
                    "run {run}: the server saw {requests} requests, the outcome reports {attempts} attempts"
                );
            }
            requests_total += requests;
            *kinds.entry(kind).or_default() += 1;
        }
        if let Some(stray) = seen_now.keys().next() {
            bail!("the server saw requests of run {stray}, which is not in batch {next}..{end}");
        }
        rss_per_batch.push(crate::shared::status_kib("VmRSS:"));
        next = end;
    }
    let elapsed = started.elapsed();
    if runtime.runs_in_flight() != 0 {
        bail!(
            "{} run slots still in use after the soak",
            runtime.runs_in_flight()
        );
    }
    let first = rss_per_batch.first().copied().unwrap_or(0);
    let last = rss_per_batch.last().copied().unwrap_or(0);
    let growth_kib = last.saturating_sub(first);
    let second_half = &rss_per_batch[rss_per_batch.len() / 2..];
    let second_half_growth_kib = second_half
        .iter()
        .max()
        .copied()
        .unwrap_or(0)
        .saturating_sub(second_half.first().copied().unwrap_or(0));
    if rss_per_batch.len() >= LONG_SOAK_BATCHES && second_half_growth_kib > SECOND_HALF_GROWTH_KIB {
        bail!(
            "RSS grew {second_half_growth_kib} KiB over the second half of the batches (bound {} KiB): {rss_per_batch:?}",
            SECOND_HALF_GROWTH_KIB
        );
    }
    // Only meaningful over several batches.
    if (5..LONG_SOAK_BATCHES).contains(&rss_per_batch.len()) && growth_kib > SHORT_SOAK_GROWTH_KIB {
        bail!(
            "RSS grew {growth_kib} KiB from the first batch to the last (bound {SHORT_SOAK_GROWTH_KIB} KiB): {rss_per_batch:?}"
        );
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    // At most about twenty figures in the summary; every one in the report.
    let step = rss_per_batch.len().div_ceil(20).max(1);
    let mut sampled: Vec<(usize, u64)> = rss_per_batch
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, kib)| ((i + 1) * batch, kib / 1024))
        .collect();
    if let Some(last_kib) = rss_per_batch.last()
        && sampled.last().map(|(n, _)| *n) != Some(total.min(rss_per_batch.len() * batch))
    {
        sampled.push((total, last_kib / 1024));
    }
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
        "requests seen by the server: {requests_total} = attempts reported, for every run"
    );
    let _ = writeln!(
        out,
        "slots in use afterwards: 0; {} batches of {batch} runs; RSS (MiB) after runs: {}",
        rss_per_batch.len(),
        sampled
            .iter()
            .map(|(n, mib)| format!("{n}: {mib}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "RSS growth from the first batch to the last: {:.1} MiB; over the second half of the batches: {:.1} MiB",
        growth_kib as f64 / 1024.0,
        second_half_growth_kib as f64 / 1024.0
    );
    Ok(Report {
        summary: out,
        batch,
        rss_kib: rss_per_batch,
    })
}

/// What a soak found.
pub struct Report {
    /// The summary: runs, outcomes, requests, RSS at about twenty points.
    pub summary: String,
    /// Runs per batch.
    pub batch: usize,
    /// RSS after each batch, KiB.
    pub rss_kib: Vec<u64>,
}
