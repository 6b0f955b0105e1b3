//! Loading the component once and running it, one fresh `Store` per call.
//!
//! Resource control, per run: the pooling allocator (slots sized from the
//! runtime's maximum concurrency; a full runtime answers [`Error::Busy`]),
//! `StoreLimits` for memory, a CPU budget counted in epoch ticks while guest
//! code runs (one ticker thread per engine), a wall-clock deadline around the
//! whole call, a bounded resource table and hostcall fuel. No filesystem,
//! sockets, environment or inherited stdio are granted.

use crate::Error;
use crate::egress::RunEgress;
use crate::error::{BusyCause, LimitKind};
pub use crate::progress::ProgressFn;
use crate::progress::ProgressStream;
use crate::tenant::Tenant;
use https_step_core::{Mirror, Problem, StepConfig, StepFailure, StepOutcome};
use limits::{CpuExhausted, RunLimiter, classify};
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
mod cores;
mod fair;
mod keyvalue;
mod limits;
mod slots;

use bindings::exports::workflow::https_step::step::Guest;
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
struct StoreData {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: RunEgress,
    limits: RunLimiter,
    /// The tenant's `wasi:keyvalue` store (OAuth 2.0 tokens), shared by its runs.
    store: Arc<crate::store::TenantStore>,
    /// The guest's stderr (the run's progress lines).
    progress: ProgressStream,
    /// Epoch ticks the guest has run this run, and how many it may.
    cpu_used: u64,
    cpu_budget: u64,
}

impl StoreData {
    /// Points a kept instance's state at its tenant's next run.
    fn next_run(&mut self, progress: ProgressFn) {
        self.progress.reset(progress.clone());
        self.egress.next_run(progress);
        self.cpu_used = 0;
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl bindings::workflow::https_step::types::Host for StoreData {}

/// A tenant's share of `slots` when its policy sets none: half, at least one,
/// so no single tenant can hold every slot of a shared runtime.
fn default_share(slots: usize) -> usize {
    (slots / 2).max(1)
}

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
    shared: Arc<Shared>,
    /// The per-core runtimes, in per-core mode.
    cores: Option<cores::Cores>,
}

/// What every call shares, wherever it runs.
struct Shared {
    engine: Engine,
    pre: HttpsStepPre<StoreData>,
    /// Used for calls that make no requests (`validate`): denies everything.
    offline: Arc<Tenant>,
    slots: Arc<fair::Slots>,
    slot_wait: Duration,
    max_memory_bytes: usize,
    /// Instances created so far.
    instantiations: AtomicU64,
    /// Instances kept for their tenant's next run, when reuse is on.
    warm: Option<Warm>,
    _ticker: Ticker,
}

/// An instance with its store.
type Instance = (Store<StoreData>, HttpsStep);

/// Instances kept between runs of one tenant ([`RuntimeBuilder::reuse_instances`]).
struct Warm {
    per_tenant: usize,
    /// Most kept instances in all; the pool has room for them besides
    /// `max_concurrency` running ones.
    cap: usize,
    idle: std::sync::Mutex<std::collections::HashMap<usize, Vec<Instance>>>,
}

impl Warm {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<usize, Vec<Instance>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, tenant: usize) -> Option<Instance> {
        self.lock().get_mut(&tenant)?.pop()
    }

    /// Keeps `instance` for the tenant's next run, if there is room.
    fn keep(&self, tenant: usize, instance: Instance) {
        let mut idle = self.lock();
        let total: usize = idle.values().map(Vec::len).sum();
        let list = idle.entry(tenant).or_default();
        if total < self.cap && list.len() < self.per_tenant {
            list.push(instance);
        }
    }
}

/// A step config made ready for many runs: converted once into the form the
/// component receives, so each [`StepRuntime::run_prepared`] lowers it into
/// the guest without cloning or converting it again. Cheap to clone.
#[derive(Clone)]
pub struct PreparedStep {
    config: Arc<wit::StepConfig>,
}

impl PreparedStep {
    /// Prepares `config` when it is valid (every problem otherwise, as
    /// [`https_step_core::validate`] finds them; the step checks again in
    /// every run, with its templates rendered).
    pub fn new(config: &StepConfig) -> Result<PreparedStep, Vec<Problem>> {
        let problems = https_step_core::validate(config);
        if problems.is_empty() {
            Ok(PreparedStep::unchecked(config))
        } else {
            Err(problems)
        }
    }

    fn unchecked(config: &StepConfig) -> PreparedStep {
        PreparedStep {
            config: Arc::new(config.clone().mirror()),
        }
    }
}

/// The default run slots of a runtime ([`RuntimeBuilder::max_concurrency`]).
/// A step's work is I/O: a run waiting 30 s on a slow API (an LLM, a report)
/// holds its slot all that time, so slots must be plentiful, and what bounds
/// them is memory. A run waiting on an upstream costs about 290 KiB of RSS
/// (BENCHMARKS.md: 1,000 runs in flight, +280 MiB), so 512 slots, all busy,
/// cost about 145 MiB; the pool reserves address space for them, not memory.
pub const DEFAULT_MAX_CONCURRENCY: usize = 512;

/// Configures a [`StepRuntime`].
pub struct RuntimeBuilder {
    wasm: Option<Vec<u8>>,
    max_concurrency: usize,
    slot_wait: Duration,
    max_memory_bytes: usize,
    cache_dir: Option<PathBuf>,
    pooling: bool,
    per_core: usize,
    reuse: usize,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            wasm: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            slot_wait: Duration::ZERO,
            max_memory_bytes: 256 * 1024 * 1024,
            cache_dir: None,
            pooling: true,
            per_core: 0,
            reuse: 0,
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
    /// beyond it fails with [`Error::Busy`]. Default:
    /// [`DEFAULT_MAX_CONCURRENCY`].
    pub fn max_concurrency(mut self, runs: usize) -> Self {
        self.max_concurrency = runs.max(1);
        self
    }

    /// How long a run waits for a slot when all `max_concurrency` are taken
    /// (or its tenant holds its `max_concurrent_runs`) before it fails with
    /// [`Error::Busy`]; freed slots go to the tenants with waiting runs in
    /// turn, each tenant's runs in arrival order. Default: zero (fail at once), so a host that can route
    /// a run elsewhere learns at once; a host that queues (the Restate
    /// service) waits instead.
    pub fn slot_wait(mut self, wait: Duration) -> Self {
        self.slot_wait = wait;
        self
    }

    /// Runs steps on `threads` single-threaded tokio runtimes that this
    /// runtime owns, one per core, each tenant pinned to one of them (see
    /// `runtime/cores.rs`): a run and all its I/O stay on one thread. Calls
    /// may come from any runtime; a call made on the tenant's own core runs
    /// in place. 0 runs every call on the caller's runtime instead.
    /// Default: 0.
    pub fn per_core(mut self, threads: usize) -> Self {
        self.per_core = threads;
        self
    }

    /// Keeps up to `per_tenant` instances of a tenant after its runs end and
    /// runs its next steps in them instead of fresh ones — an experiment
    /// (BENCHMARKS.md), off by default because it gives up isolation between
    /// the runs of one tenant: a kept instance's memory still holds what the
    /// last run left (its context, secrets, bodies: freed, not cleared), so a
    /// fault in the step could show one workflow's data to another of the
    /// same tenant, and one run's heap growth or corruption carries over.
    /// An instance that trapped or was cut off is never kept; tenants never
    /// share one. The pool gets room for `max_concurrency` kept instances
    /// besides the running ones. Default: 0 (a fresh instance per run).
    pub fn reuse_instances(mut self, per_tenant: usize) -> Self {
        self.reuse = per_tenant;
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
        let warm = (self.reuse > 0).then(|| Warm {
            per_tenant: self.reuse,
            cap: self.max_concurrency,
            idle: Default::default(),
        });
        let kept = warm.as_ref().map_or(0, |w| w.cap);
        let pool = slots::pooling(self.max_concurrency + kept, self.max_memory_bytes);
        let mut config = Config::new();
        // The step is a WASI 0.2 component: no async component model. Said
        // explicitly, since a build that compiles wasmtime's
        // `component-model-async` in (the test suite's `p3-experiment`)
        // would otherwise turn it on by default.
        config.concurrency_support(false);
        if self.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(load)?;
        let wasm = self
            .wasm
            .as_deref()
            .unwrap_or(https_step_guest_artifact::WASM);
        let component = match &self.cache_dir {
            Some(dir) => cache::cached_component(&engine, wasm, dir)?,
            None => Component::new(&engine, wasm).map_err(load)?,
        };
        let mut linker = Linker::<StoreData>::new(&engine);
        // Rust's std for wasip2 imports wasi:cli, wasi:filesystem and more; they
        // are linked but the WasiCtx grants nothing (no preopens, env, args,
        // sockets or name lookup).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(load)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(load)?;
        bindings::wasi::keyvalue::store::add_to_linker::<_, HasSelf<StoreData>>(&mut linker, |s| s)
            .map_err(load)?;
        bindings::wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<StoreData>>(
            &mut linker,
            |s| s,
        )
        .map_err(load)?;
        bindings::workflow::https_step::types::add_to_linker::<_, HasSelf<StoreData>>(
            &mut linker,
            |s| s,
        )
        .map_err(load)?;
        let pre =
            HttpsStepPre::new(linker.instantiate_pre(&component).map_err(load)?).map_err(load)?;
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
                .map_err(|e| Error::Load {
                    doing: "starting the epoch ticker",
                    source: Box::new(e),
                })?;
        }
        let cores = match self.per_core {
            0 => None,
            n => Some(cores::Cores::start(n).map_err(|e| Error::Load {
                doing: "starting the per-core runtimes",
                source: Box::new(e),
            })?),
        };
        let shared = Shared {
            engine,
            pre,
            offline,
            slots: fair::Slots::new(self.max_concurrency),
            slot_wait: self.slot_wait,
            max_memory_bytes: self.max_memory_bytes,
            instantiations: AtomicU64::new(0),
            warm,
            _ticker: Ticker(stop),
        };
        Ok(StepRuntime {
            shared: Arc::new(shared),
            cores,
        })
    }
}

/// One call of the step interface, owning what it needs, so that it can run
/// on another thread (per-core mode).
trait StepCall: Send + 'static {
    type Output: Send + 'static;
    /// What the step is doing, for errors (`the step crashed while …`).
    const DOING: &'static str;
    fn call<'a>(
        self,
        store: &'a mut Store<StoreData>,
        step: &'a Guest,
    ) -> impl Future<Output = wasmtime::Result<Self::Output>> + Send + 'a;
}

/// An instance and nothing else ([`StepRuntime::probe`]).
struct Probe;

impl StepCall for Probe {
    type Output = ();
    const DOING: &'static str = "instantiating";
    async fn call(self, _: &mut Store<StoreData>, _: &Guest) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// `validate`.
struct Validate(wit::StepConfig);

impl StepCall for Validate {
    type Output = Vec<wit::Problem>;
    const DOING: &'static str = "validating";
    async fn call(
        self,
        store: &mut Store<StoreData>,
        step: &Guest,
    ) -> wasmtime::Result<Self::Output> {
        step.call_validate(store, &self.0).await
    }
}

/// `run`.
struct Run {
    step: PreparedStep,
    context: String,
}

impl StepCall for Run {
    type Output = Result<wit::StepOutcome, wit::StepFailure>;
    const DOING: &'static str = "running";
    async fn call(
        self,
        store: &mut Store<StoreData>,
        step: &Guest,
    ) -> wasmtime::Result<Self::Output> {
        step.call_run(store, &self.step.config, &self.context).await
    }
}

/// `run-attempt`.
struct Attempt {
    config: wit::StepConfig,
    context: String,
    state: Option<wit::RunState>,
}

impl StepCall for Attempt {
    type Output = wit::AttemptResult;
    const DOING: &'static str = "running an attempt";
    async fn call(
        self,
        store: &mut Store<StoreData>,
        step: &Guest,
    ) -> wasmtime::Result<Self::Output> {
        step.call_run_attempt(store, &self.config, &self.context, self.state.as_ref())
            .await
    }
}

impl Shared {
    async fn instantiate(
        &self,
        tenant: Arc<Tenant>,
        progress: ProgressFn,
    ) -> Result<Instance, Error> {
        let stderr = ProgressStream::new(progress.clone());
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        let limits = tenant.limits();
        let store_limits = RunLimiter {
            memory_bytes: limits.memory_bytes.min(self.max_memory_bytes),
            table_elements: MAX_TABLE_ELEMENTS,
        };
        let cpu_ticks = (limits.cpu_ms / TICK.as_millis() as u64).max(1);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = StoreData {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table,
            store: tenant.store().clone(),
            egress: tenant.run_egress(progress),
            limits: store_limits,
            progress: stderr,
            cpu_used: 0,
            cpu_budget: cpu_ticks,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // The callback runs only when guest code is executing as a tick passes,
        // so the count approximates the guest's CPU time; time blocked in I/O
        // adds at most one tick per wait. Yielding lets other runs proceed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            state.cpu_used += 1;
            if state.cpu_used > state.cpu_budget {
                Err(wasmtime::Error::new(CpuExhausted))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(e, "instantiating"))?;
        Ok((store, instance))
    }

    /// A run slot for `tenant`, within its share of them (README "Tenant
    /// sandbox", fair run slots).
    async fn slot(&self, tenant: &Tenant) -> Result<fair::Slot, Error> {
        let slots = self.slots.capacity();
        let limits = tenant.limits();
        let share = limits.max_concurrent_runs.unwrap_or(default_share(slots));
        self.slots
            .acquire(
                tenant.number(),
                share,
                limits.max_queued_runs,
                self.slot_wait,
            )
            .await
            .map_err(|refused| Error::Busy {
                tenant: tenant.id().to_string(),
                slots,
                share: share.clamp(1, slots),
                cause: match refused {
                    fair::Refused::Full => BusyCause::Full,
                    fair::Refused::Share => BusyCause::TenantShare,
                    fair::Refused::QueueFull => BusyCause::QueueFull(limits.max_queued_runs),
                },
            })
    }

    /// Takes a slot, instantiates the component for `tenant` in a fresh
    /// store and makes one call of the step interface, within the tenant's
    /// `max_run_ms`. Dropping the call on timeout drops its store: a guest
    /// blocked on I/O is cancelled with it.
    async fn call<C: StepCall>(
        self: Arc<Self>,
        tenant: Arc<Tenant>,
        progress: ProgressFn,
        call: C,
    ) -> Result<C::Output, Error> {
        use tracing::Instrument;
        let _slot = self.slot(&tenant).await?;
        let max_run = Duration::from_millis(tenant.limits().max_run_ms);
        let span = tracing::debug_span!("step_run", tenant = tenant.id());
        let work = async {
            let kept = self.warm.as_ref().and_then(|w| w.take(tenant.number()));
            let (mut store, instance) = match kept {
                Some((mut store, instance)) => {
                    store.data_mut().next_run(progress);
                    store.set_epoch_deadline(1);
                    (store, instance)
                }
                None => self.instantiate(tenant.clone(), progress).await?,
            };
            let result = call
                .call(&mut store, instance.workflow_https_step_step())
                .await
                .map_err(|e| classify(e, C::DOING));
            if let (Some(warm), Ok(_)) = (&self.warm, &result) {
                warm.keep(tenant.number(), (store, instance));
            }
            result
        };
        tokio::time::timeout(max_run, work.instrument(span))
            .await
            .map_err(|_| Error::ResourceLimit {
                kind: LimitKind::RunTime,
                detail: format!(
                    "the run took longer than max_run_ms ({} ms)",
                    tenant.limits().max_run_ms
                ),
            })?
    }
}

impl StepRuntime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The engine, for hosts that embed other components next to this one.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Makes `call` for `tenant`: on the tenant's core in per-core mode,
    /// else here.
    async fn call<C: StepCall>(
        &self,
        tenant: &Arc<Tenant>,
        progress: ProgressFn,
        call: C,
    ) -> Result<C::Output, Error> {
        let work = self.shared.clone().call(tenant.clone(), progress, call);
        match &self.cores {
            None => work.await,
            Some(cores) => cores.run(tenant.number(), work).await.unwrap_or_else(|e| {
                Err(Error::Load {
                    doing: "running the step on its core's thread",
                    source: Box::new(e),
                })
            }),
        }
    }

    /// A readiness check: takes a slot, instantiates the component in a
    /// fresh store and drops both, as every run does before the step starts.
    /// It fails as a run would ([`Error::Busy`], a load or trap error), so a
    /// host can probe a runtime before routing runs to it; it costs one
    /// instantiation (counted by [`StepRuntime::instantiations`]).
    pub async fn probe(&self) -> Result<(), Error> {
        self.call(&self.shared.offline, Arc::new(|_: &str| {}), Probe)
            .await
    }

    /// Every problem of `config`, as the component reports them.
    pub async fn validate(&self, config: &StepConfig) -> Result<Vec<Problem>, Error> {
        let problems = self
            .call(
                &self.shared.offline,
                Arc::new(|_: &str| {}),
                Validate(config.clone().mirror()),
            )
            .await?;
        Ok(problems.mirror())
    }

    /// Component instances created so far, one per [`StepRuntime::run`],
    /// [`StepRuntime::validate`] or [`StepRuntime::probe`] call (fewer with
    /// [`RuntimeBuilder::reuse_instances`]), for hosts' metrics.
    pub fn instantiations(&self) -> u64 {
        self.shared.instantiations.load(Ordering::Relaxed)
    }

    /// Runs holding a slot right now (0 when idle: nothing leaked).
    pub fn runs_in_flight(&self) -> usize {
        self.shared.slots.in_use()
    }

    /// Runs `config` for `tenant` with the workflow `context` (JSON text).
    /// `progress` receives a line per attempt and per host-side event.
    ///
    /// The outer `Result` is the host's (the component could not run, hit a
    /// limit, or the runtime is busy); the inner one is the step's outcome.
    /// A host that runs one config many times prepares it once and calls
    /// [`StepRuntime::run_prepared`].
    pub async fn run(
        &self,
        tenant: &Arc<Tenant>,
        config: &StepConfig,
        context: &str,
        progress: ProgressFn,
    ) -> Result<Result<StepOutcome, StepFailure>, Error> {
        self.run_prepared(tenant, &PreparedStep::unchecked(config), context, progress)
            .await
    }

    /// [`StepRuntime::run`] with a [`PreparedStep`].
    pub async fn run_prepared(
        &self,
        tenant: &Arc<Tenant>,
        step: &PreparedStep,
        context: &str,
        progress: ProgressFn,
    ) -> Result<Result<StepOutcome, StepFailure>, Error> {
        let result = self
            .call(
                tenant,
                progress,
                Run {
                    step: step.clone(),
                    context: context.to_string(),
                },
            )
            .await?;
        Ok(result.map(Mirror::mirror).map_err(Mirror::mirror))
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
        let call = Attempt {
            config: config.clone().mirror(),
            context: context.to_string(),
            state: state.cloned().mirror(),
        };
        Ok(self.call(tenant, progress, call).await?.mirror())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_instantiates_once_and_a_full_runtime_is_busy() {
        let runtime = StepRuntime::builder()
            .max_concurrency(1)
            .build()
            .expect("the embedded component loads");
        runtime.probe().await.expect("a fresh runtime is ready");
        runtime.probe().await.expect("and stays ready");
        assert_eq!(runtime.instantiations(), 2);
        assert_eq!(runtime.runs_in_flight(), 0, "a probe gives its slot back");
        let _held = runtime
            .shared
            .slot(&runtime.shared.offline)
            .await
            .expect("the one slot");
        assert!(matches!(
            runtime.probe().await,
            Err(Error::Busy {
                slots: 1,
                cause: BusyCause::TenantShare,
                ..
            })
        ));
        assert_eq!(
            runtime.instantiations(),
            2,
            "a busy runtime instantiates nothing"
        );
    }

    #[tokio::test]
    async fn with_a_slot_wait_a_run_waits_for_the_slot_a_finished_one_gives_back() {
        let runtime = StepRuntime::builder()
            .max_concurrency(1)
            .slot_wait(Duration::from_secs(30))
            .build()
            .expect("the embedded component loads");
        let held = runtime
            .shared
            .slot(&runtime.shared.offline)
            .await
            .expect("the one slot");
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (probed, ()) = tokio::join!(runtime.probe(), release);
        probed.expect("the probe waited for the slot");
        let short = StepRuntime::builder()
            .max_concurrency(1)
            .slot_wait(Duration::from_millis(20))
            .build()
            .expect("loads");
        let _held = short
            .shared
            .slot(&short.shared.offline)
            .await
            .expect("the one slot");
        assert!(
            matches!(short.probe().await, Err(Error::Busy { slots: 1, .. })),
            "no slot within the wait"
        );
    }
}
