//! `retry`: which failed attempts are repeated and when (README "Retries").

use https_step_core_derive::Mirror;
use serde::Deserialize;

/// Default first exponential wait (`initial_ms`).
pub const DEFAULT_INITIAL_MS: u32 = 500;
/// Default exponential growth factor (`multiplier`).
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Default largest exponential wait (`max_interval_ms`).
pub const DEFAULT_MAX_INTERVAL_MS: u32 = 30_000;
/// Default attempts of the exponential form (`max_attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default spread of exponential waits (`jitter`): full jitter, as AWS
/// recommends for contended retries.
pub const DEFAULT_JITTER: Jitter = Jitter::Full;
/// Default `retry_on_status`: request timeout, too early (RFC 8470), too
/// many requests, and the transient server errors.
pub const DEFAULT_RETRY_ON_STATUS: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];
/// Default cap on `Retry-After` (`max_retry_after_ms`): 6 hours, as urllib3's
/// `DEFAULT_BACKOFF_MAX` for it.
pub const DEFAULT_MAX_RETRY_AFTER_MS: u32 = 6 * 3_600_000;

/// When and how failed attempts are retried: `intervals_ms` (an explicit
/// list, as in Persona's "Retry Intervals") or the exponential form
/// (`initial_ms`, `multiplier`, `max_interval_ms`, `max_attempts`, `jitter`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Wait before attempt k+2 after attempt k+1 failed. Default: none (the exponential form).
    pub intervals_ms: Option<Vec<u32>>,
    /// First exponential wait. Default: 500.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_INITIAL_MS)))]
    pub initial_ms: Option<u32>,
    /// Growth factor of exponential waits, from 1 to 10. Default: 2.0.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MULTIPLIER)))]
    pub multiplier: Option<f64>,
    /// Largest exponential wait, up to 3600000 (1 hour). Default: 30000.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_INTERVAL_MS)))]
    pub max_interval_ms: Option<u32>,
    /// Total attempts including the first, from 1 to 20. Default: 3.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_ATTEMPTS)))]
    pub max_attempts: Option<u32>,
    /// Random spread of exponential waits. Default: `full`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_JITTER.as_str())))]
    pub jitter: Option<Jitter>,
    /// Statuses worth retrying. Default: 408, 425, 429, 500, 502, 503, 504.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_RETRY_ON_STATUS)))]
    pub retry_on_status: Option<Vec<u16>>,
    /// Total time for all attempts and waits. Default: none (bounded by the attempts).
    pub deadline_ms: Option<u32>,
    /// Send one `Idempotency-Key` for all attempts of a run. Default: on for POST and PATCH.
    pub idempotency_key: Option<bool>,
    /// Longest `Retry-After` honoured. Default: 21600000 (6 h, as urllib3).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_RETRY_AFTER_MS)))]
    pub max_retry_after_ms: Option<u32>,
}

/// Random spread applied to exponential backoff waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Wait exactly the computed interval.
    None,
    /// Wait a uniformly random time in [0, computed interval] (AWS "FULL").
    Full,
}

impl Jitter {
    /// The jitter's name in the step-config JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
        }
    }
}
