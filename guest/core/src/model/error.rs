//! Why a step failed ([`StepError`], the WIT `step-error`), and the
//! configuration problems it reports ([`Problem`]).

use https_step_core_derive::Mirror;
use std::fmt;

/// A configuration problem: a field path and a message for a workflow author.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

    /// Whether it concerns the whole document (empty path: the text was not
    /// JSON, or not an object), so that nothing else in it can be checked.
    pub fn is_whole_document(&self) -> bool {
        self.path.is_empty()
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Mirror)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
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
    /// A credential could not be obtained (OAuth 2.0 token endpoint errors).
    #[error("{}", .0.message)]
    Auth(AuthError),
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
            StepError::Auth(_) => "auth",
            StepError::Internal(_) => "internal",
        }
    }

    /// The same error with `f` applied to every message it carries (the
    /// message of each problem included).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> StepError {
        let problems = |list: Vec<Problem>| {
            list.into_iter()
                .map(|p| Problem::new(p.path, f(&p.message)))
                .collect()
        };
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
            StepError::Auth(a) => StepError::Auth(AuthError {
                code: a.code,
                message: f(&a.message),
            }),
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

/// A credential could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuthError {
    /// The OAuth 2.0 error code (RFC 6749 §5.2) the token endpoint gave,
    /// e.g. `invalid_client`.
    pub code: Option<String>,
    /// What happened; never a secret.
    pub message: String,
}
