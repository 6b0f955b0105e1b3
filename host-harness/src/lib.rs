//! Host harness for the https-step component: loads it once into wasmtime,
//! runs each step in its own `Store`, and enforces each tenant's outbound
//! policy at the single egress point (`wasi:http` `send_request`).
//!
//! # How to use
//! 1. Build a runtime once: [`StepRuntime::builder`]`().build()` compiles the
//!    embedded component.
//! 2. Describe each tenant once: [`Tenant::builder`] with allowed origins,
//!    extra CA roots and limits, or [`Tenant::from_policy_file`] (TOML).
//! 3. Read a step config with [`parse_step_config`] (re-exported from
//!    `https-step-core`, with [`StepConfig`] and [`Problem`]) and run it with
//!    [`StepRuntime::run`]; or check it with [`StepRuntime::validate`].
//!
//! ```no_run
//! # async fn example() -> Result<(), https_step_host::Error> {
//! use std::sync::Arc;
//! use https_step_host::{StepRuntime, Tenant, parse_step_config};
//!
//! let runtime = StepRuntime::builder().build()?;
//! let tenant = Arc::new(Tenant::builder("acme").allow("http://127.0.0.1:8080")?.build()?);
//! let parsed = parse_step_config(r#"{"url": "http://127.0.0.1:8080/health"}"#);
//! assert!(parsed.problems.is_empty());
//! let outcome = runtime.run(&tenant, &parsed.config, "{}", Arc::new(|line: &str| eprintln!("{line}"))).await?;
//! match outcome {
//!     Ok(done) => println!("status {:?}", done.response.map(|r| r.status)),
//!     Err(failed) => println!("failed: {}", failed.error),
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
mod demo;
#[cfg(feature = "restate")]
pub mod durable;
mod egress;
mod error;
pub mod output;
mod progress;
mod runtime;
mod store;
pub mod tenant;

pub use egress::{limits, policy};

pub use error::{BoxError, BusyCause, CertificateProblem, Error, LimitKind, PolicyProblem};
pub use https_step_core::{
    ParsedConfig, Problem, StepConfig, StepFailure, StepOutcome, parse_step_config,
};
pub use runtime::{DEFAULT_MAX_CONCURRENCY, PreparedStep, ProgressFn, RuntimeBuilder, StepRuntime};
pub use tenant::{
    ClientCertEntry, HostLimits, RateLimitEntry, Tenant, TenantBuilder, TenantPolicy,
};
