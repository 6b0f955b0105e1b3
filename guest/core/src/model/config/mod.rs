//! The step config (README "Step config") and its parts. Every default is a
//! named constant next to the field it belongs to; validation resolves the
//! optional fields into plans with those defaults applied once
//! ([`crate::validate::Checked`]), and the JSON Schema's `default` values are
//! generated from the same constants.

mod credentials;
mod follow_up;
mod payload;
mod retry_policy;

pub use credentials::*;
pub use follow_up::*;
pub use payload::*;
pub use retry_policy::*;

use https_step_core_derive::Mirror;
use serde::Deserialize;
use std::fmt;

/// Default per-attempt deadline (`timeout_ms`).
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// Largest accepted `timeout_ms` (5 minutes).
pub const MAX_TIMEOUT_MS: u32 = 300_000;
/// Default cap on the response body (`max_response_bytes`): 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Largest accepted `max_response_bytes`: 64 MiB (the guest holds the body in memory).
pub const MAX_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Default cap on all pages' and polls' bodies together (`max_total_response_bytes`): 16 MiB.
pub const DEFAULT_MAX_TOTAL_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Default `expected_status`: any 2xx.
pub const DEFAULT_EXPECTED_STATUS: &str = "2xx";
/// Default `decompress`: ask for and decode compressed responses.
pub const DEFAULT_DECOMPRESS: bool = true;
/// Default `follow_redirects`: a 3xx is an ordinary status, as Standard
/// Webhooks treats it.
pub const DEFAULT_FOLLOW_REDIRECTS: bool = false;

/// HTTP method (RFC 9110 §9.3). In JSON, its name in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Mirror)]
pub enum Method {
    /// GET, the default.
    #[default]
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

/// A name/value pair. Lists of them keep order and allow repeated keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    /// Name.
    pub key: String,
    /// Value; may hold `{{ path }}` templates.
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

/// One `expected_status` entry.
#[derive(Debug, Clone, PartialEq, Eq, Mirror)]
pub enum StatusPattern {
    /// An exact code such as 201.
    Code(u16),
    /// A class such as `"2xx"` or a range such as `"200-299"`.
    Pattern(String),
}

/// How the response body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    /// Text when it decodes, JSON when the `Content-Type` says JSON (or there
    /// is none and the body parses), else base64 (the default).
    #[default]
    Auto,
    /// The body must be JSON, whatever the `Content-Type` says; else
    /// `invalid-response`.
    Json,
    /// Text, never parsed (base64 when it does not decode).
    Text,
    /// Always `body_base64`, with the `Content-Type` and the body's SHA-256:
    /// a downloaded file is never read as text.
    Binary,
}

impl ResponseFormat {
    /// The format's name in the step-config JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFormat::Auto => "auto",
            ResponseFormat::Json => "json",
            ResponseFormat::Text => "text",
            ResponseFormat::Binary => "binary",
        }
    }
}

/// The whole configuration of one step (README "Step config").
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "https-step step config"))]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Absolute `https://` (or, where the host allows it, `http://`) URL.
    /// `{{ path }}` templates may fill its path and query.
    pub url: String,
    /// HTTP method. Default: GET.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = Method::default().as_str())))]
    pub method: Method,
    /// Request headers, in order; repeated keys allowed. Default: none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub headers: Vec<KeyValue>,
    /// Query parameters appended to the URL, percent-encoded. Default: none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub query: Vec<KeyValue>,
    /// Request body. Not allowed with GET or HEAD. Default: none.
    pub body: Option<Body>,
    /// HMAC signing of every attempt. Default: none.
    pub signing: Option<Signing>,
    /// Retry policy. Default: a single attempt.
    pub retry: Option<RetryPolicy>,
    /// Credentials the step sends (README "Authentication"). Default: none.
    pub auth: Option<Auth>,
    /// Deadline of one attempt, from sending to the last body byte, from 1
    /// to 300000. Default: 30000.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_TIMEOUT_MS)))]
    pub timeout_ms: Option<u32>,
    /// Statuses that count as success: codes, classes (`"2xx"`) or ranges
    /// (`"200-299"`). Default: `["2xx"]`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = [DEFAULT_EXPECTED_STATUS])))]
    pub expected_status: Option<Vec<StatusPattern>>,
    /// Report failures in the outcome instead of failing the step. Default: false.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub continue_on_error: bool,
    /// JSON Schema (draft 2020-12) the response JSON must satisfy. Default: none.
    #[serde(default, deserialize_with = "super::shapes::response_schema")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "super::schema::response_schema")
    )]
    pub response_schema: Option<super::JsonText>,
    /// Largest response body accepted (after decoding), from 1 to 67108864.
    /// Default: 1048576 (1 MiB).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_RESPONSE_BYTES)))]
    pub max_response_bytes: Option<u64>,
    /// Follow 301/302/303/307/308 responses (at most 10 hops). Default: false.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_FOLLOW_REDIRECTS)))]
    pub follow_redirects: Option<bool>,
    /// Send `Accept-Encoding: gzip, deflate, br` (unless `headers` set it) and
    /// decode such responses; `max_response_bytes` caps the decoded size.
    /// Default: true.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_DECOMPRESS)))]
    pub decompress: Option<bool>,
    /// Follow the pages of a listing (README "Pagination"). Default: none.
    pub pagination: Option<Pagination>,
    /// Poll an asynchronous job (README "Polling"). Default: none.
    pub poll: Option<Poll>,
    /// Largest sum of the response bodies of all pages and polls, from 1
    /// to 1073741824. Default: 16777216 (16 MiB).
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_TOTAL_RESPONSE_BYTES)))]
    pub max_total_response_bytes: Option<u64>,
    /// Named values taken from the response JSON by JSON Pointer (RFC 6901).
    /// In JSON, an object mapping names to pointers. Default: none.
    #[serde(default, deserialize_with = "super::shapes::outputs")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "super::schema::outputs"))]
    pub outputs: Vec<KeyValue>,
    /// How the response body is read: `auto`, `json`, `text` or `binary`
    /// (README "Response handling"). Default: `auto`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = ResponseFormat::default().as_str())))]
    pub response_format: Option<ResponseFormat>,
}

impl StepConfig {
    /// A GET of `url` with every other field at its default.
    pub fn get(url: impl Into<String>) -> Self {
        StepConfig {
            url: url.into(),
            ..StepConfig::default()
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

    /// `decompress` with its default applied.
    pub fn decompress(&self) -> bool {
        self.decompress.unwrap_or(DEFAULT_DECOMPRESS)
    }

    /// `follow_redirects` with its default applied.
    pub fn follow_redirects(&self) -> bool {
        self.follow_redirects.unwrap_or(DEFAULT_FOLLOW_REDIRECTS)
    }

    /// `max_total_response_bytes` with its default applied.
    pub fn max_total_response_bytes(&self) -> u64 {
        self.max_total_response_bytes
            .unwrap_or(DEFAULT_MAX_TOTAL_RESPONSE_BYTES)
    }

    /// `response_format` with its default (`auto`) applied.
    pub fn response_format(&self) -> ResponseFormat {
        self.response_format.unwrap_or_default()
    }
}
