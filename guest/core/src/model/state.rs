//! What a durable engine keeps between the attempts of a run it makes one
//! attempt at a time ([`crate::run_attempt`], README "Durable runs").

use super::{Attempt, StepFailure, StepOutcome};
use https_step_core_derive::Mirror;

/// The [`RunState`] layout this crate writes (and the newest it reads).
pub const RUN_STATE_VERSION: u32 = 1;

/// What the next attempt of a run made one attempt at a time needs
/// ([`crate::run_attempt`]); nothing secret. See the WIT for the
/// compatibility rule.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunState {
    /// The layout of this record ([`RUN_STATE_VERSION`]).
    pub version: u32,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// The idempotency key every attempt sends, when the run has one.
    pub idempotency_key: Option<String>,
    /// The Standard Webhooks message id, stable across attempts.
    pub webhook_id: Option<String>,
    /// Unix milliseconds when the first attempt started.
    pub started_unix_ms: u64,
}

/// Wait, then attempt again with `state`.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct AttemptWait {
    /// How long.
    pub wait_ms: u64,
    /// What the next attempt needs.
    pub state: RunState,
}

/// How one call of [`crate::run_attempt`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
#[allow(
    clippy::large_enum_variant,
    reason = "mirrors the WIT variant; one per call"
)]
pub enum AttemptResult {
    /// The step is over.
    Done(Result<StepOutcome, StepFailure>),
    /// Another attempt is due after a wait.
    Wait(AttemptWait),
}
