//! The semantics of the https-step "Make HTTPS Request" workflow step, as plain
//! Rust: config format and validation, request building, response handling and
//! the step's flow. The component (`guest/`) wraps this around `wasi:http`; hosts
//! use it natively to read step-config JSON.
//!
//! # How to use
//! 1. Read a config: [`parse_step_config`] gives a [`StepConfig`] and every shape
//!    problem (unknown keys, wrong types) at once.
//! 2. Check it: [`validate`] gives every semantic problem at once.
//! 3. Run it: [`run`] with an [`Effects`] implementation that sends requests,
//!    sleeps between retries and supplies clocks and randomness.
//! 4. Receivers check signed requests with [`Verifier`].
//!
//! ```
//! use https_step_core::{parse_step_config, validate};
//! let parsed = parse_step_config(r#"{"url": "https://api.example.com/orders", "method": "GET"}"#);
//! assert!(parsed.problems.is_empty());
//! assert!(validate(&parsed.config).is_empty());
//! ```

mod auth;
mod body;
mod checks;
pub mod content;
#[cfg(all(test, feature = "schema"))]
mod defaults_tests;
pub mod headers;
pub mod host_text;
pub mod link;
pub mod mirror;
pub mod model;
pub mod output;
pub mod request;
pub mod response;
pub mod response_schema;
pub mod retry;
pub mod run;
pub mod sequence;
pub mod signing;
pub mod status;
pub mod template;
pub mod validate;

pub use mirror::Mirror;
pub use model::read::{ParsedConfig, parse_step_config, parse_step_config_value};
pub use model::*;
pub use request::PreparedRequest;
pub use response::RawResponse;
pub use run::{AttemptLimits, Effects, SendError, run, run_attempt, seed_state};
pub use signing::{Signer, Verifier, VerifyError};
pub use validate::validate;
