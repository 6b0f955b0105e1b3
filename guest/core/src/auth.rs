//! `auth`: credentials the step sends (README "Authentication"): HTTP Basic
//! (RFC 7617), a bearer token (RFC 6750 §2.1), an API key in a header or
//! the query, or a bearer token from the OAuth 2.0 client credentials grant
//! (RFC 6749 §4.4, fetched and cached by [`crate::run`]). Their templates are
//! rendered like every other field ([`crate::template`]); this module checks
//! the rendered values, adds them to the request, and names what the
//! [`Redactor`](crate::run) must hide.

use crate::headers::{check_header, check_value};
use crate::model::{
    ApiKeyIn, Auth, DEFAULT_EXPIRY_MARGIN_S, DEFAULT_REFRESH_STATUS, DEFAULT_TOKEN_LIFETIME_S,
    KeyValue, Oauth2ClientAuth, Oauth2ClientCredentials, Problem, StepConfig, TokenSignal,
};
use base64::Engine as _;

/// Largest `expiry_margin_s`: an hour, the lifetime of most tokens.
const MAX_EXPIRY_MARGIN_S: u32 = 3600;
/// Largest `default_lifetime_s`: a day.
const MAX_DEFAULT_LIFETIME_S: u32 = 86_400;
/// Token request parameters the step sets itself (RFC 6749 §4.4.2, §2.3.1).
const RESERVED_PARAMS: [&str; 5] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
];

impl Oauth2ClientCredentials {
    /// The form-encoded id and secret of `client_auth: basic` (RFC 6749
    /// §2.3.1: each is `application/x-www-form-urlencoded` before Basic).
    pub(crate) fn basic_token(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        basic_token(&enc(&self.client_id), &enc(&self.client_secret))
    }
}

/// A checked OAuth 2.0 client credentials grant, its templates rendered and
/// its defaults applied: what a run's token source needs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct GrantPlan {
    /// The grant as configured (rendered).
    pub(crate) grant: Oauth2ClientCredentials,
    pub(crate) client_auth: Oauth2ClientAuth,
    pub(crate) expiry_margin_s: u32,
    pub(crate) default_lifetime_s: u32,
    /// Statuses that reject the token.
    pub(crate) refresh_status: Vec<u16>,
    /// A response-body value that rejects the token.
    pub(crate) refresh_body: Option<TokenSignal>,
}

// Hand-written so that the client secret never reaches a log through `{:?}`.
impl std::fmt::Debug for GrantPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrantPlan({:?}, redacted)", self.grant.token_url)
    }
}

/// The plan of `auth`'s OAuth 2.0 grant, if it has one (of a checked config).
pub(crate) fn grant_plan(auth: Option<&Auth>) -> Option<GrantPlan> {
    let Some(Auth::Oauth2ClientCredentials(grant)) = auth else {
        return None;
    };
    let refresh = grant.refresh_on.as_ref();
    Some(GrantPlan {
        client_auth: grant.client_auth(),
        expiry_margin_s: grant.expiry_margin_s.unwrap_or(DEFAULT_EXPIRY_MARGIN_S),
        default_lifetime_s: grant.default_lifetime_s.unwrap_or(DEFAULT_TOKEN_LIFETIME_S),
        refresh_status: refresh
            .and_then(|r| r.status.clone())
            .unwrap_or_else(|| DEFAULT_REFRESH_STATUS.to_vec()),
        refresh_body: refresh.and_then(|r| r.body.clone()),
        grant: grant.clone(),
    })
}

/// Every problem of `config.auth` and of headers that would fight with it.
pub(crate) fn check(config: &StepConfig) -> Vec<Problem> {
    let Some(auth) = &config.auth else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let sets = |name: &str| {
        config
            .headers
            .iter()
            .position(|kv| kv.key.eq_ignore_ascii_case(name))
            .map(|i| {
                Problem::new(
                    format!("headers[{i}].key"),
                    format!("{name} is set by auth; remove this header or the auth"),
                )
            })
    };
    match auth {
        Auth::Basic(basic) => {
            if basic.username.contains(':') {
                // RFC 7617 §2: the user-id cannot contain a colon, which separates it from the password.
                problems.push(Problem::new(
                    "auth.basic.username",
                    "must not contain \":\" (RFC 7617 §2)",
                ));
            }
            for (field, value) in [
                ("auth.basic.username", &basic.username),
                ("auth.basic.password", &basic.password),
            ] {
                if value.chars().any(char::is_control) {
                    problems.push(Problem::new(
                        field,
                        "must not contain control characters (RFC 7617 §2)",
                    ));
                }
            }
            problems.extend(sets("Authorization"));
        }
        Auth::Bearer(bearer) => {
            if bearer.token.trim().is_empty() {
                problems.push(Problem::new("auth.bearer.token", "is empty"));
            }
            problems.extend(check_value("auth.bearer.token", &bearer.token));
            problems.extend(sets("Authorization"));
        }
        Auth::ApiKey(key) => match key.placement() {
            ApiKeyIn::Header => {
                problems.extend(
                    check_header("auth.api_key", &key.name, &key.value)
                        .into_iter()
                        .map(|mut p| {
                            if p.path == "auth.api_key.key" {
                                p.path = "auth.api_key.name".into();
                            }
                            p
                        }),
                );
                problems.extend(sets(&key.name));
            }
            ApiKeyIn::Query => {
                if key.name.is_empty() {
                    problems.push(Problem::new("auth.api_key.name", "is empty"));
                }
            }
        },
        Auth::Oauth2ClientCredentials(grant) => {
            check_grant(grant, &mut problems);
            problems.extend(sets("Authorization"));
        }
    }
    problems
}

/// Every problem of an `oauth2_client_credentials` grant.
fn check_grant(grant: &Oauth2ClientCredentials, problems: &mut Vec<Problem>) {
    const AT: &str = "auth.oauth2_client_credentials";
    crate::checks::check_url_field(&format!("{AT}.token_url"), &grant.token_url, problems);
    for (field, value) in [
        ("client_id", &grant.client_id),
        ("client_secret", &grant.client_secret),
    ] {
        if value.is_empty() {
            problems.push(Problem::new(format!("{AT}.{field}"), "is empty"));
        } else if value.chars().any(char::is_control) {
            problems.push(Problem::new(
                format!("{AT}.{field}"),
                "must not contain control characters",
            ));
        }
    }
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by spaces.
    if let Some(scope) = &grant.scope
        && scope.split(' ').any(|t| {
            t.is_empty()
                || t.bytes()
                    .any(|b| !matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        })
    {
        problems.push(Problem::new(
            format!("{AT}.scope"),
            format!("{scope:?} is not a list of scopes: separate them by single spaces; no quotes, backslashes or control characters (RFC 6749 §3.3)"),
        ));
    }
    for (i, kv) in grant.params.iter().enumerate() {
        if kv.key.is_empty() {
            problems.push(Problem::new(format!("{AT}.params[{i}].key"), "is empty"));
        } else if RESERVED_PARAMS.contains(&kv.key.as_str()) {
            problems.push(Problem::new(
                format!("{AT}.params[{i}].key"),
                format!("{:?} is set by the step; use the grant's own field (client_id, client_secret, scope, audience)", kv.key),
            ));
        }
    }
    if grant
        .expiry_margin_s
        .is_some_and(|m| m > MAX_EXPIRY_MARGIN_S)
    {
        problems.push(Problem::new(
            format!("{AT}.expiry_margin_s"),
            format!("must be at most {MAX_EXPIRY_MARGIN_S}"),
        ));
    }
    if grant
        .default_lifetime_s
        .is_some_and(|l| l == 0 || l > MAX_DEFAULT_LIFETIME_S)
    {
        problems.push(Problem::new(
            format!("{AT}.default_lifetime_s"),
            format!("must be from 1 to {MAX_DEFAULT_LIFETIME_S}"),
        ));
    }
    if let Some(refresh) = &grant.refresh_on {
        for (i, status) in refresh.status.iter().flatten().enumerate() {
            if !(100..=599).contains(status) {
                problems.push(Problem::new(
                    format!("{AT}.refresh_on.status[{i}]"),
                    format!("{status} is not an HTTP status (100-599)"),
                ));
            }
        }
        if let Some(body) = &refresh.body {
            crate::checks::check_pointer(
                &format!("{AT}.refresh_on.body.pointer"),
                &body.pointer,
                problems,
            );
            if body.values.is_empty() {
                problems.push(Problem::new(
                    format!("{AT}.refresh_on.body.values"),
                    "is empty; list the values that signal an expired token",
                ));
            }
        }
    }
}

/// What `auth` adds to a request: a header, a query parameter, or (OAuth
/// 2.0) a header added per attempt with the token of the moment.
pub(crate) enum Credential {
    /// A header to send.
    Header(KeyValue),
    /// A query parameter to append.
    Query(KeyValue),
    /// `Authorization: Bearer` with a token fetched when attempting.
    Fetched,
}

/// The header or query parameter that carries `auth`.
pub(crate) fn credential(auth: &Auth) -> Credential {
    match auth {
        Auth::Basic(b) => Credential::Header(KeyValue::new(
            "Authorization",
            format!("Basic {}", basic_token(&b.username, &b.password)),
        )),
        Auth::Bearer(b) => Credential::Header(bearer(&b.token)),
        Auth::ApiKey(k) => {
            let kv = KeyValue::new(k.name.clone(), k.value.clone());
            match k.placement() {
                ApiKeyIn::Header => Credential::Header(kv),
                ApiKeyIn::Query => Credential::Query(kv),
            }
        }
        Auth::Oauth2ClientCredentials(_) => Credential::Fetched,
    }
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub(crate) fn bearer(token: &str) -> KeyValue {
    KeyValue::new("Authorization", format!("Bearer {token}"))
}

/// The header that carries `auth`, if it is a header: dropped when a
/// redirect leaves the origin, like `Authorization`.
pub(crate) fn header_name(auth: &Auth) -> Option<&str> {
    match auth {
        Auth::Basic(_) | Auth::Bearer(_) | Auth::Oauth2ClientCredentials(_) => {
            Some("Authorization")
        }
        Auth::ApiKey(k) => (k.placement() == ApiKeyIn::Header).then_some(k.name.as_str()),
    }
}

/// The secret values of `auth`, in every form they are sent in (the Basic
/// token too, since servers echo the header), for redaction. Fetched access
/// tokens are added when they are fetched.
pub(crate) fn secrets(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Basic(b) => vec![b.password.clone(), basic_token(&b.username, &b.password)],
        Auth::Bearer(b) => vec![b.token.clone()],
        Auth::ApiKey(k) => vec![k.value.clone()],
        Auth::Oauth2ClientCredentials(o) => vec![
            o.client_secret.clone(),
            url::form_urlencoded::byte_serialize(o.client_secret.as_bytes()).collect(),
            o.basic_token(),
        ],
    }
}

/// `base64(username ":" password)` over UTF-8 (RFC 7617 §2.1, `charset="UTF-8"`).
fn basic_token(username: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKeyAuth, BasicAuth, BearerAuth};

    fn config(auth: Auth) -> StepConfig {
        StepConfig {
            auth: Some(auth),
            ..StepConfig::get("https://api.test/")
        }
    }

    #[test]
    fn basic_is_rfc7617_utf8() {
        // RFC 7617 §2: "Aladdin" / "open sesame" → QWxhZGRpbjpvcGVuIHNlc2FtZQ==.
        let auth = Auth::Basic(BasicAuth {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        });
        let Credential::Header(h) = credential(&auth) else {
            panic!("a header")
        };
        assert_eq!(
            (h.key.as_str(), h.value.as_str()),
            ("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        // RFC 7617 §2.1 example with charset="UTF-8": "test" / "123£" → dGVzdDoxMjPCow==.
        assert_eq!(basic_token("test", "123£"), "dGVzdDoxMjPCow==");
        assert!(secrets(&auth).contains(&"QWxhZGRpbjpvcGVuIHNlc2FtZQ==".to_string()));
    }

    #[test]
    fn problems_name_the_field() {
        let colon = config(Auth::Basic(BasicAuth {
            username: "a:b".into(),
            password: "p".into(),
        }));
        assert_eq!(check(&colon)[0].path, "auth.basic.username");
        let mut both = config(Auth::Bearer(BearerAuth { token: "t".into() }));
        both.headers = vec![KeyValue::new("authorization", "Bearer x")];
        assert_eq!(check(&both)[0].path, "headers[0].key");
        let bad_name = config(Auth::ApiKey(ApiKeyAuth {
            name: "X Key".into(),
            value: "v".into(),
            location: None,
        }));
        assert_eq!(check(&bad_name)[0].path, "auth.api_key.name");
        let empty = config(Auth::Bearer(BearerAuth { token: " ".into() }));
        assert_eq!(check(&empty)[0].path, "auth.bearer.token");
    }

    #[test]
    fn api_key_goes_where_it_is_told() {
        let key = |location| {
            Auth::ApiKey(ApiKeyAuth {
                name: "api_key".into(),
                value: "k1".into(),
                location,
            })
        };
        assert!(matches!(credential(&key(None)), Credential::Header(_)));
        assert!(matches!(
            credential(&key(Some(ApiKeyIn::Query))),
            Credential::Query(_)
        ));
        assert_eq!(header_name(&key(Some(ApiKeyIn::Query))), None);
    }
}
