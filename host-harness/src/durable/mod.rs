//! The step as a [Restate](https://restate.dev) service (feature `restate`;
//! README "Durable runs"): retries that survive crashes of the engine and of
//! this service, and waits that hold nothing.
//!
//! # How to use
//! 1. Build a [`StepRuntime`] with a [`slot_wait`](crate::RuntimeBuilder::slot_wait)
//!    (the service queues attempts rather than refusing them) and load the
//!    tenants: [`DurableService::from_policy_dir`] reads every `*.toml` policy
//!    of a directory.
//! 2. [`DurableService::serve`] on a listener; register its URL with
//!    `restate-server` (`POST :9070/deployments {"uri": "http://host:port"}`).
//! 3. Platforms invoke `HttpsStep/run` through Restate's ingress with
//!    `{"tenant", "step", "context"}` and their own idempotency key, and
//!    attach to the result: the same output JSON as `https-step run`.
//!
//! Each attempt is one [`StepRuntime::run_attempt`] inside a journaled
//! `ctx.run`; each wait the step asks for is a durable `ctx.sleep`. The guest
//! makes every retry decision; the engine only records, sleeps and calls
//! again. While a run waits it holds no instance, no runtime slot and no
//! connection of this process: a restarted (or another) service process
//! continues it from the journal, which replays the attempts already made
//! instead of sending them again.
//!
//! ```no_run
//! # async fn example() -> Result<(), https_step_host::Error> {
//! use https_step_host::{StepRuntime, durable::DurableService};
//! let runtime = StepRuntime::builder().slot_wait(std::time::Duration::from_secs(600)).build()?;
//! let limits = std::sync::Arc::new(https_step_host::durable::RestateLimits::new("http://127.0.0.1:8080")?);
//! let service = DurableService::from_policy_dir(runtime, std::path::Path::new("policies"), Some(limits))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9080").await.expect("port 9080 is free");
//! service.serve(listener).await;
//! # Ok(()) }
//! ```

mod limits;

pub use limits::RestateLimits;

use crate::egress::limits::SharedLimits;
use crate::error::PolicyProblem;
use crate::output::{host_error_json, step_result_json};
use crate::{Error, StepRuntime, Tenant};
use https_step_core::{AttemptResult, RunState, StepFailure, parse_step_config, seed_state};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body a durable run accepts: a tenant's
/// `max_response_bytes` is lowered to it. Every attempt's result is one
/// journal entry, and Restate refuses an entry over its `message-size-limit`
/// (32 MiB by default). As JSON a body grows at most 6.5-fold: a JSON body
/// is kept twice, as `body` (quotes and backslashes escaped: ≤ 2×) and as
/// `json` (numbers re-written, `1e15` as `1000000000000000.0`: ≤ 4.5×); a
/// text body once (control characters as `\u00XX`: ≤ 6×); a binary one as
/// base64 (4/3×). 4 MiB therefore stays under 26 MiB, headers included.
pub const DURABLE_MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// How long an invocation may show no progress before Restate suspends it
/// (the service's `inactivity_timeout`; the server's default is 1 min). A run
/// that waits longer than this is suspended: it then holds no invoker slot
/// of the engine and no stream or task of this service, and the engine
/// invokes it again, replaying its journal, when the wait is over. An
/// attempt in progress is not cut short by it.
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(5);

/// The input of `HttpsStep/run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The tenant whose policy applies: the `tenant` of one of the service's
    /// policy files.
    pub tenant: String,
    /// The step config, as `https-step run` reads it.
    pub step: Box<RawValue>,
    /// The workflow context. Default: `{}`.
    #[serde(default)]
    pub context: Option<Box<RawValue>>,
}

/// The output of `HttpsStep/stats`: what this service process holds now.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stats {
    /// Runs holding a runtime slot (an attempt in progress).
    pub runs_in_flight: usize,
    /// Component instances created since the process started.
    pub instantiations: u64,
    /// Tenants the service knows.
    pub tenants: usize,
}

/// What one journaled attempt recorded: the wait before the next one and
/// the state it needs (never a secret: the step redacts it), or the step's
/// output JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Journaled {
    Wait { wait_ms: u64, state: RunState },
    Done(Box<RawValue>),
}

/// The step as a Restate service: one runtime, the tenants of its policy
/// files.
pub struct DurableService {
    runtime: Arc<StepRuntime>,
    tenants: HashMap<String, Arc<Tenant>>,
    abort_timeout: Duration,
}

impl DurableService {
    /// A service running `tenants` on `runtime`. Each tenant's
    /// `max_response_bytes` is lowered to [`DURABLE_MAX_RESPONSE_BYTES`]; two
    /// tenants with one id are an error.
    pub fn new(
        runtime: StepRuntime,
        tenants: impl IntoIterator<Item = Tenant>,
    ) -> Result<Self, Error> {
        let mut by_id = HashMap::new();
        let mut longest_attempt = 0;
        for mut tenant in tenants {
            tenant.cap_response_bytes(DURABLE_MAX_RESPONSE_BYTES);
            longest_attempt = longest_attempt.max(tenant.limits().max_run_ms);
            let id = tenant.id().to_string();
            if by_id.insert(id.clone(), Arc::new(tenant)).is_some() {
                return Err(Error::policy(PolicyProblem::DuplicateTenant(id)));
            }
        }
        // Restate asks an invocation that shows no progress for a while to
        // suspend and aborts it `abort_timeout` later; an attempt in progress
        // shows none until it ends, and lasts at most its tenant's max_run_ms.
        let abort_timeout = Duration::from_millis(longest_attempt) + Duration::from_secs(60);
        Ok(DurableService {
            runtime: Arc::new(runtime),
            tenants: by_id,
            abort_timeout,
        })
    }

    /// A service for every `*.toml` tenant policy in `dir` (README "Tenant
    /// sandbox"; a policy's `tenant` names it in requests). With `limits`,
    /// the tenants' rate limits and back-off windows live there — for
    /// several service processes of one deployment, [`RestateLimits`] —
    /// else each in this process.
    pub fn from_policy_dir(
        runtime: StepRuntime,
        dir: &Path,
        limits: Option<Arc<dyn SharedLimits>>,
    ) -> Result<Self, Error> {
        let unreadable = |e| Error::policy_from(PolicyProblem::UnreadableDirectory(dir.into()), e);
        let mut tenants = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                let mut tenant = Tenant::from_policy_file(&path)?;
                if let Some(limits) = &limits {
                    tenant = tenant.shared_limits(limits.clone());
                }
                tenants.push(tenant.build()?);
            }
        }
        if tenants.is_empty() {
            return Err(Error::policy(PolicyProblem::EmptyDirectory(dir.into())));
        }
        DurableService::new(runtime, tenants)
    }

    /// Tenants the service knows.
    pub fn tenants(&self) -> usize {
        self.tenants.len()
    }

    /// Serves the Restate protocol (HTTP/2) on `listener` until the process
    /// is interrupted (SIGINT).
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        use restate_sdk::service::IntoServiceDefinition as _;
        let options = restate_sdk::endpoint::ServiceOptions::new()
            .inactivity_timeout(INACTIVITY_TIMEOUT)
            .abort_timeout(self.abort_timeout);
        let endpoint = Endpoint::builder()
            .bind(self.into_service_definition().options(options))
            .bind(limits::LimitsObject)
            .build();
        HttpServer::new(endpoint).serve(listener).await;
    }
}

/// One attempt of `config`, as the journal records it. A full runtime is an
/// error Restate retries (the attempt was not made); any other host failure
/// ends the run with its output, as `https-step run` reports it.
async fn attempt(
    runtime: &StepRuntime,
    tenant: &Arc<Tenant>,
    config: &https_step_core::StepConfig,
    context: &str,
    state: &RunState,
    invocation: &str,
) -> HandlerResult<Json<Journaled>> {
    let progress: crate::ProgressFn = {
        let prefix = format!("{invocation} ({}): ", tenant.id());
        Arc::new(move |line: &str| eprintln!("{prefix}{line}"))
    };
    let output = match runtime
        .run_attempt(tenant, config, context, Some(state), progress)
        .await
    {
        Ok(AttemptResult::Wait(wait)) => {
            return Ok(Json(Journaled::Wait {
                wait_ms: wait.wait_ms,
                state: wait.state,
            }));
        }
        Ok(AttemptResult::Done(result)) => step_result_json(&result),
        Err(busy @ Error::Busy { .. }) => return Err(busy.into()),
        Err(e) => host_error_json(&e),
    };
    Ok(Json(Journaled::Done(raw(output)?)))
}

/// Output JSON text as a JSON value the SDK passes on unchanged.
fn raw(output: String) -> Result<Box<RawValue>, TerminalError> {
    RawValue::from_string(output).map_err(TerminalError::from_error)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// The generated ingress clients stay inside the crate: platforms call the
// service over Restate's HTTP ingress, from any language.
#[restate_sdk::service(name = "HttpsStep", client_visibility = "pub(crate)")]
impl DurableService {
    /// Runs one step to its end, durably: `{"tenant", "step", "context"}` in,
    /// the output JSON of `https-step run` out. An unknown tenant or an
    /// unusable request is a terminal error (400); an invalid step config is
    /// the step's own `invalid-config` output.
    #[handler]
    async fn run(
        &self,
        mut ctx: Context<'_>,
        request: Json<RunRequest>,
    ) -> HandlerResult<Json<Box<RawValue>>> {
        let request = request.into_inner();
        let Some(tenant) = self.tenants.get(&request.tenant).cloned() else {
            return Err(TerminalError::new_with_code(
                400,
                format!(
                    "no policy of this service names the tenant {:?}",
                    request.tenant
                ),
            )
            .into());
        };
        let config = match https_step_core::validate::ready(parse_step_config(request.step.get())) {
            Ok(config) => Arc::new(config),
            Err(problems) => {
                return Ok(Json(raw(step_result_json(&Err(
                    StepFailure::invalid_config(problems),
                )))?));
            }
        };
        let context: Arc<str> = request
            .context
            .as_deref()
            .map_or("{}", RawValue::get)
            .into();
        // The run's identifiers come from the engine's deterministic
        // randomness, so an attempt re-executed after a crash (its result was
        // never recorded) sends the same idempotency key and message id.
        let (key, id) = (ctx.rand_uuid().into_bytes(), ctx.rand_uuid().into_bytes());
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(&key);
        random[16..].copy_from_slice(&id);
        let started = ctx.run(|| async { Ok(unix_ms()) }).name("start").await?;
        let mut state = seed_state(random, started);
        let invocation = ctx.invocation_id().to_string();
        let mut number = 0u32;
        loop {
            number = number.saturating_add(1);
            let (runtime, tenant, config, context, invocation) = (
                self.runtime.clone(),
                tenant.clone(),
                config.clone(),
                context.clone(),
                invocation.clone(),
            );
            let current = state.clone();
            let journaled = ctx
                .run(move || async move {
                    attempt(&runtime, &tenant, &config, &context, &current, &invocation).await
                })
                .name(format!("attempt {number}"))
                .await?
                .into_inner();
            match journaled {
                Journaled::Wait {
                    wait_ms,
                    state: next,
                } => {
                    ctx.sleep(Duration::from_millis(wait_ms)).await?;
                    state = next;
                }
                Journaled::Done(output) => return Ok(Json(output)),
            }
        }
    }

    /// What this service process holds now (`runs_in_flight` is 0 while every
    /// run waits).
    #[handler]
    async fn stats(&self, _ctx: Context<'_>) -> HandlerResult<Json<Stats>> {
        Ok(Json(Stats {
            runs_in_flight: self.runtime.runs_in_flight(),
            instantiations: self.runtime.instantiations(),
            tenants: self.tenants.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_get_the_journal_cap_and_one_id_each() {
        let runtime = || {
            StepRuntime::builder()
                .max_concurrency(1)
                .build()
                .expect("the embedded component loads")
        };
        let big = Tenant::builder("acme")
            .limits(crate::HostLimits {
                max_response_bytes: 1 << 30,
                ..Default::default()
            })
            .build()
            .expect("builds");
        let small = Tenant::builder("beta")
            .limits(crate::HostLimits {
                max_response_bytes: 1024,
                ..Default::default()
            })
            .build()
            .expect("builds");
        let service = DurableService::new(runtime(), [big, small]).expect("two tenants");
        assert_eq!(
            service.tenants["acme"].limits().max_response_bytes,
            DURABLE_MAX_RESPONSE_BYTES
        );
        assert_eq!(
            service.tenants["beta"].limits().max_response_bytes,
            1024,
            "a lower cap stays"
        );
        assert_eq!(
            service.abort_timeout,
            Duration::from_millis(900_000 + 60_000)
        );
        let twice = [
            Tenant::builder("acme").build().expect("builds"),
            Tenant::builder("acme").build().expect("builds"),
        ];
        let err = DurableService::new(runtime(), twice)
            .err()
            .expect("one id twice");
        assert!(
            matches!(&err, Error::Policy { problem: PolicyProblem::DuplicateTenant(id), .. } if id == "acme"),
            "{err}"
        );
        let empty =
            std::env::temp_dir().join(format!("https-step-no-policies-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("a directory");
        let err = DurableService::from_policy_dir(runtime(), &empty, None)
            .err()
            .expect("no policies");
        assert!(
            matches!(&err, Error::Policy { problem: PolicyProblem::EmptyDirectory(d), .. } if d == &empty),
            "{err}"
        );
        let _ = std::fs::remove_dir(&empty);
    }

    #[test]
    fn a_journaled_wait_keeps_the_state_and_a_result_its_output_text() {
        let state = seed_state([1; 32], 5);
        let wait = serde_json::to_string(&Journaled::Wait {
            wait_ms: 3000,
            state: state.clone(),
        })
        .expect("serialises");
        let Journaled::Wait {
            wait_ms,
            state: back,
        } = serde_json::from_str(&wait).expect("reads back")
        else {
            panic!("a wait")
        };
        assert_eq!((wait_ms, back), (3000, state));
        let done = serde_json::to_string(&Journaled::Done(
            raw(r#"{"ok":true,"status":201}"#.into()).expect("json"),
        ))
        .expect("serialises");
        assert_eq!(done, r#"{"done":{"ok":true,"status":201}}"#);
    }
}
