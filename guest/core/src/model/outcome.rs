//! What a run reports: its attempts, the response, the pages of a listing,
//! and the failure when it failed.

use super::{KeyValue, Problem, StepError};
use https_step_core_derive::Mirror;

/// One attempt of the request.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Attempt {
    /// 1-based number.
    pub number: u32,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Error of this attempt, if any.
    pub error: Option<StepError>,
    /// Duration of the attempt.
    pub elapsed_ms: u64,
    /// Wait before the next attempt.
    pub wait_ms: Option<u64>,
    /// Why that wait.
    pub wait_reason: Option<WaitReason>,
    /// The page it fetched (pagination).
    pub page: Option<u32>,
    /// The poll it made (asynchronous jobs).
    pub poll: Option<u32>,
    /// When the host answered it itself (a `429` marked with
    /// [`crate::response::LOCAL_LIMIT_HEADER`]): which of its limits held
    /// the request back; the request never reached the server.
    #[cfg_attr(feature = "serde", serde(default))]
    pub host_limit: Option<String>,
}

/// Why the step waited before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Mirror)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum WaitReason {
    /// Explicit interval.
    Interval,
    /// Exponential backoff.
    Backoff,
    /// Server's Retry-After.
    RetryAfter,
    /// A new OAuth 2.0 token after the response rejected the cached one.
    TokenRefresh,
    /// `pagination.interval_ms` before the next page.
    PageInterval,
    /// `poll.interval_ms` before the next poll.
    PollInterval,
}

impl WaitReason {
    /// Name in the CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Interval => "interval",
            WaitReason::Backoff => "backoff",
            WaitReason::RetryAfter => "retry-after",
            WaitReason::TokenRefresh => "token-refresh",
            WaitReason::PageInterval => "page-interval",
            WaitReason::PollInterval => "poll-interval",
        }
    }
}

/// A response as received.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in received order.
    pub headers: Vec<KeyValue>,
    /// Body as text (empty when binary).
    pub body: String,
    /// Body as base64 when not valid UTF-8.
    pub body_base64: Option<String>,
    /// Body parsed as JSON, re-serialised compactly.
    pub json: Option<String>,
    /// With `response_format` `binary`: the `Content-Type` the response declared.
    pub content_type: Option<String>,
    /// With `response_format` `binary`: the SHA-256 of the body, lower-case hex.
    pub body_sha256: Option<String>,
}

/// Outcome of a step that succeeded or continued.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct StepOutcome {
    /// Final response.
    pub response: Option<Response>,
    /// Extracted outputs (name → JSON text).
    pub outputs: Vec<KeyValue>,
    /// Attempts.
    pub attempts: Vec<Attempt>,
    /// Error continued past.
    pub continued_error: Option<StepError>,
    /// The pages, when the step paginated.
    pub pagination: Option<PagesOutcome>,
}

/// A failed step.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct StepFailure {
    /// Why.
    pub error: StepError,
    /// Attempts made.
    pub attempts: Vec<Attempt>,
    /// Last response, if any.
    pub response: Option<Response>,
    /// The pages fetched before the failure, when the step paginated.
    pub pagination: Option<PagesOutcome>,
}

impl StepFailure {
    /// The failure of a step whose config is unusable: nothing was sent.
    pub fn invalid_config(problems: Vec<Problem>) -> Self {
        StepFailure {
            error: StepError::InvalidConfig(problems),
            attempts: Vec::new(),
            response: None,
            pagination: None,
        }
    }
}

/// One page fetched.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct PageSummary {
    /// 1-based page number.
    pub page: u32,
    /// Its status.
    pub status: u16,
    /// Items it contributed.
    pub items: u32,
}

/// How the pages of a paginated step went.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub struct PagesOutcome {
    /// Every page fetched, in order.
    pub pages: Vec<PageSummary>,
    /// A limit (`max_pages`, `max_items`, `max_total_response_bytes`, the
    /// deadline, the host's request budget) stopped it while more pages
    /// were there.
    pub truncated: bool,
    /// Why it stopped.
    pub stopped: PagesStop,
}

/// Why pagination stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Mirror)]
pub enum PagesStop {
    /// The page had no next link or cursor.
    NoNext,
    /// The page had no items.
    EmptyPage,
    /// The page was identical to the one before (SHA-256 of the body).
    RepeatedPage,
    /// `max_pages` pages were fetched.
    MaxPages,
    /// `max_items` items were kept.
    MaxItems,
    /// The next page would pass `max_total_response_bytes`.
    MaxTotalResponseBytes,
    /// The retry deadline (`retry.deadline_ms`) came.
    Deadline,
    /// The host's budget of requests per run was spent (this project's
    /// host: the tenant's `max_requests_per_run`).
    MaxRequestsPerRun,
    /// A page failed (after its retries), and with it the step.
    Failed,
}

impl PagesStop {
    /// Name in the CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            PagesStop::NoNext => "no-next",
            PagesStop::EmptyPage => "empty-page",
            PagesStop::RepeatedPage => "repeated-page",
            PagesStop::MaxPages => "max-pages",
            PagesStop::MaxItems => "max-items",
            PagesStop::MaxTotalResponseBytes => "max-total-response-bytes",
            PagesStop::Deadline => "deadline",
            PagesStop::MaxRequestsPerRun => "max-requests-per-run",
            PagesStop::Failed => "failed",
        }
    }
}
