//! Loading the component once and running it, one fresh `Store` per call.
//!
//! Resource control, per run: the pooling allocator (slots sized from the
//! runtime's maximum concurrency; a full runtime answers [`Error::Busy`]),
//! `StoreLimits` for memory, a CPU budget counted in epoch ticks while guest
//! code runs (one ticker thread per engine), a wall-clock deadline around the
//! whole call, a bounded resource table and hostcall fuel. No filesystem,
//! sockets, environment or inherited stdio are granted.

use crate::egress::Egress;
use crate::progress::ProgressStream;
pub use crate::progress::ProgressFn;
use crate::tenant::Tenant;
use crate::Error;
use limits::{CpuExhausted, RunLimiter, classify};
use https_step_core::{Mirror, Problem, StepConfig, StepFailure, StepOutcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub(crate) mod bindings;
mod cache;
mod keyvalue;
mod limits;
mod slots;

use bindings::workflow::https_step::types as wit;
use bindings::{HttpsStep, HttpsStepPre};

// The model ↔ WIT conversions, generated from the model's one declaration.
https_step_core::mirror_wit_types!(wit);

/// Epoch tick period: the granularity of the CPU budget.
const TICK: Duration = Duration::from_millis(10);
/// Most resources (streams, requests, pollables…) a run may hold at once.
const MAX_RESOURCES: usize = 10_000;
/// Bytes the host may copy on the guest's behalf in one host call
/// (GHSA-243v: bounds host allocations made for the guest).
const HOSTCALL_FUEL: usize = 64 * 1024 * 1024;
/// Largest table of a run (wasmtime's `StoreLimits` default).
const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The state of one run's `Store`.
struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: Egress,
    limits: RunLimiter,
    /// The tenant's `wasi:keyvalue` store (OAuth 2.0 tokens), shared by its runs.
    store: Arc<crate::store::TenantStore>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.egress }
    }
}

impl bindings::workflow::https_step::types::Host for RunState {}


/// Stops the engine's epoch ticker when the runtime is dropped.
struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A loaded step component, ready to run many times concurrently.
///
/// Compiling happens once, in [`RuntimeBuilder::build`] (or not at all when
/// the on-disk cache has it); each [`StepRuntime::run`] gets its own `Store`
/// and instance from the pool.
pub struct StepRuntime {
    engine: Engine,
    pre: HttpsStepPre<RunState>,
    /// Used for calls that make no requests (`validate`): denies everything.
    offline: Arc<Tenant>,
    slots: Arc<tokio::sync::Semaphore>,
    max_concurrency: usize,
    slot_wait: Duration,
    max_memory_bytes: usize,
    /// Instances created so far.
    instantiations: AtomicU64,
    _ticker: Ticker,
}

/// Configures a [`StepRuntime`].
pub struct RuntimeBuilder {
    wasm: Option<Vec<u8>>,
    max_concurrency: usize,
    slot_wait: Duration,
    max_memory_bytes: usize,
    cache_dir: Option<PathBuf>,
    pooling: bool,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            wasm: None,
            max_concurrency: 64,
            slot_wait: Duration::ZERO,
            max_memory_bytes: 256 * 1024 * 1024,
            cache_dir: None,
            pooling: true,
        }
    }
}

impl RuntimeBuilder {
    /// Uses other component bytes than the embedded build of `guest/`
    /// (default: [`https_step_guest_artifact::WASM`]).
    pub fn component(mut self, wasm: Vec<u8>) -> Self {
        self.wasm = Some(wasm);
        self
    }

    /// Most runs at once; the pooling allocator is sized for it and a run
    /// beyond it fails with [`Error::Busy`]. Default: 64.
    pub fn max_concurrency(mut self, runs: usize) -> Self {
        self.max_concurrency = runs.max(1);
        self
    }

    /// How long a run waits for a slot when all `max_concurrency` are taken
    /// before it fails with [`Error::Busy`]; waiting runs are served in
    /// arrival order. Default: zero (fail at once), so a host that can route
    /// a run elsewhere learns at once; a host that queues (the Restate
    /// service) waits instead.
    pub fn slot_wait(mut self, wait: Duration) -> Self {
        self.slot_wait = wait;
        self
    }

    /// Largest linear memory of any run (tenants' `memory_bytes` are capped by
    /// it). Default: 256 MiB.
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// Keeps the compiled component in `dir`, keyed by the component's
    /// SHA-256 and the engine's settings, so later processes load it in about
    /// a millisecond instead of compiling. Default: no cache.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Uses the pooling allocator (default: on) or allocates each instance
    /// on demand. The pool reserves `max_concurrency` memory slots of
    /// virtual address space up front; hosts where that reservation is not
    /// possible (a low `ulimit -v`, strict overcommit) turn it off and pay a
    /// slower instantiation instead (BENCHMARKS.md gives both figures).
    pub fn pooling(mut self, on: bool) -> Self {
        self.pooling = on;
        self
    }

    /// Creates the engine, loads (or compiles) the component and links WASI.
    pub fn build(self) -> Result<StepRuntime, Error> {
        let load = |e: wasmtime::Error| Error::load("loading the component", e);
        let pool = slots::pooling(self.max_concurrency, self.max_memory_bytes);
        let mut config = Config::new();
        if self.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(load)?;
        let wasm = self.wasm.as_deref().unwrap_or(https_step_guest_artifact::WASM);
        let component = match &self.cache_dir {
            Some(dir) => cache::cached_component(&engine, wasm, dir)?,
            None => Component::new(&engine, wasm).map_err(load)?,
        };
        let mut linker = Linker::<RunState>::new(&engine);
        // Rust's std for wasip2 imports wasi:cli, wasi:filesystem and more; they
        // are linked but the WasiCtx grants nothing (no preopens, env, args,
        // sockets or name lookup).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(load)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(load)?;
        bindings::wasi::keyvalue::store::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |s| s).map_err(load)?;
        bindings::wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |s| s).map_err(load)?;
        bindings::workflow::https_step::types::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(load)?;
        let pre = HttpsStepPre::new(linker.instantiate_pre(&component).map_err(load)?).map_err(load)?;
        let offline = Arc::new(Tenant::builder("offline").build()?);
        let stop = Arc::new(AtomicBool::new(false));
        {
            // One ticker per engine, not per run.
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("https-step-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::Load { doing: "starting the epoch ticker", source: Box::new(e) })?;
        }
        Ok(StepRuntime {
            engine,
            pre,
            offline,
            slots: Arc::new(tokio::sync::Semaphore::new(self.max_concurrency)),
            max_concurrency: self.max_concurrency,
            slot_wait: self.slot_wait,
            max_memory_bytes: self.max_memory_bytes,
            instantiations: AtomicU64::new(0),
            _ticker: Ticker(stop),
        })
    }
}

impl StepRuntime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The engine, for hosts that embed other components next to this one.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn instantiate(&self, tenant: Arc<Tenant>, progress: ProgressFn) -> Result<(Store<RunState>, HttpsStep), Error> {
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(ProgressStream::new(progress.clone()));
        let limits = &tenant.limits;
        let store_limits = RunLimiter { memory_bytes: limits.memory_bytes.min(self.max_memory_bytes), table_elements: MAX_TABLE_ELEMENTS };
        let cpu_ticks = (limits.cpu_ms / TICK.as_millis() as u64).max(1);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = RunState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table,
            store: tenant.store.clone(),
            egress: Egress::new(tenant, progress),
            limits: store_limits,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // The callback runs only when guest code is executing as a tick passes,
        // so the count approximates the guest's CPU time; time blocked in I/O
        // adds at most one tick per wait. Yielding lets other runs proceed.
        let mut used = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            used += 1;
            if used > cpu_ticks {
                Err(wasmtime::Error::new(CpuExhausted))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let instance = self.pre.instantiate_async(&mut store).await.map_err(|e| classify(e, "instantiating"))?;
        Ok((store, instance))
    }

    /// A readiness check: takes a slot, instantiates the component in a
    /// fresh store and drops both, as every run does before the step starts.
    /// It fails as a run would ([`Error::Busy`], a load or trap error), so a
    /// host can probe a runtime before routing runs to it; it costs one
    /// instantiation (counted by [`StepRuntime::instantiations`]).
    pub async fn probe(&self) -> Result<(), Error> {
        let _slot = self.slot().await?;
        self.instantiate(self.offline.clone(), Arc::new(|_: &str| {})).await.map(drop)
    }

    /// Every problem of `config`, as the component reports them.
    pub async fn validate(&self, config: &StepConfig) -> Result<Vec<Problem>, Error> {
        let _slot = self.slot().await?;
        let (mut store, instance) = self.instantiate(self.offline.clone(), Arc::new(|_: &str| {})).await?;
        let problems = instance
            .workflow_https_step_step()
            .call_validate(&mut store, &config.clone().mirror())
            .await
            .map_err(|e| classify(e, "validating"))?;
        Ok(problems.mirror())
    }

    /// Component instances created so far, one per [`StepRuntime::run`],
    /// [`StepRuntime::validate`] or [`StepRuntime::probe`] call (for hosts'
    /// metrics).
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    /// Runs holding a slot right now (0 when idle: nothing leaked).
    pub fn runs_in_flight(&self) -> usize {
        self.max_concurrency - self.slots.available_permits()
    }

    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        let busy = Error::Busy(self.max_concurrency);
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(slot),
            Err(_) if self.slot_wait.is_zero() => Err(busy),
            Err(_) => tokio::time::timeout(self.slot_wait, self.slots.clone().acquire_owned()).await.ok().and_then(Result::ok).ok_or(busy),
        }
    }

    /// Runs `config` for `tenant` with the workflow `context` (JSON text).
    /// `progress` receives a line per attempt and per host-side event.
    ///
    /// The outer `Result` is the host's (the component could not run, hit a
    /// limit, or the runtime is busy); the inner one is the step's outcome.
    pub async fn run(
        &self,
        tenant: &Arc<Tenant>,
        config: &StepConfig,
        context: &str,
        progress: ProgressFn,
    ) -> Result<Result<StepOutcome, StepFailure>, Error> {
        let config = config.clone().mirror();
        let result = self
            .call(tenant, progress, "running", async |store, step| step.call_run(store, &config, context).await)
            .await?;
        Ok(result.map(Mirror::mirror).map_err(Mirror::mirror))
    }

    /// Takes a slot, instantiates the component for `tenant` in a fresh
    /// store and makes one call of the step interface, within the tenant's
    /// `max_run_ms`. Dropping the call on timeout drops its store: a guest
    /// blocked on I/O is cancelled with it.
    async fn call<T>(
        &self,
        tenant: &Arc<Tenant>,
        progress: ProgressFn,
        doing: &'static str,
        call: impl AsyncFnOnce(&mut Store<RunState>, &bindings::exports::workflow::https_step::step::Guest) -> wasmtime::Result<T>,
    ) -> Result<T, Error> {
        use tracing::Instrument;
        let _slot = self.slot().await?;
        let max_run = Duration::from_millis(tenant.limits.max_run_ms);
        let work = async {
            let (mut store, instance) = self.instantiate(tenant.clone(), progress).await?;
            call(&mut store, instance.workflow_https_step_step()).await.map_err(|e| classify(e, doing))
        };
        let span = tracing::debug_span!("step_run", tenant = %tenant.id);
        tokio::time::timeout(max_run, work.instrument(span))
            .await
            .map_err(|_| Error::ResourceLimit(format!("the run took longer than max_run_ms ({} ms)", tenant.limits.max_run_ms)))?
    }

    /// Runs one attempt of `config` (README "Durable runs"): with no
    /// `state`, the first; with the state of an
    /// [`AttemptResult::Wait`](https_step_core::AttemptResult::Wait), the
    /// next, after the caller has waited. Between calls nothing is held: no
    /// instance, slot or connection. Errors as for [`StepRuntime::run`].
    pub async fn run_attempt(
        &self,
        tenant: &Arc<Tenant>,
        config: &StepConfig,
        context: &str,
        state: Option<&https_step_core::RunState>,
        progress: ProgressFn,
    ) -> Result<https_step_core::AttemptResult, Error> {
        let (config, state) = (config.clone().mirror(), state.cloned().mirror());
        let result = self
            .call(tenant, progress, "running an attempt", async |store, step| {
                step.call_run_attempt(store, &config, context, state.as_ref()).await
            })
            .await?;
        Ok(result.mirror())
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_instantiates_once_and_a_full_runtime_is_busy() {
        let runtime = StepRuntime::builder().max_concurrency(1).build().expect("the embedded component loads");
        runtime.probe().await.expect("a fresh runtime is ready");
        runtime.probe().await.expect("and stays ready");
        assert_eq!(runtime.instantiations(), 2);
        assert_eq!(runtime.runs_in_flight(), 0, "a probe gives its slot back");
        let _held = runtime.slot().await.expect("the one slot");
        assert!(matches!(runtime.probe().await, Err(Error::Busy(1))));
        assert_eq!(runtime.instantiations(), 2, "a busy runtime instantiates nothing");
    }

    #[tokio::test]
    async fn with_a_slot_wait_a_run_waits_for_the_slot_a_finished_one_gives_back() {
        let runtime = StepRuntime::builder().max_concurrency(1).slot_wait(Duration::from_secs(30)).build().expect("the embedded component loads");
        let held = runtime.slot().await.expect("the one slot");
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (probed, ()) = tokio::join!(runtime.probe(), release);
        probed.expect("the probe waited for the slot");
        let short = StepRuntime::builder().max_concurrency(1).slot_wait(Duration::from_millis(20)).build().expect("loads");
        let _held = short.slot().await.expect("the one slot");
        assert!(matches!(short.probe().await, Err(Error::Busy(1))), "no slot within the wait");
    }
}
