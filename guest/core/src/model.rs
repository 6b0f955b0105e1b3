//! Plain-Rust mirror of the WIT contract in `wit/https-step.wit`.
//!
//! Every type here corresponds 1:1 to a WIT type of the same name; the guest
//! and the host each convert between these and their generated bindings.

use std::fmt;

/// Default per-attempt deadline (`timeout_ms`).
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// Largest accepted `timeout_ms` (5 minutes).
pub const MAX_TIMEOUT_MS: u32 = 300_000;
/// Default cap on the response body (`max_response_bytes`): 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Largest accepted `max_response_bytes`: 64 MiB (the guest holds the body in memory).
pub const MAX_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// HTTP method (RFC 9110 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH (RFC 5789)
    Patch,
    /// DELETE
    Delete,
    /// HEAD: the response has no body (RFC 9110 §9.3.2).
    Head,
    /// OPTIONS (RFC 9110 §9.3.7).
    Options,
}

impl Method {
    /// All methods, in the order the documentation lists them.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    /// Parses a method name, ignoring ASCII case.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the step may send a body with this method. GET and HEAD
    /// bodies have no defined semantics (RFC 9110 §9.3.1, §9.3.2) and
    /// servers and proxies reject or drop them, so the step refuses them.
    /// DELETE and OPTIONS bodies are allowed: some search and bulk APIs
    /// require them (RFC 9110 §9.3.5 and §9.3.7 leave them undefined, not
    /// forbidden).
    pub fn allows_body(self) -> bool {
        !matches!(self, Method::Get | Method::Head)
    }

    /// Whether a request of this method is expected to carry content, so an
    /// empty body is still announced as `Content-Length: 0`. RFC 9110 §8.6:
    /// a user agent should not send `Content-Length` when there is no content
    /// and the method does not anticipate any (GET, HEAD, DELETE, OPTIONS).
    pub fn anticipates_body(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch)
    }

    /// All method names, for messages: `GET, POST, …`.
    pub fn names() -> String {
        Method::ALL.map(Method::as_str).join(", ")
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name/value pair (headers, query parameters, form fields, outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
}

impl KeyValue {
    /// Builds a pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON document.
    Json(serde_json::Value),
    /// Form fields (`application/x-www-form-urlencoded`).
    Form(Vec<KeyValue>),
    /// Text with an optional content type (default `text/plain; charset=utf-8`).
    Text {
        /// The text.
        text: String,
        /// Content type.
        content_type: Option<String>,
    },
}

/// HMAC signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `t=…,v1=…` (Persona, Stripe shape).
    Persona,
    /// Standard Webhooks 1.0.
    StandardWebhooks,
    /// GitHub `X-Hub-Signature-256`.
    Github,
}

impl SigningScheme {
    /// The scheme's name in the step-config JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::Persona => "persona",
            SigningScheme::StandardWebhooks => "standard-webhooks",
            SigningScheme::Github => "github",
        }
    }
}

/// Request signing settings.
#[derive(Clone, PartialEq)]
pub struct Signing {
    /// Secrets (several for rotation).
    pub secrets: Vec<String>,
    /// Scheme; default persona.
    pub scheme: Option<SigningScheme>,
    /// Header name; default depends on the scheme.
    pub header: Option<String>,
}

// Hand-written so that secrets never reach a log through `{:?}`.
impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing")
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .finish()
    }
}

/// Jitter applied to backoff waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// None.
    None,
    /// Uniform in [0, wait].
    Full,
}

/// Retry policy (see the WIT for each field's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicy {
    /// Explicit waits.
    pub intervals_ms: Option<Vec<u32>>,
    /// First exponential wait.
    pub initial_ms: Option<u32>,
    /// Exponential growth factor.
    pub multiplier: Option<f64>,
    /// Largest exponential wait.
    pub max_interval_ms: Option<u32>,
    /// Total attempts.
    pub max_attempts: Option<u32>,
    /// Jitter.
    pub jitter: Option<Jitter>,
    /// Retryable statuses.
    pub retry_on_status: Option<Vec<u16>>,
    /// Deadline over all attempts.
    pub deadline_ms: Option<u32>,
    /// Idempotency key on/off.
    pub idempotency_key: Option<bool>,
    /// Cap on Retry-After.
    pub max_retry_after_ms: Option<u32>,
}

/// One `expected_status` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusPattern {
    /// Exact code.
    Code(u16),
    /// `"2xx"` or `"200-299"`.
    Pattern(String),
}

/// A step configuration (mirrors WIT `step-config`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    /// URL.
    pub url: String,
    /// Method.
    pub method: Method,
    /// Headers.
    pub headers: Vec<KeyValue>,
    /// Query parameters.
    pub query: Vec<KeyValue>,
    /// Body.
    pub body: Option<Body>,
    /// Signing.
    pub signing: Option<Signing>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Per-attempt deadline.
    pub timeout_ms: Option<u32>,
    /// Expected statuses.
    pub expected_status: Option<Vec<StatusPattern>>,
    /// Continue on error.
    pub continue_on_error: bool,
    /// JSON Schema for the response.
    pub response_schema: Option<serde_json::Value>,
    /// Response body cap.
    pub max_response_bytes: Option<u64>,
    /// Follow redirects.
    pub follow_redirects: Option<bool>,
    /// Ask for and decode compressed responses (gzip, deflate, br). Default: true.
    pub decompress: Option<bool>,
    /// Output extraction (name → JSON Pointer).
    pub outputs: Vec<KeyValue>,
}

impl StepConfig {
    /// A GET of `url` with every other field at its default.
    pub fn get(url: impl Into<String>) -> Self {
        StepConfig {
            url: url.into(),
            method: Method::Get,
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            signing: None,
            retry: None,
            timeout_ms: None,
            expected_status: None,
            continue_on_error: false,
            response_schema: None,
            max_response_bytes: None,
            follow_redirects: None,
            decompress: None,
            outputs: Vec::new(),
        }
    }

    /// `timeout_ms` with its default applied.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// `max_response_bytes` with its default applied.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// `decompress` with its default (on) applied.
    pub fn decompress(&self) -> bool {
        self.decompress.unwrap_or(true)
    }
}

/// A configuration problem: a field path and a message for a workflow author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path, e.g. `headers[2].value`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// Builds a problem.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a step or an attempt failed; mirrors the WIT `step-error` variant 1:1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The configuration, or a template in it, is unusable; nothing was sent.
    #[error("invalid step configuration: {}", join_problems(.0))]
    InvalidConfig(Vec<Problem>),
    /// The host's outbound policy refused the request.
    #[error("{0}")]
    Denied(String),
    /// An attempt or the retry deadline ran out.
    #[error("{0}")]
    Timeout(String),
    /// DNS failure, refused, reset or closed connection.
    #[error("{0}")]
    Connection(String),
    /// TLS handshake or certificate failure.
    #[error("{0}")]
    Tls(String),
    /// The server broke the HTTP protocol.
    #[error("{0}")]
    Protocol(String),
    /// The status is not in `expected_status`.
    #[error("{0}")]
    UnexpectedStatus(String),
    /// The body exceeded `max_response_bytes`.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// The response cannot be used.
    #[error("{0}")]
    InvalidResponse(String),
    /// The response JSON does not satisfy `response_schema`.
    #[error("response does not match the response schema: {}", join_problems(.0))]
    SchemaMismatch(Vec<Problem>),
    /// An `outputs` pointer names nothing in the response.
    #[error("missing outputs: {}", join_problems(.0))]
    MissingOutput(Vec<Problem>),
    /// A fault inside the step itself.
    #[error("internal error: {0}")]
    Internal(String),
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl StepError {
    /// The WIT case name in kebab-case, used as `error.kind` by the CLI.
    pub fn kind(&self) -> &'static str {
        match self {
            StepError::InvalidConfig(_) => "invalid-config",
            StepError::Denied(_) => "denied",
            StepError::Timeout(_) => "timeout",
            StepError::Connection(_) => "connection",
            StepError::Tls(_) => "tls",
            StepError::Protocol(_) => "protocol",
            StepError::UnexpectedStatus(_) => "unexpected-status",
            StepError::ResponseTooLarge(_) => "response-too-large",
            StepError::InvalidResponse(_) => "invalid-response",
            StepError::SchemaMismatch(_) => "schema-mismatch",
            StepError::MissingOutput(_) => "missing-output",
            StepError::Internal(_) => "internal",
        }
    }

    /// The same error with `f` applied to every message it carries (the
    /// message of each problem included).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> StepError {
        let problems = |list: Vec<Problem>| list.into_iter().map(|p| Problem::new(p.path, f(&p.message))).collect();
        match self {
            StepError::InvalidConfig(p) => StepError::InvalidConfig(problems(p)),
            StepError::SchemaMismatch(p) => StepError::SchemaMismatch(problems(p)),
            StepError::MissingOutput(p) => StepError::MissingOutput(problems(p)),
            StepError::Denied(m) => StepError::Denied(f(&m)),
            StepError::Timeout(m) => StepError::Timeout(f(&m)),
            StepError::Connection(m) => StepError::Connection(f(&m)),
            StepError::Tls(m) => StepError::Tls(f(&m)),
            StepError::Protocol(m) => StepError::Protocol(f(&m)),
            StepError::UnexpectedStatus(m) => StepError::UnexpectedStatus(f(&m)),
            StepError::ResponseTooLarge(m) => StepError::ResponseTooLarge(f(&m)),
            StepError::InvalidResponse(m) => StepError::InvalidResponse(f(&m)),
            StepError::Internal(m) => StepError::Internal(f(&m)),
        }
    }

    /// The problems carried by the list-valued cases, if any.
    pub fn problems(&self) -> Option<&[Problem]> {
        match self {
            StepError::InvalidConfig(p)
            | StepError::SchemaMismatch(p)
            | StepError::MissingOutput(p) => Some(p),
            _ => None,
        }
    }
}

/// Why the step waited before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Explicit interval.
    Interval,
    /// Exponential backoff.
    Backoff,
    /// Server's Retry-After.
    RetryAfter,
}

impl WaitReason {
    /// Name in the CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Interval => "interval",
            WaitReason::Backoff => "backoff",
            WaitReason::RetryAfter => "retry-after",
        }
    }
}

/// One attempt of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A response as received.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// Outcome of a step that succeeded or continued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Final response.
    pub response: Option<Response>,
    /// Extracted outputs (name → JSON text).
    pub outputs: Vec<KeyValue>,
    /// Attempts.
    pub attempts: Vec<Attempt>,
    /// Error continued past.
    pub continued_error: Option<StepError>,
}

/// A failed step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// Why.
    pub error: StepError,
    /// Attempts made.
    pub attempts: Vec<Attempt>,
    /// Last response, if any.
    pub response: Option<Response>,
}
