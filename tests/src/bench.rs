//! The benchmark: the same signed JSON POST against the same local server,
//! done (a) natively — hyper-util's pooled client (what a native Rust step
//! would use) with the step's own request building, HMAC signing and JSON
//! handling from `https-step-core`, keeping as many idle connections per
//! origin as the tenant allows — and (b) by the
//! component through the host library, in one process and one run. Prints latency percentiles and
//! ratios, throughput at several concurrencies (one tenant per worker),
//! instantiate, load and compile times, guest size, peak RSS with many runs
//! in flight.

use crate::loopback::{LoopbackServer, Reply};
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use https_step_core::{RawResponse, Signer, StepConfig, parse_step_config};
use https_step_host::{HostLimits, PreparedStep, StepRuntime, Tenant};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Sequential requests per latency measurement.
    pub iterations: usize,
    /// Requests per throughput measurement.
    pub throughput_requests: usize,
    /// Concurrencies to measure throughput at.
    pub concurrencies: &'static [usize],
    /// Runs in flight for the RSS measurement.
    pub in_flight: usize,
    /// Size of the request and response bodies whose peak guest memory is
    /// measured (the default `max_request_body_bytes` in the full run).
    pub file_bytes: usize,
    /// Pages of 1,000 small items one paginated step fetches for the memory measurement.
    pub pages: u32,
}

impl Settings {
    /// The full benchmark (a few minutes on 2 cores).
    pub const FULL: Settings = Settings {
        iterations: 2000,
        throughput_requests: 4000,
        concurrencies: &[1, 16, 64],
        in_flight: 1000,
        file_bytes: 16 << 20,
        pages: 1000,
    };
    /// A smoke run that proves every part still works (seconds).
    pub const QUICK: Settings = Settings {
        iterations: 20,
        throughput_requests: 64,
        concurrencies: &[1, 16],
        in_flight: 32,
        file_bytes: 1 << 20,
        pages: 20,
    };
}

fn step_json(origin: &str) -> String {
    serde_json::json!({
        "url": format!("{origin}/v1/orders"),
        "method": "POST",
        "headers": [{"key": "X-Request-Source", "value": "bench"}],
        "body": {"json": {"sku": "BOOK-42", "quantity": 2, "customer": {"id": "c_1", "name": "Ada Lovelace"}, "tags": ["gift", "priority"]}},
        "signing": {"secret": "bench_signing_secret", "scheme": "persona"},
        "expected_status": [201],
        "timeout_ms": 10000
    })
    .to_string()
}

fn config(origin: &str) -> Result<StepConfig> {
    parse(&step_json(origin))
}

/// The native side's connections: hyper-util's pool, keeping idle
/// connections as the tenant it is compared with does.
struct NativePool(Client<HttpConnector, Full<Bytes>>);

impl NativePool {
    fn new(limits: &HostLimits) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(limits.max_idle_connections_per_origin)
            .pool_idle_timeout(Duration::from_millis(limits.idle_connection_ms))
            .build(connector);
        NativePool(client)
    }
}

/// The step's work done natively, for one request.
async fn native_once(config: &StepConfig, signer: &Signer, pool: &NativePool) -> Result<()> {
    let mut request = https_step_core::request::prepare(config, &mut |n| vec![0x5a; n])
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    request.headers.extend(signer.sign(&request.body, now, ""));
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.as_str())
        .header(http::header::CONTENT_LENGTH, request.body.len());
    for kv in &request.headers {
        builder = builder.header(kv.key.as_str(), kv.value.as_str());
    }
    let response = pool
        .0
        .request(builder.body(Full::new(Bytes::from(request.body.to_vec())))?)
        .await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    let (_, json, error) = https_step_core::response::decode(
        RawResponse {
            status,
            headers,
            body,
        },
        https_step_core::ResponseFormat::Auto,
    );
    if status != 201 || error.is_some() || json.is_none() {
        bail!("native request failed: {status} {error:?}");
    }
    Ok(())
}

async fn component_once(
    runtime: &StepRuntime,
    tenant: &Arc<Tenant>,
    step: &PreparedStep,
) -> Result<()> {
    match runtime
        .run_prepared(tenant, step, "{}", Arc::new(|_: &str| {}))
        .await?
    {
        Ok(_) => Ok(()),
        Err(f) => bail!("component run failed: {}", f.error),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Calls `f` `n` times in sequence; with `into`, records how long each took.
async fn timed<F, Fut>(n: usize, f: &mut F, mut into: Option<&mut Vec<Duration>>) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        if let Some(samples) = into.as_deref_mut() {
            samples.push(t.elapsed());
        }
    }
    Ok(())
}

/// Latency samples of `n` sequential calls after a warm-up, sorted.
async fn latencies<F, Fut>(n: usize, mut f: F) -> Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    timed((n / 10).max(3), &mut f, None).await?;
    let mut samples = Vec::with_capacity(n);
    timed(n, &mut f, Some(&mut samples)).await?;
    samples.sort();
    Ok(samples)
}

/// Minor page faults of this process per call of `f`, over `n` calls after
/// a warm-up.
async fn faults_per_call<F, Fut>(n: usize, mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    timed((n / 10).max(3), &mut f, None).await?;
    let before = crate::shared::minor_faults();
    timed(n, &mut f, None).await?;
    Ok(crate::shared::minor_faults().saturating_sub(before) as f64 / n.max(1) as f64)
}

/// Latency samples of `a` and `b`, `n` each, measured in alternating rounds
/// so that drift in the machine's load affects both alike; sorted.
async fn paired<A, FA, B, FB>(
    n: usize,
    mut a: A,
    mut b: B,
) -> Result<(Vec<Duration>, Vec<Duration>)>
where
    A: FnMut() -> FA,
    FA: std::future::Future<Output = Result<()>>,
    B: FnMut() -> FB,
    FB: std::future::Future<Output = Result<()>>,
{
    const ROUNDS: usize = 10;
    let per_round = n.div_ceil(ROUNDS);
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // One unrecorded round to warm up, then the measured ones.
    timed(per_round, &mut a, None).await?;
    timed(per_round, &mut b, None).await?;
    for _ in 0..ROUNDS {
        timed(per_round, &mut a, Some(&mut xs)).await?;
        timed(per_round, &mut b, Some(&mut ys)).await?;
    }
    xs.sort();
    ys.sort();
    Ok((xs, ys))
}

/// Latency samples of both sides with everything of a run on one thread: a
/// current-thread tokio runtime holding the server, the native client and
/// the component's runs (called in place), as in a host that runs one such
/// runtime per core and each tenant's runs on its core.
fn per_core_latencies(
    runtime: Arc<StepRuntime>,
    n: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let core = std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        tokio.block_on(async {
            let server = LoopbackServer::http_unrecorded(Arc::new(|_: &_| {
                Reply::json(201, &serde_json::json!({"id": "ord_1"}))
            }))
            .await?;
            let config = config(&server.origin())?;
            let step = prepared(&config)?;
            let signer = Signer::new(config.signing.as_ref().context("signing")?)
                .map_err(|p| anyhow::anyhow!("{p:?}"))?;
            let tenant = Arc::new(Tenant::builder("core").allow(&server.origin())?.build()?);
            let pool = NativePool::new(&HostLimits::default());
            paired(
                n,
                || native_once(&config, &signer, &pool),
                || component_once(&runtime, &tenant, &step),
            )
            .await
        })
    });
    core.join()
        .map_err(|_| anyhow::anyhow!("the per-core measurement panicked"))?
}

/// Runs only the component path `n` times (for profiling with perf), with
/// the component in `wasm` if given (e.g. a guest built with its name
/// section kept, so the profile names guest functions).
pub async fn component_loop(n: usize, wasm: Option<Vec<u8>>) -> Result<()> {
    let server = LoopbackServer::http_unrecorded(Arc::new(|_: &_| {
        Reply::json(201, &serde_json::json!({"id": "ord_1"}))
    }))
    .await?;
    let mut builder =
        StepRuntime::builder().cache_dir(std::env::temp_dir().join("https-step-profile-cache"));
    if let Some(wasm) = wasm {
        builder = builder.component(wasm);
    }
    let runtime = builder.build()?;
    let tenant = Arc::new(Tenant::builder("p").allow(&server.origin())?.build()?);
    let step = prepared(&config(&server.origin())?)?;
    let t = Instant::now();
    for _ in 0..n {
        component_once(&runtime, &tenant, &step).await?;
    }
    eprintln!(
        "{n} runs, {:.0} us each",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

/// Runs the benchmark and returns the report.
pub async fn run(settings: Settings) -> Result<String> {
    let mut out = String::new();
    let (file_bytes, pages) = (settings.file_bytes, settings.pages);
    let server = LoopbackServer::http_unrecorded(Arc::new(move |r: &crate::loopback::Recorded| {
        if r.path() == "/list" {
            // Page n of `pages`: 1,000 items like {"id":123456,"ok":true}; then empty.
            let page: u32 = r
                .query()
                .and_then(|q| q.strip_prefix("page=")?.parse().ok())
                .unwrap_or(1);
            let items: Vec<serde_json::Value> = if page <= pages {
                (0..1000)
                    .map(|i| serde_json::json!({"id": page * 1000 + i, "ok": true}))
                    .collect()
            } else {
                Vec::new()
            };
            let headers = vec![("content-type".into(), "application/json".into())];
            return Reply::Respond {
                status: 200,
                headers,
                body: serde_json::json!({"data": items}).to_string().into_bytes(),
                delay_ms: 0,
            };
        }
        if r.path() == "/file" {
            let headers = vec![("content-type".into(), "application/pdf".into())];
            return Reply::Respond {
                status: 200,
                headers,
                body: vec![0x5a; file_bytes],
                delay_ms: 0,
            };
        }
        let delay_ms = if r.path() == "/slow/v1/orders" {
            2000
        } else {
            0
        };
        Reply::Respond {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id":"ord_1001","status":"created"}"#.to_vec(),
            delay_ms,
        }
    }))
    .await?;
    let origin = server.origin();
    let config = config(&origin)?;
    let step = prepared(&config)?;
    let signer = Signer::new(config.signing.as_ref().context("signing")?)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let tenant_for = |i: usize| -> Result<Arc<Tenant>> {
        Ok(Arc::new(
            Tenant::builder(format!("tenant-{i}"))
                .allow(&origin)?
                .build()?,
        ))
    };

    let cache = std::env::temp_dir().join(format!("https-step-bench-cache-{}", std::process::id()));
    let t = Instant::now();
    let compiled = StepRuntime::builder()
        .max_concurrency(settings.in_flight.max(64))
        .cache_dir(&cache)
        .build()?;
    let compile_time = t.elapsed();
    drop(compiled);
    let t = Instant::now();
    let runtime = Arc::new(
        StepRuntime::builder()
            .max_concurrency(settings.in_flight.max(64))
            .per_core(
                std::env::var("BENCH_PER_CORE")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )
            .cache_dir(&cache)
            .build()?,
    );
    let cached_time = t.elapsed();
    // The same from the cache with a one-run pool and no pooling: what is left
    // when reserving the pool is taken out (deserialize, linker, InstancePre).
    let t = Instant::now();
    drop(
        StepRuntime::builder()
            .max_concurrency(1)
            .pooling(false)
            .cache_dir(&cache)
            .build()?,
    );
    let small_time = t.elapsed();
    // The instance-reuse experiment (opt-in in the product).
    let reusing = Arc::new(
        StepRuntime::builder()
            .reuse_instances(1)
            .cache_dir(&cache)
            .build()?,
    );
    let _ = std::fs::remove_dir_all(&cache);

    let _ = writeln!(
        out,
        "https-step benchmark ({} CPUs, {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if settings.iterations < 100 {
            "quick"
        } else {
            "full"
        }
    );
    let _ = writeln!(
        out,
        "guest component: {} bytes",
        https_step_guest_artifact::WASM.len()
    );
    let _ = writeln!(
        out,
        "runtime build: compile {:.0} ms, from the on-disk cache {:.1} ms (ratio {:.0}x); from the cache without the pool {:.1} ms",
        compile_time.as_secs_f64() * 1e3,
        cached_time.as_secs_f64() * 1e3,
        compile_time.as_secs_f64() / cached_time.as_secs_f64().max(1e-9),
        small_time.as_secs_f64() * 1e3
    );

    // Instantiate: pooling + InstancePre vs on-demand.
    let inst = latencies(settings.iterations, || async {
        runtime.probe().await.map_err(Into::into)
    })
    .await?;
    let on_demand = StepRuntime::builder().pooling(false).build()?;
    let inst_od = latencies(settings.iterations, || async {
        on_demand.probe().await.map_err(Into::into)
    })
    .await?;
    drop(on_demand);
    let _ = writeln!(
        out,
        "instantiate p50: pooling {:.1} us, on-demand {:.1} us; pooling p99 {:.1} us (p99/p50 {:.2})",
        us(percentile(&inst, 0.5)),
        us(percentile(&inst_od, 0.5)),
        us(percentile(&inst, 0.99)),
        us(percentile(&inst, 0.99)) / us(percentile(&inst, 0.5))
    );

    // Latency, one request at a time: with keep-alive on both sides (the
    // default), then with a new connection per request on both sides.
    let tenant = tenant_for(0)?;
    let native_pool = NativePool::new(&HostLimits::default());
    let (native, component) = paired(
        settings.iterations,
        || native_once(&config, &signer, &native_pool),
        || component_once(&runtime, &tenant, &step),
    )
    .await?;
    let (n50, n99, c50, c99) = (
        percentile(&native, 0.5),
        percentile(&native, 0.99),
        percentile(&component, 0.5),
        percentile(&component, 0.99),
    );
    let _ = writeln!(
        out,
        "latency native:    p50 {:.0} us, p99 {:.0} us (keep-alive)",
        us(n50),
        us(n99)
    );
    let _ = writeln!(
        out,
        "latency component: p50 {:.0} us, p99 {:.0} us (keep-alive)",
        us(c50),
        us(c99)
    );
    let _ = writeln!(
        out,
        "latency ratio component/native: p50 {:.2}x, p99 {:.2}x",
        us(c50) / us(n50),
        us(c99) / us(n99)
    );
    // Where a component run's time goes: a fresh instance, then the same
    // instance + the config lowered into the guest and validated (no I/O).
    let validated = latencies(settings.iterations, || async {
        let problems = runtime.validate(&config).await?;
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("bench config invalid: {problems:?}")
        }
    })
    .await?;
    let (i50, v50) = (us(percentile(&inst, 0.5)), us(percentile(&validated, 0.5)));
    let _ = writeln!(
        out,
        "component p50 breakdown: instantiate {i50:.0} us, + config into the guest and validated {:.0} us, + rendering, signing, the exchange through wasi:http and the outcome back {:.0} us",
        v50 - i50,
        us(c50) - v50
    );
    let (native_core, component_core) = per_core_latencies(runtime.clone(), settings.iterations)?;
    let (n50, n99, c50, c99) = (
        percentile(&native_core, 0.5),
        percentile(&native_core, 0.99),
        percentile(&component_core, 0.5),
        percentile(&component_core, 0.99),
    );
    let _ = writeln!(
        out,
        "per-core latency: native p50 {:.0} us, p99 {:.0} us; component p50 {:.0} us, p99 {:.0} us (one current-thread runtime)",
        us(n50),
        us(n99),
        us(c50),
        us(c99)
    );
    let _ = writeln!(
        out,
        "per-core latency ratio component/native: p50 {:.2}x, p99 {:.2}x",
        us(c50) / us(n50),
        us(c99) / us(n99)
    );
    let no_reuse = HostLimits {
        max_idle_connections_per_origin: 0,
        ..HostLimits::default()
    };
    let fresh_pool = NativePool::new(&no_reuse);
    let fresh_tenant = Arc::new(
        Tenant::builder("fresh")
            .allow(&origin)?
            .limits(no_reuse)
            .build()?,
    );
    let (native_fresh, component_fresh) = paired(
        settings.iterations,
        || native_once(&config, &signer, &fresh_pool),
        || component_once(&runtime, &fresh_tenant, &step),
    )
    .await?;
    // Page faults of a warm run: each run gets a fresh instance in a pool
    // slot; a slot reset that leaves its pages resident costs none.
    let component_faults = faults_per_call(settings.iterations / 4, || {
        component_once(&runtime, &tenant, &step)
    })
    .await?;
    let native_faults = faults_per_call(settings.iterations / 4, || {
        native_once(&config, &signer, &native_pool)
    })
    .await?;
    let _ = writeln!(
        out,
        "page faults per run: {component_faults:.1} (component, warm; native {native_faults:.1})"
    );
    let (f50, g50) = (
        percentile(&native_fresh, 0.5),
        percentile(&component_fresh, 0.5),
    );
    let _ = writeln!(
        out,
        "latency with a new connection per request: native p50 {:.0} us, component p50 {:.0} us (ratio {:.2}x)",
        us(f50),
        us(g50),
        us(g50) / us(f50)
    );

    // Throughput at several concurrencies, one tenant per worker.
    for &c in settings.concurrencies {
        let per = (settings.throughput_requests / c).max(1);
        let tenants: Vec<Arc<Tenant>> = (0..c).map(tenant_for).collect::<Result<_>>()?;
        let t = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..c {
            let (config, signer) = (config.clone(), signer.clone());
            workers.push(tokio::spawn(async move {
                // One pool per worker, as each component worker is its own tenant.
                let pool = NativePool::new(&HostLimits::default());
                for _ in 0..per {
                    native_once(&config, &signer, &pool).await?;
                }
                anyhow::Ok(())
            }));
        }
        for w in workers {
            w.await??;
        }
        let native_rps = (per * c) as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut workers = Vec::new();
        for tenant in tenants {
            let (runtime, step) = (runtime.clone(), step.clone());
            workers.push(tokio::spawn(async move {
                for _ in 0..per {
                    component_once(&runtime, &tenant, &step).await?;
                }
                anyhow::Ok(())
            }));
        }
        for w in workers {
            w.await??;
        }
        let component_rps = (per * c) as f64 / t.elapsed().as_secs_f64();
        let _ = writeln!(
            out,
            "throughput at {c:>2} concurrent tenants: native {native_rps:.0} req/s, component {component_rps:.0} req/s (ratio {:.2}x)",
            component_rps / native_rps
        );
    }

    // Experiment: one kept instance per tenant instead of a fresh one per
    // run (gives up isolation between a tenant's runs; off by default).
    let reuse_tenant = tenant_for(1)?;
    let (native, component) = paired(
        settings.iterations,
        || native_once(&config, &signer, &native_pool),
        || component_once(&reusing, &reuse_tenant, &step),
    )
    .await?;
    let (n50, c50) = (percentile(&native, 0.5), percentile(&component, 0.5));
    let _ = writeln!(
        out,
        "experiment, instance reuse (opt-in): latency native p50 {:.0} us, component p50 {:.0} us (ratio {:.2}x), {} instances for {} runs",
        us(n50),
        us(c50),
        us(c50) / us(n50),
        reusing.instantiations(),
        component.len() + settings.iterations.div_ceil(10)
    );
    // Peak RSS with many runs in flight against a slow upstream.
    let slow = prepared(&config_for_slow(&origin)?)?;
    let baseline = crate::shared::status_kib("VmRSS:");
    let tenants: Vec<Arc<Tenant>> = (0..settings.in_flight)
        .map(tenant_for)
        .collect::<Result<_>>()?;
    let t = Instant::now();
    let (results, peak) = peak_rss_during(async {
        let runs: Vec<_> = tenants
            .into_iter()
            .map(|tenant| {
                let (runtime, slow) = (runtime.clone(), slow.clone());
                tokio::spawn(async move { component_once(&runtime, &tenant, &slow).await })
            })
            .collect();
        let mut results = Vec::new();
        for r in runs {
            results.push(r.await?);
        }
        anyhow::Ok(results)
    })
    .await;
    let results = results?;
    let wall = t.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} in-flight runs failed: {:?}",
            settings.in_flight,
            results.iter().find(|r| r.is_err())
        );
    }
    let _ = writeln!(
        out,
        "{} runs in flight against a 2 s upstream: peak RSS {:.0} MiB ({:+.0} MiB over the {:.0} MiB before), all done in {:.1} s",
        settings.in_flight,
        peak as f64 / 1024.0,
        (peak as f64 - baseline as f64) / 1024.0,
        baseline as f64 / 1024.0,
        wall.as_secs_f64()
    );
    guest_memory(&mut out, &origin, settings.file_bytes).await?;
    pagination_memory(&mut out, &origin, settings.pages).await?;
    Ok(out)
}

/// Runs `work` while sampling this process's RSS every 20 ms: its result
/// and the peak RSS in KiB.
async fn peak_rss_during<T>(work: impl Future<Output = T>) -> (T, u64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(crate::shared::status_kib("VmRSS:"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let result = work.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0);
    (result, peak)
}

/// The smallest tenant `memory_bytes` under which `config` still runs,
/// bisected to the 64 KiB page (wasm memory only grows, so that is the run's
/// high-water mark), with `limits` otherwise.
async fn peak_guest_memory(
    runtime: &StepRuntime,
    origin: &str,
    config: &StepConfig,
    context: &str,
    limits: &HostLimits,
    label: &str,
) -> Result<usize> {
    const PAGE: usize = 64 << 10;
    let run = |memory: usize| {
        let limits = HostLimits {
            memory_bytes: memory,
            ..limits.clone()
        };
        async move {
            let tenant = Arc::new(
                Tenant::builder("memory")
                    .allow(origin)?
                    .limits(limits)
                    .build()?,
            );
            anyhow::Ok(
                runtime
                    .run(&tenant, config, context, Arc::new(|_: &str| {}))
                    .await,
            )
        }
    };
    let fits = |memory: usize| async move { anyhow::Ok(matches!(run(memory).await?, Ok(Ok(_)))) };
    let (mut low, mut high) = (0, 1 << 30);
    match run(high).await? {
        Ok(Ok(_)) => {}
        Ok(Err(failure)) => bail!(
            "{label}: fails even with 1 GiB of guest memory: {}",
            failure.error
        ),
        Err(e) => bail!("{label}: fails even with 1 GiB of guest memory: {e}"),
    }
    while high - low > PAGE {
        let mid = (low + high) / 2 / PAGE * PAGE;
        if fits(mid).await? {
            high = mid
        } else {
            low = mid
        }
    }
    Ok(high)
}

/// Guest and host memory of one paginated step over `pages` pages of 1,000
/// small items each (issue 16: bounded by the items' bytes, not a parsed
/// value per item).
async fn pagination_memory(out: &mut String, origin: &str, pages: u32) -> Result<()> {
    let runtime = StepRuntime::builder()
        .max_concurrency(2)
        .max_memory_bytes(1 << 30)
        .build()?;
    let config = parse(&serde_json::json!({
        "url": format!("{origin}/list"),
        "pagination": {"next": {"page": {"param": "page"}}, "items": "/data", "max_pages": pages},
        "max_total_response_bytes": 1u64 << 30
    }).to_string())?;
    let limits = HostLimits {
        max_requests_per_run: pages + 1,
        ..HostLimits::default()
    };
    let guest = peak_guest_memory(&runtime, origin, &config, "{}", &limits, "pagination").await?;
    let tenant = Arc::new(
        Tenant::builder("pages")
            .allow(origin)?
            .limits(limits)
            .build()?,
    );
    let before = crate::shared::status_kib("VmRSS:");
    let t = Instant::now();
    let (result, peak) =
        peak_rss_during(runtime.run(&tenant, &config, "{}", Arc::new(|_: &str| {}))).await;
    let wall = t.elapsed();
    let items = match result? {
        Ok(outcome) => outcome.response.and_then(|r| r.json).map_or(0, |j| j.len()),
        Err(f) => bail!("pagination run failed: {}", f.error),
    };
    let _ = writeln!(
        out,
        "one paginated step, {pages} pages x 1000 items ({:.1} MiB of items JSON): peak guest memory {:.1} MiB, host RSS peak {:+.0} MiB over the {:.0} MiB before, {:.1} s",
        items as f64 / 1048576.0,
        guest as f64 / 1048576.0,
        (peak as f64 - before as f64) / 1024.0,
        before as f64 / 1024.0,
        wall.as_secs_f64()
    );
    Ok(())
}

/// Peak guest linear memory of runs that move a file of `bytes` bytes: the
/// smallest tenant `memory_bytes` under which the run still succeeds, found
/// by bisection to the 64 KiB page (wasm memory only grows, so the limit a
/// run fits in is its high-water mark).
async fn guest_memory(out: &mut String, origin: &str, bytes: usize) -> Result<()> {
    use base64::Engine as _;
    let runtime = StepRuntime::builder()
        .max_concurrency(2)
        .max_memory_bytes(1 << 30)
        .build()?;
    let file = base64::engine::general_purpose::STANDARD.encode(vec![0xa5u8; bytes]);
    // A multipart part leaves room for the framing under max_request_body_bytes.
    let part = base64::engine::general_purpose::STANDARD.encode(vec![0xa5u8; bytes - 4096]);
    let context =
        |file: &str| serde_json::json!({"steps": {"download": {"body_base64": file}}}).to_string();
    let upload = |body: serde_json::Value| serde_json::json!({"url": format!("{origin}/v1/orders"), "method": "POST", "body": body, "expected_status": [201]});
    let scenarios = [
        ("small JSON POST (the benchmark's step)", parse(&step_json(origin))?, "{}".to_string()),
        ("binary body, base64 in the config", parse(&upload(serde_json::json!({"binary": {"base64": file}})).to_string())?, "{}".to_string()),
        ("binary body, base64 from the context", parse(&upload(serde_json::json!({"binary": {"base64": "{{ steps.download.body_base64 }}"}})).to_string())?, context(&file)),
        (
            "multipart file part from the context",
            parse(&upload(serde_json::json!({"multipart": [{"name": "f", "filename": "f.pdf", "base64": "{{ steps.download.body_base64 }}"}]})).to_string())?,
            context(&part),
        ),
        (
            "binary response (response_format binary)",
            parse(&serde_json::json!({"url": format!("{origin}/file"), "response_format": "binary", "max_response_bytes": bytes}).to_string())?,
            "{}".to_string(),
        ),
    ];
    let _ = writeln!(
        out,
        "peak guest memory with a {:.0} MiB file (bisected tenant memory_bytes):",
        bytes as f64 / 1048576.0
    );
    for (label, config, context) in &scenarios {
        let high = peak_guest_memory(
            &runtime,
            origin,
            config,
            context,
            &HostLimits::default(),
            label,
        )
        .await?;
        let _ = writeln!(
            out,
            "  {label}: {:.1} MiB ({:.2}x the file)",
            high as f64 / 1048576.0,
            high as f64 / bytes as f64
        );
    }
    Ok(())
}

fn prepared(config: &StepConfig) -> Result<PreparedStep> {
    PreparedStep::new(config).map_err(|p| anyhow::anyhow!("bench config: {p:?}"))
}

fn parse(json: &str) -> Result<StepConfig> {
    let parsed = parse_step_config(json);
    if !parsed.problems.is_empty() {
        bail!("bench config: {:?}", parsed.problems);
    }
    Ok(parsed.config)
}

fn config_for_slow(origin: &str) -> Result<StepConfig> {
    config(&format!("{origin}/slow"))
}
