//! What the step proves itself with: `auth` (README "Authentication") and
//! `signing` (README "Signing"). `Debug` is written by hand for every type
//! that holds a credential, so none reaches a log through `{:?}`.

use super::KeyValue;
use https_step_core_derive::Mirror;
use serde::Deserialize;
use std::fmt;

/// Default `signing.scheme`.
pub const DEFAULT_SIGNING_SCHEME: SigningScheme = SigningScheme::Persona;
/// Default `auth.api_key.in`.
pub const DEFAULT_API_KEY_IN: ApiKeyIn = ApiKeyIn::Header;
/// Default `auth.oauth2_client_credentials.client_auth`.
pub const DEFAULT_CLIENT_AUTH: Oauth2ClientAuth = Oauth2ClientAuth::Basic;
/// Default `expiry_margin_s`: a cached token is replaced a minute before it
/// expires.
pub const DEFAULT_EXPIRY_MARGIN_S: u32 = 60;
/// Default `default_lifetime_s`: an hour, the lifetime most providers give.
pub const DEFAULT_TOKEN_LIFETIME_S: u32 = 3600;
/// Default `refresh_on.status`: 401 (RFC 6750 §3.1, `invalid_token`).
pub const DEFAULT_REFRESH_STATUS: [u16; 1] = [401];

/// Credentials: in JSON exactly one of `{"basic": …}`, `{"bearer": …}`,
/// `{"api_key": …}` or `{"oauth2_client_credentials": …}`.
#[derive(Clone, PartialEq, Eq, Deserialize, Mirror)]
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
            Auth::Oauth2ClientCredentials(o) => {
                write!(
                    f,
                    "Auth::Oauth2ClientCredentials({:?}, redacted)",
                    o.token_url
                )
            }
        }
    }
}

/// HTTP Basic credentials (RFC 7617), sent as `Authorization: Basic
/// base64(username ":" password)` in UTF-8.
#[derive(Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name; no `:` (RFC 7617 §2). May be a template.
    pub username: String,
    /// Password; may be `{{ secrets.… }}`.
    pub password: String,
}

/// A bearer token (RFC 6750 §2.1), sent as `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BearerAuth {
    /// The token; may be `{{ secrets.… }}`.
    pub token: String,
}

/// An API key in a header or a query parameter.
#[derive(Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuth {
    /// Header or query parameter name, e.g. `X-API-Key`.
    pub name: String,
    /// The key; may be `{{ secrets.… }}` (in a header only: the URL is logged).
    pub value: String,
    /// Where it goes. In JSON `in`. Default: `header`.
    #[serde(rename = "in")]
    #[cfg_attr(
        feature = "schema",
        schemars(rename = "in", extend("default" = DEFAULT_API_KEY_IN.as_str()))
    )]
    pub location: Option<ApiKeyIn>,
}

impl ApiKeyAuth {
    /// Where the key goes, its default applied.
    pub fn placement(&self) -> ApiKeyIn {
        self.location.unwrap_or(DEFAULT_API_KEY_IN)
    }
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyIn {
    /// A request header (the default).
    Header,
    /// A query parameter (only for keys written in the config: a key from
    /// `context.secrets` may not go into the URL, which servers and proxies log).
    Query,
}

impl ApiKeyIn {
    /// The placement's name in the step-config JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyIn::Header => "header",
            ApiKeyIn::Query => "query",
        }
    }
}

/// The OAuth 2.0 client credentials grant (RFC 6749 §4.4): the step
/// fetches an access token from `token_url`, keeps it in the tenant's
/// store for later runs, and sends it as `Authorization: Bearer`.
#[derive(Clone, PartialEq, Eq, Deserialize, Mirror)]
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
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_CLIENT_AUTH.as_str())))]
    pub client_auth: Option<Oauth2ClientAuth>,
    /// A cached token is replaced this many seconds before it expires, from
    /// 0 to 3600. Default: 60.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_EXPIRY_MARGIN_S)))]
    pub expiry_margin_s: Option<u32>,
    /// How long a token without `expires_in` is kept, from 1 to 86400.
    /// Default: 3600.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_TOKEN_LIFETIME_S)))]
    pub default_lifetime_s: Option<u32>,
    /// Responses that reject the token: the step fetches a new one and tries
    /// once more. Default: status 401 only.
    pub refresh_on: Option<TokenRefresh>,
}

impl Oauth2ClientCredentials {
    /// `client_auth` with its default applied.
    pub fn client_auth(&self) -> Oauth2ClientAuth {
        self.client_auth.unwrap_or(DEFAULT_CLIENT_AUTH)
    }
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Oauth2ClientAuth {
    /// `Authorization: Basic` over the form-encoded id and secret (the default).
    Basic,
    /// `client_id` and `client_secret` as form parameters of the body.
    Body,
}

impl Oauth2ClientAuth {
    /// The method's name in the step-config JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Oauth2ClientAuth::Basic => "basic",
            Oauth2ClientAuth::Body => "body",
        }
    }
}

/// When a response makes the step fetch a new token and try once more.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRefresh {
    /// Statuses that do. Default: `[401]`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_REFRESH_STATUS)))]
    pub status: Option<Vec<u16>>,
    /// A response-body condition that does, on any status (APIs that answer
    /// 200 with "token expired"). Default: none.
    pub body: Option<TokenSignal>,
}

/// A value in the response JSON that means the token is no longer valid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenSignal {
    /// JSON Pointer (RFC 6901) into the response JSON, e.g. `/error/code`.
    pub pointer: String,
    /// Values at `pointer` that signal expiry: a string matches a JSON
    /// string with that text, anything else the value's compact JSON.
    pub values: Vec<String>,
}

/// HMAC-SHA256 signing of every attempt.
#[derive(Clone, PartialEq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// The secret, or several (key rotation: one signature each). In JSON
    /// `secret`: a string or a list of strings; may be `{{ secrets.… }}`.
    #[serde(rename = "secret", deserialize_with = "crate::model::shapes::secrets")]
    #[cfg_attr(
        feature = "schema",
        schemars(rename = "secret", schema_with = "crate::model::schema::secrets")
    )]
    pub secrets: Vec<String>,
    /// Signature scheme. Default: `persona`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_SIGNING_SCHEME.as_str())))]
    pub scheme: Option<SigningScheme>,
    /// Header carrying the signature. Default: `Persona-Signature` (persona),
    /// `webhook-signature` (standard-webhooks), `X-Hub-Signature-256` (github).
    pub header: Option<String>,
}

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

/// HMAC signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Mirror)]
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
