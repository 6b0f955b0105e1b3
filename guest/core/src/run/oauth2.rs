//! OAuth 2.0 client credentials (RFC 6749 §4.4): the access token of a grant,
//! fetched once and shared by the tenant's runs through the tenant's store
//! ([`Effects::store_get`] and friends, `wasi:keyvalue` in the component).
//!
//! - **Cache key**: a SHA-256 over everything that identifies the grant
//!   (token URL, client id, client secret, scope, audience, extra parameters,
//!   client authentication), so two grants never share a token and the store
//!   holds no secret in its keys. The host scopes the store per tenant.
//! - **Single flight**: a cold cache is filled by one run. Each waiting run
//!   increments the grant's lock counter; the run that gets 1 fetches (after
//!   looking once more, since another run may have just finished), stores the
//!   token and deletes the lock; the others poll the store. A lock older than
//!   one token request plus [`STALE_LOCK_GRACE_MS`] (its holder trapped or was
//!   stopped) is taken over.
//! - **Expiry**: a token is used until `expiry_margin_s` (default 60) before
//!   `expires_in` runs out; without `expires_in` it is kept for
//!   `default_lifetime_s` (default 3600).
//! - **Rejection**: a response that `refresh_on` matches invalidates the token
//!   (only if the store still holds that token: a concurrent run may already
//!   have replaced it), and the attempt loop fetches again and tries once more.

use super::redact::Redacting;
use super::{AttemptLimits, Effects};
use crate::auth::GrantPlan;
use crate::model::{AuthError, KeyValue, Method, Oauth2ClientAuth, Response, StepError};
use crate::request::{PreparedRequest, USER_AGENT};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest token response read: a token response is a small JSON object.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 64 * 1024;
/// How often a run waiting for another run's token request looks again.
const POLL_MS: u64 = 20;
/// Beyond one token request's timeout, how long a lock may stand before a
/// waiting run takes it over.
const STALE_LOCK_GRACE_MS: u64 = 5_000;

/// A cached token as the store holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    access_token: String,
    /// Unix seconds after which the token is no longer used.
    expires_at: u64,
}

/// The token source of one run.
pub(super) struct Tokens {
    plan: GrantPlan,
    key: String,
    lock: String,
    limits: AttemptLimits,
    /// The token the last attempt sent.
    current: Option<String>,
}

impl Tokens {
    /// The token source of a rendered, checked grant; token requests get the
    /// step's attempt timeout.
    pub(super) fn new(plan: &GrantPlan, limits: AttemptLimits) -> Tokens {
        let grant = &plan.grant;
        let mut hash = Sha256::new();
        let mut field = |s: Option<&str>| {
            // Tagged and length-prefixed, so no two different grants hash
            // their fields alike (an absent scope is not an empty one).
            match s {
                None => hash.update([0]),
                Some(s) => {
                    hash.update([1]);
                    hash.update((s.len() as u64).to_le_bytes());
                    hash.update(s.as_bytes());
                }
            }
        };
        field(Some(grant.token_url.trim()));
        field(Some(&grant.client_id));
        field(Some(&grant.client_secret));
        field(grant.scope.as_deref());
        field(grant.audience.as_deref());
        for kv in &grant.params {
            field(Some(&kv.key));
            field(Some(&kv.value));
        }
        field(Some(plan.client_auth.as_str()));
        let key = format!("oauth2/{}", hex::encode(hash.finalize()));
        Tokens {
            lock: format!("{key}/lock"),
            key,
            plan: plan.clone(),
            limits: AttemptLimits {
                max_response_bytes: MAX_TOKEN_RESPONSE_BYTES,
                decompress: true,
                ..limits
            },
            current: None,
        }
    }

    /// The `Authorization` header for the next attempt: a cached token that is
    /// not about to expire, or a new one (single-flight across the tenant's runs).
    pub(super) fn header(&mut self, fx: &mut Redacting<'_>) -> Result<KeyValue, StepError> {
        let token = self.token(fx)?;
        fx.redactor.add(&token);
        let header = crate::auth::bearer(&token);
        self.current = Some(token);
        Ok(header)
    }

    fn token(&self, fx: &mut dyn Effects) -> Result<String, StepError> {
        let mut waiting_since = fx.now_ms();
        let stale_after = u64::from(self.limits.timeout_ms) + STALE_LOCK_GRACE_MS;
        loop {
            if let Some(token) = self.cached(fx) {
                return Ok(token);
            }
            match fx.store_increment(&self.lock) {
                Err(why) => {
                    fx.progress(&format!("oauth2: the tenant's store is unavailable ({why}); fetching a token for this run only"));
                    return self.fetch(fx).map(|(token, _)| token);
                }
                Ok(1) => {
                    // Another run may have stored a token between our look and the lock.
                    let result = match self.cached(fx) {
                        Some(token) => Ok(token),
                        None => self.fetch(fx).map(|(token, expires_at)| {
                            let stored = serde_json::to_vec(&Stored {
                                access_token: token.clone(),
                                expires_at,
                            })
                            .unwrap_or_default();
                            if let Err(why) = fx.store_set(&self.key, &stored) {
                                fx.progress(&format!(
                                    "oauth2: the token could not be cached ({why})"
                                ));
                            }
                            token
                        }),
                    };
                    // Released on failure too, so a waiting run tries in turn.
                    let _ = fx.store_delete(&self.lock);
                    return result;
                }
                Ok(_) => {
                    if fx.now_ms().saturating_sub(waiting_since) > stale_after {
                        fx.progress("oauth2: a concurrent run's token request did not finish; taking it over");
                        let _ = fx.store_delete(&self.lock);
                        waiting_since = fx.now_ms();
                        continue;
                    }
                    fx.sleep_ms(POLL_MS);
                }
            }
        }
    }

    /// The cached token, unless it expires within the margin.
    fn cached(&self, fx: &mut dyn Effects) -> Option<String> {
        let stored: Stored = serde_json::from_slice(&fx.store_get(&self.key).ok()??).ok()?;
        (fx.unix_secs()
            .saturating_add(u64::from(self.plan.expiry_margin_s))
            < stored.expires_at)
            .then_some(stored.access_token)
    }

    /// Whether `response` rejects the token (`refresh_on`).
    pub(super) fn rejected_by(&self, response: &Response) -> bool {
        if self.plan.refresh_status.contains(&response.status) {
            return true;
        }
        let Some(signal) = &self.plan.refresh_body else {
            return false;
        };
        let Some(json) = response
            .json
            .as_deref()
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
        else {
            return false;
        };
        match json.pointer(&signal.pointer) {
            Some(Value::String(s)) => signal.values.iter().any(|v| v == s),
            Some(other) => signal.values.contains(&other.to_string()),
            None => false,
        }
    }

    /// Whether `response` rejects the token by its body (`refresh_on.body`)
    /// although its status may count as success.
    pub(super) fn signals_expiry(&self, response: &Response) -> bool {
        self.plan.refresh_body.is_some()
            && !self.plan.refresh_status.contains(&response.status)
            && self.rejected_by(response)
    }

    /// Forgets the token the last attempt sent, in the store too unless a
    /// concurrent run has already replaced it.
    pub(super) fn invalidate(&mut self, fx: &mut dyn Effects) {
        let Some(rejected) = self.current.take() else {
            return;
        };
        let stored = fx
            .store_get(&self.key)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<Stored>(&v).ok());
        if stored.is_some_and(|s| s.access_token == rejected) {
            let _ = fx.store_delete(&self.key);
        }
    }

    /// The token request (RFC 6749 §4.4.2).
    fn request(&self) -> Result<PreparedRequest, StepError> {
        let grant = &self.plan.grant;
        let url = url::Url::parse(grant.token_url.trim())
            .map_err(|e| auth_error(None, format!("token_url is not a valid URL: {e}")))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        for (name, value) in [("scope", &grant.scope), ("audience", &grant.audience)] {
            if let Some(value) = value {
                form.append_pair(name, value);
            }
        }
        for kv in &grant.params {
            form.append_pair(&kv.key, &kv.value);
        }
        let mut headers = vec![
            KeyValue::new("Content-Type", "application/x-www-form-urlencoded"),
            KeyValue::new("Accept", "application/json"),
            KeyValue::new("User-Agent", USER_AGENT),
        ];
        match self.plan.client_auth {
            Oauth2ClientAuth::Basic => headers.push(KeyValue::new(
                "Authorization",
                format!("Basic {}", grant.basic_token()),
            )),
            Oauth2ClientAuth::Body => {
                form.append_pair("client_id", &grant.client_id);
                form.append_pair("client_secret", &grant.client_secret);
            }
        }
        Ok(PreparedRequest {
            method: Method::Post,
            url,
            headers,
            body: std::sync::Arc::new(form.finish().into_bytes()),
        })
    }

    /// Fetches a token: the token and the Unix second it stops being used.
    fn fetch(&self, fx: &mut dyn Effects) -> Result<(String, u64), StepError> {
        let request = self.request()?;
        let origin = request.url.origin().ascii_serialization();
        let started = fx.now_ms();
        let raw = fx.send(&request, self.limits).map_err(|e| match e.error {
            // The tenant's policy refused the token endpoint: fixed in the policy, reported as such.
            StepError::Denied(m) => {
                StepError::Denied(format!("the token request to {origin}: {m}"))
            }
            other => auth_error(
                None,
                format!(
                    "the token request to {origin} failed ({}): {other}",
                    other.kind()
                ),
            ),
        })?;
        let json: Option<Value> = serde_json::from_slice(&raw.body).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
        if !(200..300).contains(&raw.status) {
            return Err(match field("error").and_then(Value::as_str) {
                // RFC 6749 §5.2: error, error_description.
                Some(code) => {
                    let description = field("error_description")
                        .and_then(Value::as_str)
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    auth_error(
                        Some(code),
                        format!(
                            "the token endpoint {origin} refused the request ({} {code}{description})",
                            raw.status
                        ),
                    )
                }
                None => auth_error(
                    None,
                    format!(
                        "the token endpoint {origin} answered {} without an OAuth 2.0 error response",
                        raw.status
                    ),
                ),
            });
        }
        let token = match field("access_token") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ if json.is_none() => {
                return Err(auth_error(
                    None,
                    format!(
                        "the token endpoint {origin} answered {} with a body that is not JSON",
                        raw.status
                    ),
                ));
            }
            _ => {
                return Err(auth_error(
                    None,
                    format!("the token endpoint {origin}'s response has no access_token"),
                ));
            }
        };
        // RFC 6749 §7.1: the step sends bearer tokens only (RFC 6750); a
        // missing token_type is taken as bearer, as most clients do.
        if let Some(kind) = field("token_type").and_then(Value::as_str)
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(auth_error(
                None,
                format!(
                    "the token endpoint {origin} issued a {kind:?} token; only bearer tokens are supported"
                ),
            ));
        }
        if crate::headers::check_value("access_token", &token).is_some() {
            return Err(auth_error(
                None,
                format!(
                    "the token endpoint {origin} issued a token that cannot be sent in a header"
                ),
            ));
        }
        // RFC 6749 §5.1: expires_in is a number of seconds; some servers send a string.
        // Without it, the token is kept for the grant's `default_lifetime_s`.
        let given = match field("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let lifetime = given.unwrap_or(u64::from(self.plan.default_lifetime_s));
        let took = fx.now_ms().saturating_sub(started);
        fx.progress(&format!(
            "oauth2: new token from {origin} in {took} ms, valid {lifetime} s"
        ));
        Ok((token, fx.unix_secs().saturating_add(lifetime)))
    }
}

fn auth_error(code: Option<&str>, message: String) -> StepError {
    StepError::Auth(AuthError {
        code: code.map(str::to_string),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Oauth2ClientCredentials, TokenRefresh, TokenSignal};
    use crate::run::redact::Redactor;
    use crate::run::tests::{Fake, reply};

    fn plan(grant: Oauth2ClientCredentials) -> GrantPlan {
        crate::auth::grant_plan(Some(&crate::model::Auth::Oauth2ClientCredentials(grant)))
            .expect("an OAuth 2.0 grant")
    }

    fn grant() -> Oauth2ClientCredentials {
        Oauth2ClientCredentials {
            token_url: "https://auth.test/token".into(),
            client_id: "my client".into(),
            client_secret: "s3cr3t&=".into(),
            scope: Some("read write".into()),
            audience: None,
            params: vec![KeyValue::new("resource", "https://api.test")],
            client_auth: None,
            expiry_margin_s: None,
            default_lifetime_s: None,
            refresh_on: None,
        }
    }

    fn limits() -> AttemptLimits {
        AttemptLimits {
            timeout_ms: 1000,
            max_response_bytes: 1 << 20,
            decompress: true,
        }
    }

    #[test]
    fn token_request_is_rfc6749_4_4_with_form_encoded_basic_credentials() {
        let tokens = Tokens::new(&plan(grant()), limits());
        let r = tokens.request().expect("request");
        assert_eq!(
            (r.method, r.url.as_str()),
            (Method::Post, "https://auth.test/token")
        );
        assert_eq!(
            *r.body,
            b"grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fapi.test"
        );
        // RFC 6749 §2.3.1: "my+client" : "s3cr3t%26%3D", then Basic.
        assert_eq!(
            r.header("authorization"),
            Some("Basic bXkrY2xpZW50OnMzY3IzdCUyNiUzRA==")
        );
        let body = Tokens::new(
            &plan(Oauth2ClientCredentials {
                client_auth: Some(Oauth2ClientAuth::Body),
                ..grant()
            }),
            limits(),
        )
        .request()
        .expect("request");
        assert!(body.header("authorization").is_none());
        assert!(
            String::from_utf8_lossy(&body.body)
                .ends_with("&client_id=my+client&client_secret=s3cr3t%26%3D")
        );
    }

    #[test]
    fn cached_until_the_margin_then_fetched_again() {
        let mut fx = Fake::replying(vec![
            reply(
                200,
                r#"{"access_token":"tok_one_1234","token_type":"Bearer","expires_in":120}"#,
            ),
            reply(
                200,
                r#"{"access_token":"tok_two_5678","token_type":"bearer"}"#,
            ),
        ]);
        let mut tokens = Tokens::new(&plan(grant()), limits());
        let mut redacting = Redacting::new(&mut fx, Redactor::default());
        assert_eq!(
            tokens.header(&mut redacting).expect("token").value,
            "Bearer tok_one_1234"
        );
        assert_eq!(
            tokens.header(&mut redacting).expect("cached").value,
            "Bearer tok_one_1234"
        );
        assert_eq!(redacting.redactor.apply("x tok_one_1234"), "x ***");
        drop(redacting);
        assert_eq!(fx.sent.len(), 1);
        assert!(
            fx.store
                .keys()
                .all(|k| !k.contains("s3cr3t") && !k.ends_with("/lock")),
            "{:?}",
            fx.store.keys()
        );
        // 120 s lifetime, 60 s margin: after 61 s it is replaced.
        fx.clock += 61_000;
        let mut redacting = Redacting::new(&mut fx, Redactor::default());
        assert_eq!(
            tokens.header(&mut redacting).expect("new").value,
            "Bearer tok_two_5678"
        );
        drop(redacting);
        assert_eq!(fx.sent.len(), 2);
    }

    #[test]
    fn token_endpoint_errors_name_the_oauth2_code_never_the_secret() {
        let cases = [
            (
                reply(
                    401,
                    r#"{"error":"invalid_client","error_description":"bad client"}"#,
                ),
                Some("invalid_client"),
                "refused the request (401 invalid_client: bad client)",
            ),
            (
                reply(400, r#"{"error":"invalid_scope"}"#),
                Some("invalid_scope"),
                "(400 invalid_scope)",
            ),
            (
                reply(500, "<html>oops</html>"),
                None,
                "answered 500 without an OAuth 2.0 error response",
            ),
            (reply(200, "not json"), None, "with a body that is not JSON"),
            (
                reply(200, r#"{"token_type":"bearer"}"#),
                None,
                "has no access_token",
            ),
            (
                reply(200, r#"{"access_token":"abcd","token_type":"mac"}"#),
                None,
                "only bearer tokens",
            ),
        ];
        for (answer, code, text) in cases {
            let mut fx = Fake::replying(vec![answer]);
            let err = Tokens::new(&plan(grant()), limits())
                .token(&mut fx)
                .expect_err("error");
            let StepError::Auth(a) = &err else {
                panic!("{err:?}")
            };
            assert_eq!(a.code.as_deref(), code);
            assert!(
                a.message.contains(text) && !a.message.contains("s3cr3t"),
                "{}",
                a.message
            );
            assert!(fx.store.is_empty(), "lock released, nothing cached");
        }
    }

    #[test]
    fn a_run_waits_for_the_lock_holder_and_takes_over_a_stale_lock() {
        let mut fx = Fake::replying(vec![reply(200, r#"{"access_token":"tok_after_stale"}"#)]);
        let tokens = Tokens::new(&plan(grant()), limits());
        fx.store.insert(tokens.lock.clone(), b"1".to_vec());
        assert_eq!(tokens.token(&mut fx).expect("token"), "tok_after_stale");
        // Polled for the timeout (1 s) plus the grace, then fetched itself.
        assert!(
            fx.slept.len() as u64 >= (1000 + STALE_LOCK_GRACE_MS) / POLL_MS,
            "{}",
            fx.slept.len()
        );
        assert!(fx.log.iter().any(|l| l.contains("taking it over")));
    }

    #[test]
    fn rejection_by_status_or_body_and_invalidation_of_only_that_token() {
        let grant = Oauth2ClientCredentials {
            refresh_on: Some(TokenRefresh {
                status: Some(vec![401, 403]),
                body: Some(TokenSignal {
                    pointer: "/error/code".into(),
                    values: vec!["token_expired".into(), "42".into()],
                }),
            }),
            ..grant()
        };
        let tokens = Tokens::new(&plan(grant.clone()), limits());
        let response = |status: u16, json: Option<&str>| Response {
            status,
            headers: vec![],
            body: String::new(),
            body_base64: None,
            json: json.map(str::to_string),
            content_type: None,
            body_sha256: None,
        };
        assert!(tokens.rejected_by(&response(403, None)));
        assert!(!tokens.rejected_by(&response(500, None)));
        assert!(tokens.signals_expiry(&response(
            200,
            Some(r#"{"error":{"code":"token_expired"}}"#)
        )));
        assert!(tokens.signals_expiry(&response(200, Some(r#"{"error":{"code":42}}"#))));
        assert!(!tokens.rejected_by(&response(200, Some(r#"{"error":{"code":"other"}}"#))));

        let mut fx = Fake::default();
        let mut tokens = Tokens::new(&plan(grant), limits());
        let newer = serde_json::to_vec(&Stored {
            access_token: "newer".into(),
            expires_at: u64::MAX,
        })
        .expect("json");
        fx.store.insert(tokens.key.clone(), newer.clone());
        tokens.current = Some("older".into());
        tokens.invalidate(&mut fx);
        assert_eq!(
            fx.store.get(&tokens.key),
            Some(&newer),
            "a token another run stored stays"
        );
        tokens.current = Some("newer".into());
        tokens.invalidate(&mut fx);
        assert!(!fx.store.contains_key(&tokens.key));
    }

    #[test]
    fn grants_differing_in_any_field_have_different_keys() {
        let base = Tokens::new(&plan(grant()), limits()).key;
        let others = [
            Oauth2ClientCredentials {
                client_secret: "other".into(),
                ..grant()
            },
            Oauth2ClientCredentials {
                scope: None,
                ..grant()
            },
            Oauth2ClientCredentials {
                audience: Some("a".into()),
                ..grant()
            },
            Oauth2ClientCredentials {
                client_auth: Some(Oauth2ClientAuth::Body),
                ..grant()
            },
            Oauth2ClientCredentials {
                token_url: "https://auth.test/other".into(),
                ..grant()
            },
        ];
        for other in others {
            assert_ne!(Tokens::new(&plan(other), limits()).key, base);
        }
    }
}
