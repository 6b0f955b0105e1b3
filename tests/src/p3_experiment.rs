//! Experiment (feature `p3-experiment`, BENCHMARKS.md "wasi:http 0.3"): the
//! cost of one request through wasi:http 0.2 against the same request
//! through wasi:http 0.3, wasmtime 48's experimental `p3`.
//!
//! Two tiny `wasi:cli` commands (`tests/probes/p2`, `tests/probes/p3`) POST
//! the benchmark's JSON body to a loopback server and read the response.
//! Each run gets a fresh instance from a pooling allocator, as a step run
//! does, and both send through the same keep-alive client behind the same
//! `send_request` hook, so the difference is wasi:http's own machinery: 0.2
//! spawns a task for the hook's future and one for the response body per
//! request (`p2/http_impl.rs`); 0.3 polls them in the store's own task.
//! Run with `cargo run --release -p https-step-tests --features
//! p3-experiment --example https-step-p3`.

use crate::loopback::{LoopbackServer, Reply};
use anyhow::{Context as _, Result, bail};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

const P2: &[u8] = include_bytes!(env!("HTTPS_STEP_PROBE_P2_WASM"));
const P3: &[u8] = include_bytes!(env!("HTTPS_STEP_PROBE_P3_WASM"));

/// Sends through one keep-alive client, for both probes alike.
#[derive(Clone)]
struct Pooled(Client<HttpConnector, WasiBody>);

impl WasiHttpHooks for Pooled {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let client = self.0.clone();
        Box::new(async move {
            let response = client
                .request(request)
                .await
                .map_err(|e| Error::InternalError(Some(e.to_string())))?;
            let response = response.map(|body| {
                body.map_err(|e| Error::InternalError(Some(e.to_string())))
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Pooled,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Both commands, loaded once.
struct Probes {
    engine: Engine,
    p2: wasmtime_wasi::p2::bindings::CommandPre<Ctx>,
    p3: wasmtime_wasi::p3::bindings::CommandPre<Ctx>,
    hooks: Pooled,
    authority: String,
}

impl Probes {
    fn new(authority: String) -> Result<Probes> {
        let mut pool = PoolingAllocationConfig::new();
        // Slots reset as the product's are (host-harness `runtime/slots.rs`).
        pool.total_component_instances(8)
            .total_core_instances(64)
            .total_memories(32)
            .total_tables(64)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(256 << 10);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .wasm_component_model_async(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::<Ctx>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        let p2 = wasmtime_wasi::p2::bindings::CommandPre::new(
            linker.instantiate_pre(&Component::new(&engine, P2)?)?,
        )?;
        let p3 = wasmtime_wasi::p3::bindings::CommandPre::new(
            linker.instantiate_pre(&Component::new(&engine, P3)?)?,
        )?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let hooks = Pooled(Client::builder(TokioExecutor::new()).build(connector));
        Ok(Probes {
            engine,
            p2,
            p3,
            hooks,
            authority,
        })
    }

    fn store(&self) -> Store<Ctx> {
        let wasi = WasiCtx::builder()
            .env("PROBE_AUTHORITY", &self.authority)
            .build();
        Store::new(
            &self.engine,
            Ctx {
                table: ResourceTable::new(),
                wasi,
                http: WasiHttpCtx::new(),
                hooks: self.hooks.clone(),
            },
        )
    }

    async fn run_p2(&self) -> Result<()> {
        let mut store = self.store();
        let command = self.p2.instantiate_async(&mut store).await?;
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .await?
            .map_err(|()| anyhow::anyhow!("the 0.2 probe failed"))
    }

    /// A fresh instance of the 0.2 probe, not run: what every run pays
    /// before its request.
    async fn instantiate_only(&self) -> Result<()> {
        let mut store = self.store();
        self.p2.instantiate_async(&mut store).await?;
        Ok(())
    }

    async fn run_p3(&self) -> Result<()> {
        let mut store = self.store();
        let command = self.p3.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async |store| command.wasi_cli_run().call_run(store).await)
            .await??
            .map_err(|()| anyhow::anyhow!("the 0.3 probe failed"))
    }
}

/// p50 and p99 of `n` runs of each probe, and of `n` instantiations, in
/// alternating rounds.
async fn compare(probes: &Probes, n: usize) -> Result<[(Duration, Duration); 3]> {
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..11 {
        for _ in 0..n / 10 {
            for (i, samples) in samples.iter_mut().enumerate() {
                let t = Instant::now();
                match i {
                    0 => probes.run_p2().await?,
                    1 => probes.run_p3().await?,
                    _ => probes.instantiate_only().await?,
                }
                if round > 0 {
                    samples.push(t.elapsed());
                }
            }
        }
    }
    Ok(samples.map(|mut v| {
        v.sort();
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        (at(0.5), at(0.99))
    }))
}

/// Runs the experiment on a multi-thread and on a current-thread runtime;
/// the report.
pub fn run(n: usize) -> Result<String> {
    let mut out = String::new();
    for (label, runtime) in [
        (
            "2-thread runtime",
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?,
        ),
        (
            "current-thread runtime",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        ),
    ] {
        let [(p2_50, p2_99), (p3_50, p3_99), (i50, _)] = runtime.block_on(async {
            let server = LoopbackServer::http_unrecorded(Arc::new(|_: &_| {
                Reply::json(201, &serde_json::json!({"id": "ord_1"}))
            }))
            .await?;
            let authority = server
                .origin()
                .strip_prefix("http://")
                .context("an http origin")?
                .to_string();
            let probes = Probes::new(authority)?;
            compare(&probes, n).await
        })?;
        if p3_50.is_zero() {
            bail!("no samples");
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let _ = writeln!(
            out,
            "wasi:http 0.2 vs 0.3, one POST per fresh instance ({label}): 0.2 p50 {:.0} us, p99 {:.0} us; 0.3 p50 {:.0} us, p99 {:.0} us (0.3/0.2: {:.2}x); instantiating alone p50 {:.0} us",
            us(p2_50),
            us(p2_99),
            us(p3_50),
            us(p3_99),
            us(p3_50) / us(p2_50),
            us(i50)
        );
    }
    Ok(out)
}
