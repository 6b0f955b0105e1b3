//! The step's data model: one Rust type per WIT type of `wit/https-step.wit`,
//! with the same names and fields.
//!
//! This module is the config's one source of truth. Each record is declared
//! once, inside [`wit_records!`]; that gives the struct, its serde binding (the
//! step-config JSON of README "Step config": snake_case, unknown keys refused),
//! its JSON Schema (feature `schema`, see [`schema`]) and its conversion to and
//! from the WIT bindings of the guest and the host
//! ([`mirror_wit_types!`](crate::mirror_wit_types)). Shapes that serde cannot
//! derive (a method in any case, `secret` as one string or a list, `outputs`
//! as an object) are in [`shapes`]; [`read`] collects every problem of a
//! config at once.

pub mod read;
#[cfg(feature = "schema")]
pub mod schema;
mod shapes;

use serde::Deserialize;
pub use shapes::{JsonText, type_name as json_type_name};
use std::fmt;

/// Default per-attempt deadline (`timeout_ms`).
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// Largest accepted `timeout_ms` (5 minutes).
pub const MAX_TIMEOUT_MS: u32 = 300_000;
/// Default cap on all pages' and polls' bodies together (`max_total_response_bytes`): 16 MiB.
pub const DEFAULT_MAX_TOTAL_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on the response body (`max_response_bytes`): 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Largest accepted `max_response_bytes`: 64 MiB (the guest holds the body in memory).
pub const MAX_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// HTTP method (RFC 9110 §9.3). In JSON, its name in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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

/// Declares the records that have a WIT twin. Besides each struct, it defines
/// the exported `__mirror_records!` macro that [`mirror_wit_types!`]
/// (crate::mirror_wit_types) expands on each side of the boundary, so a field
/// is listed here and nowhere else. `$d` is a literal `$`, the usual way to
/// write a macro that defines a macro on stable Rust.
macro_rules! wit_records {
    ($d:tt $($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* })*) => {
        $($(#[$meta])* pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* })*

        /// Implements [`Mirror`](crate::Mirror) both ways between every record of
        /// the model and its twin in the given bindings module. Used only
        /// through [`mirror_wit_types!`](crate::mirror_wit_types).
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __mirror_records {
            ($d wit:ident) => {$(
                impl $crate::Mirror<$crate::$name> for $d wit::$name {
                    fn mirror(self) -> $crate::$name {
                        $crate::$name { $($field: $crate::Mirror::mirror(self.$field),)* }
                    }
                }
                impl $crate::Mirror<$d wit::$name> for $crate::$name {
                    fn mirror(self) -> $d wit::$name {
                        $d wit::$name { $($field: $crate::Mirror::mirror(self.$field),)* }
                    }
                }
            )*};
        }
    };
}

wit_records! { $
    /// A name/value pair. Lists of them keep order and allow repeated keys.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct KeyValue {
        /// Name.
        pub key: String,
        /// Value; may hold `{{ path }}` templates.
        pub value: String,
    }

    /// A text body and its media type.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TextBody {
        /// The text, sent as UTF-8.
        pub text: String,
        /// `Content-Type` to send. Default: `text/plain; charset=utf-8`.
        pub content_type: Option<String>,
    }

    /// Bytes sent as they are: a document, an image, a PDF.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct BinaryBody {
        /// The bytes, base64-encoded (RFC 4648 §4, padding optional, line
        /// breaks ignored); may be a `{{ }}` template, e.g. a previous step's
        /// `body_base64`.
        pub base64: String,
        /// `Content-Type` to send; may be a template. Default:
        /// `application/octet-stream`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "application/octet-stream")))]
        pub content_type: Option<String>,
    }

    /// One part of a `multipart/form-data` body (RFC 7578): a text field
    /// (`value`) or bytes (`base64`), optionally as a file (`filename`).
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", schemars(extend("oneOf" = [
        {"required": ["value"], "properties": {"value": {"type": "string"}}},
        {"required": ["base64"], "properties": {"base64": {"type": "string"}}}
    ])))]
    #[serde(deny_unknown_fields)]
    pub struct MultipartPart {
        /// The field name (not a template); names may repeat.
        pub name: String,
        /// Text content, sent as UTF-8; may be a template. Give this or `base64`.
        pub value: Option<String>,
        /// Binary content, base64-encoded as for a binary body; may be a
        /// template. Give this or `value`.
        pub base64: Option<String>,
        /// The part's file name, which makes it a file upload; may be a
        /// template. Default: none.
        pub filename: Option<String>,
        /// The part's `Content-Type`; may be a template. Default:
        /// `application/octet-stream` for a file or `base64` part, none (which
        /// means `text/plain`, RFC 7578 §4.4) for a text field.
        pub content_type: Option<String>,
    }

    /// HMAC-SHA256 signing of every attempt.
    #[derive(Clone, PartialEq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct Signing {
        /// The secret, or several (key rotation: one signature each). In JSON
        /// `secret`: a string or a list of strings; may be `{{ secrets.… }}`.
        #[serde(rename = "secret", deserialize_with = "shapes::secrets")]
        #[cfg_attr(feature = "schema", schemars(rename = "secret", schema_with = "schema::secrets"))]
        pub secrets: Vec<String>,
        /// Signature scheme. Default: `persona`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "persona")))]
        pub scheme: Option<SigningScheme>,
        /// Header carrying the signature. Default: `Persona-Signature` (persona),
        /// `webhook-signature` (standard-webhooks), `X-Hub-Signature-256` (github).
        pub header: Option<String>,
    }

    /// HTTP Basic credentials (RFC 7617), sent as `Authorization: Basic
    /// base64(username ":" password)` in UTF-8.
    #[derive(Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct BasicAuth {
        /// User name; no `:` (RFC 7617 §2). May be a template.
        pub username: String,
        /// Password; may be `{{ secrets.… }}`.
        pub password: String,
    }

    /// A bearer token (RFC 6750 §2.1), sent as `Authorization: Bearer <token>`.
    #[derive(Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct BearerAuth {
        /// The token; may be `{{ secrets.… }}`.
        pub token: String,
    }

    /// An API key in a header or a query parameter.
    #[derive(Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct ApiKeyAuth {
        /// Header or query parameter name, e.g. `X-API-Key`.
        pub name: String,
        /// The key; may be `{{ secrets.… }}` (in a header only: the URL is logged).
        pub value: String,
        /// Where it goes. In JSON `in`. Default: `header`.
        #[serde(rename = "in")]
        #[cfg_attr(feature = "schema", schemars(rename = "in", extend("default" = "header")))]
        pub location: Option<ApiKeyIn>,
    }

    /// The OAuth 2.0 client credentials grant (RFC 6749 §4.4): the step
    /// fetches an access token from `token_url`, keeps it in the tenant's
    /// store for later runs, and sends it as `Authorization: Bearer`.
    #[derive(Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct Oauth2ClientCredentials {
        /// The token endpoint: `https://` (or `http://` where the host allows
        /// it), admitted by the tenant's policy like `url`.
        pub token_url: String,
        /// The client identifier; may be a template.
        pub client_id: String,
        /// The client secret; may be `{{ secrets.… }}`.
        pub client_secret: String,
        /// Space-separated scopes (RFC 6749 §3.3). Default: none.
        pub scope: Option<String>,
        /// `audience` parameter (Auth0, Okta and others). Default: none.
        pub audience: Option<String>,
        /// Further form parameters of the token request, in order. Default: none.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
        pub params: Vec<KeyValue>,
        /// How the client authenticates: `basic` (RFC 6749 §2.3.1, recommended)
        /// or `body`. Default: `basic`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "basic")))]
        pub client_auth: Option<Oauth2ClientAuth>,
        /// A cached token is replaced this many seconds before it expires, from
        /// 0 to 3600. Default: 60.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 60)))]
        pub expiry_margin_s: Option<u32>,
        /// How long a token without `expires_in` is kept, from 1 to 86400.
        /// Default: 3600.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 3600)))]
        pub default_lifetime_s: Option<u32>,
        /// Responses that reject the token: the step fetches a new one and tries
        /// once more. Default: status 401 only.
        pub refresh_on: Option<TokenRefresh>,
    }

    /// When a response makes the step fetch a new token and try once more.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct TokenRefresh {
        /// Statuses that do. Default: `[401]`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = [401])))]
        pub status: Option<Vec<u16>>,
        /// A response-body condition that does, on any status (APIs that answer
        /// 200 with "token expired"). Default: none.
        pub body: Option<TokenSignal>,
    }

    /// A value in the response JSON that means the token is no longer valid.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct TokenSignal {
        /// JSON Pointer (RFC 6901) into the response JSON, e.g. `/error/code`.
        pub pointer: String,
        /// Values at `pointer` that signal expiry: a string matches a JSON
        /// string with that text, anything else the value's compact JSON.
        pub values: Vec<String>,
    }

    /// `pagination`: one step follows a listing's pages (README "Pagination").
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct Pagination {
        /// How the next page is found: exactly one of `link_header`,
        /// `next_url`, `cursor`, `page` or `offset`.
        pub next: PageNext,
        /// JSON Pointer (RFC 6901) to each page's array of items, whose
        /// concatenation becomes the output's `json`. Required for `page` and
        /// `offset`. Default: none (each page's whole JSON is one item).
        pub items: Option<String>,
        /// Most pages fetched, from 1 to 1000. Default: 10.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 10)))]
        pub max_pages: Option<u32>,
        /// Most items kept (the rest is cut, `truncated`). Default: none.
        pub max_items: Option<u32>,
        /// Wait between pages, up to 60000. Default: 0.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
        pub interval_ms: Option<u32>,
        /// Origins (`https://host[:port]`) next links may lead to besides the
        /// first request's. Default: none.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
        pub allowed_origins: Vec<String>,
    }

    /// The next page from the `Link` header (RFC 8288).
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct LinkHeaderNext {
        /// The link relation to follow. Default: `next`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "next")))]
        pub rel: Option<String>,
    }

    /// The next page from a cursor in the page's JSON, sent back as a query
    /// parameter.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct CursorNext {
        /// JSON Pointer to the cursor; absent, null or `""` ends the pages.
        pub pointer: String,
        /// The query parameter that carries it.
        pub param: String,
    }

    /// Numbered pages: `param` = start, start + 1, … until an empty page.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct PageNumberNext {
        /// The query parameter with the page number.
        pub param: String,
        /// The first page's number. Default: 1.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 1)))]
        pub start: Option<u32>,
    }

    /// Offsets: `param` = start, start + step, … until an empty page.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct OffsetNext {
        /// The query parameter with the offset.
        pub param: String,
        /// The first page's offset. Default: 0.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
        pub start: Option<u32>,
        /// Added per page. Default: the number of items the page had.
        pub step: Option<u32>,
    }

    /// `poll`: an asynchronous job answered `202` with a status URL, polled
    /// until it is done (README "Polling").
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct Poll {
        /// Statuses that mean "not done yet: poll". Default: `[202]`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = [202])))]
        pub on_status: Option<Vec<u16>>,
        /// Where the status URL is: `"location"` (the `Location` header) or
        /// `{"pointer": "/links/status"}`. Default: `location`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "location")))]
        pub status_url: Option<StatusUrl>,
        /// A value in the status JSON that says the job is done. Default:
        /// none (polling stops at the first status not in `on_status`).
        pub until: Option<PollUntil>,
        /// Wait between polls when the response has no `Retry-After`, from 0
        /// to 3600000. Default: 1000.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 1000)))]
        pub interval_ms: Option<u32>,
        /// Most polls, from 1 to 1000. Default: 60.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 60)))]
        pub max_polls: Option<u32>,
        /// Origins status URLs may be on besides the first request's. Default: none.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
        pub allowed_origins: Vec<String>,
    }

    /// When a polled job is done.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct PollUntil {
        /// JSON Pointer to the job's state in each status response.
        pub pointer: String,
        /// States that end the step successfully, with that response.
        pub success: Vec<String>,
        /// States that fail the step (`unexpected-status`). Default: none.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
        pub failure: Vec<String>,
    }

    /// One page fetched.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PageSummary {
        /// 1-based page number.
        pub page: u32,
        /// Its status.
        pub status: u16,
        /// Items it contributed.
        pub items: u32,
    }

    /// How the pages of a paginated step went.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PagesOutcome {
        /// Every page fetched, in order.
        pub pages: Vec<PageSummary>,
        /// A limit (`max_pages`, `max_items`, `max_total_response_bytes`, the
        /// deadline) stopped it while more pages were there.
        pub truncated: bool,
        /// Why it stopped.
        pub stopped: PagesStop,
    }

    /// When and how failed attempts are retried: `intervals_ms` (an explicit
    /// list, as in Persona's "Retry Intervals") or the exponential form
    /// (`initial_ms`, `multiplier`, `max_interval_ms`, `max_attempts`, `jitter`).
    #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(deny_unknown_fields)]
    pub struct RetryPolicy {
        /// Wait before attempt k+2 after attempt k+1 failed. Default: none (the exponential form).
        pub intervals_ms: Option<Vec<u32>>,
        /// First exponential wait. Default: 500.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 500)))]
        pub initial_ms: Option<u32>,
        /// Growth factor of exponential waits, from 1 to 10. Default: 2.0.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 2.0)))]
        pub multiplier: Option<f64>,
        /// Largest exponential wait. Default: 30000.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 30000)))]
        pub max_interval_ms: Option<u32>,
        /// Total attempts including the first, from 1 to 20. Default: 3.
        #[cfg_attr(feature = "schema", schemars(extend("default" = 3)))]
        pub max_attempts: Option<u32>,
        /// Random spread of exponential waits. Default: `full`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "full")))]
        pub jitter: Option<Jitter>,
        /// Statuses worth retrying. Default: 408, 425, 429, 500, 502, 503, 504.
        #[cfg_attr(feature = "schema", schemars(extend("default" = [408, 425, 429, 500, 502, 503, 504])))]
        pub retry_on_status: Option<Vec<u16>>,
        /// Total time for all attempts and waits. Default: none (bounded by the attempts).
        pub deadline_ms: Option<u32>,
        /// Send one `Idempotency-Key` for all attempts of a run. Default: on for POST and PATCH.
        pub idempotency_key: Option<bool>,
        /// Longest `Retry-After` honoured. Default: 21600000 (6 h, as urllib3).
        #[cfg_attr(feature = "schema", schemars(extend("default" = 21_600_000)))]
        pub max_retry_after_ms: Option<u32>,
    }

    /// The whole configuration of one step (README "Step config").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[cfg_attr(feature = "schema", schemars(title = "https-step step config"))]
    #[serde(deny_unknown_fields)]
    pub struct StepConfig {
        /// Absolute `https://` (or, where the host allows it, `http://`) URL.
        /// `{{ path }}` templates may fill its path and query.
        pub url: String,
        /// HTTP method. Default: GET.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = "GET")))]
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
        #[cfg_attr(feature = "schema", schemars(extend("default" = 30000)))]
        pub timeout_ms: Option<u32>,
        /// Statuses that count as success: codes, classes (`"2xx"`) or ranges
        /// (`"200-299"`). Default: `["2xx"]`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = ["2xx"])))]
        pub expected_status: Option<Vec<StatusPattern>>,
        /// Report failures in the outcome instead of failing the step. Default: false.
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
        pub continue_on_error: bool,
        /// JSON Schema (draft 2020-12) the response JSON must satisfy. Default: none.
        #[serde(default, deserialize_with = "shapes::response_schema")]
        #[cfg_attr(feature = "schema", schemars(schema_with = "schema::response_schema"))]
        pub response_schema: Option<JsonText>,
        /// Largest response body accepted (after decoding), from 1 to 67108864.
        /// Default: 1048576 (1 MiB).
        #[cfg_attr(feature = "schema", schemars(extend("default" = 1_048_576)))]
        pub max_response_bytes: Option<u64>,
        /// Follow 301/302/303/307/308 responses (at most 10 hops). Default: false.
        #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
        pub follow_redirects: Option<bool>,
        /// Send `Accept-Encoding: gzip, deflate, br` (unless `headers` set it) and
        /// decode such responses; `max_response_bytes` caps the decoded size.
        /// Default: true.
        #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
        pub decompress: Option<bool>,
        /// Follow the pages of a listing (README "Pagination"). Default: none.
        pub pagination: Option<Pagination>,
        /// Poll an asynchronous job (README "Polling"). Default: none.
        pub poll: Option<Poll>,
        /// Largest sum of the response bodies of all pages and polls, from 1
        /// to 1073741824. Default: 16777216 (16 MiB).
        #[cfg_attr(feature = "schema", schemars(extend("default" = 16_777_216)))]
        pub max_total_response_bytes: Option<u64>,
        /// Named values taken from the response JSON by JSON Pointer (RFC 6901).
        /// In JSON, an object mapping names to pointers. Default: none.
        #[serde(default, deserialize_with = "shapes::outputs")]
        #[cfg_attr(feature = "schema", schemars(schema_with = "schema::outputs"))]
        pub outputs: Vec<KeyValue>,
        /// How the response body is read: `auto`, `json`, `text` or `binary`
        /// (README "Response handling"). Default: `auto`.
        #[cfg_attr(feature = "schema", schemars(extend("default" = "auto")))]
        pub response_format: Option<ResponseFormat>,
    }

    /// A credential could not be obtained.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    pub struct AuthError {
        /// The OAuth 2.0 error code (RFC 6749 §5.2) the token endpoint gave,
        /// e.g. `invalid_client`.
        pub code: Option<String>,
        /// What happened; never a secret.
        pub message: String,
    }

    /// A configuration problem: a field path and a message for a workflow author.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    pub struct Problem {
        /// Field path, e.g. `headers[2].value`.
        pub path: String,
        /// What is wrong and how to fix it.
        pub message: String,
    }

    /// One attempt of the request.
    #[derive(Debug, Clone, PartialEq, Eq)]
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
        /// With `response_format` `binary`: the `Content-Type` the response declared.
        pub content_type: Option<String>,
        /// With `response_format` `binary`: the SHA-256 of the body, lower-case hex.
        pub body_sha256: Option<String>,
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
        /// The pages, when the step paginated.
        pub pagination: Option<PagesOutcome>,
    }

    /// What the next attempt of a run made one attempt at a time needs
    /// ([`crate::run_attempt`]); nothing secret. See the WIT for the
    /// compatibility rule.
    #[derive(Debug, Clone, PartialEq, Eq)]
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
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AttemptWait {
        /// How long.
        pub wait_ms: u64,
        /// What the next attempt needs.
        pub state: RunState,
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
        /// The pages fetched before the failure, when the step paginated.
        pub pagination: Option<PagesOutcome>,
    }
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

impl KeyValue {
    /// Builds a pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The request body: in JSON exactly one of `{"json": …}`, `{"form": […]}`,
/// `{"text": "…", "content_type": "…"}`, `{"binary": {…}}` or
/// `{"multipart": […]}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON document, sent with `Content-Type: application/json`; its strings
    /// may hold templates.
    Json(JsonText),
    /// Fields sent as `application/x-www-form-urlencoded` (WHATWG URL §5).
    Form(Vec<KeyValue>),
    /// Raw text with its own content type.
    Text(TextBody),
    /// Bytes given as base64, sent raw.
    Binary(BinaryBody),
    /// `multipart/form-data` (RFC 7578), parts in order.
    Multipart(Vec<MultipartPart>),
}

/// How the response body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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

/// The [`RunState`] layout this crate writes (and the newest it reads).
pub const RUN_STATE_VERSION: u32 = 1;

/// How one call of [`crate::run_attempt`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// How the next page is found (`pagination.next`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PageNext {
    /// `Link: <…>; rel="next"` (RFC 8288).
    LinkHeader(LinkHeaderNext),
    /// A JSON Pointer to the next page's URL in the page, absolute or
    /// relative to the page's URL.
    NextUrl(String),
    /// A cursor in the page, sent back as a query parameter.
    Cursor(CursorNext),
    /// Numbered pages.
    Page(PageNumberNext),
    /// Offsets.
    Offset(OffsetNext),
}

/// Where a polled job's status URL is (`poll.status_url`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StatusUrl {
    /// The `Location` header (the default).
    Location,
    /// A JSON Pointer into the response JSON.
    Pointer(String),
}

/// Why pagination stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            PagesStop::Failed => "failed",
        }
    }
}

/// Credentials: in JSON exactly one of `{"basic": …}`, `{"bearer": …}`,
/// `{"api_key": …}` or `{"oauth2_client_credentials": …}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// HTTP Basic (RFC 7617).
    Basic(BasicAuth),
    /// A bearer token (RFC 6750).
    Bearer(BearerAuth),
    /// An API key in a header or the query.
    ApiKey(ApiKeyAuth),
    /// A bearer token from the OAuth 2.0 client credentials grant (RFC 6749 §4.4).
    Oauth2ClientCredentials(Oauth2ClientCredentials),
}

// Hand-written so that credentials never reach a log through `{:?}`.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic(_) => f.write_str("Auth::Basic(redacted)"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(redacted)"),
            Auth::ApiKey(k) => write!(
                f,
                "Auth::ApiKey({:?} in {:?}, redacted)",
                k.name, k.location
            ),
            Auth::Oauth2ClientCredentials(o) => write!(
                f,
                "Auth::Oauth2ClientCredentials({:?}, redacted)",
                o.token_url
            ),
        }
    }
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Oauth2ClientAuth {
    /// `Authorization: Basic` over the form-encoded id and secret (the default).
    Basic,
    /// `client_id` and `client_secret` as form parameters of the body.
    Body,
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyIn {
    /// A request header (the default).
    Header,
    /// A query parameter (only for keys written in the config: a key from
    /// `context.secrets` may not go into the URL, which servers and proxies log).
    Query,
}

/// HMAC signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SigningScheme {
    /// `t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>` (Persona, Stripe shape).
    Persona,
    /// Standard Webhooks 1.0: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`.
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

// Hand-written so that secrets never reach a log through `{:?}`.
impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .finish()
    }
}

/// Random spread applied to exponential backoff waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Wait exactly the computed interval.
    None,
    /// Wait a uniformly random time in [0, computed interval] (AWS "FULL").
    Full,
}

/// One `expected_status` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusPattern {
    /// An exact code such as 201.
    Code(u16),
    /// A class such as `"2xx"` or a range such as `"200-299"`.
    Pattern(String),
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

    /// `decompress` with its default (on) applied.
    pub fn decompress(&self) -> bool {
        self.decompress.unwrap_or(true)
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
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

/// Why the step waited before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
