//! Secrets (signing secrets and every value under `secrets` in the context)
//! removed from everything a run reports: the response, attempt errors and
//! progress lines. The plan builds the [`Redactor`] once per run.

use super::{AttemptLimits, Effects, SendError};
use crate::model::{Attempt, KeyValue, Response};
use crate::request::PreparedRequest;
use crate::response::RawResponse;
use serde_json::Value;
use std::fmt;

/// Removes secrets from everything a run reports.
pub(super) fn redact_response(r: &Redactor, response: Option<Response>) -> Option<Response> {
    // The base64 body and its digest are bytes, not text: nothing to find there.
    response.map(|resp| Response {
        headers: resp
            .headers
            .into_iter()
            .map(|kv| KeyValue::new(kv.key, r.apply(kv.value)))
            .collect(),
        body: r.apply(resp.body),
        json: resp.json.map(|j| r.apply(j)),
        content_type: resp.content_type.map(|c| r.apply(c)),
        ..resp
    })
}

pub(super) fn redact_attempts(r: &Redactor, attempts: Vec<Attempt>) -> Vec<Attempt> {
    attempts
        .into_iter()
        .map(|a| Attempt {
            error: a.error.map(|e| e.map_text(|m| r.apply(m))),
            ..a
        })
        .collect()
}

/// [`Effects`] whose progress lines are redacted. It owns the run's
/// [`Redactor`], so secrets learnt while attempting (fetched tokens) are
/// added where every later line passes. It also counts the run's requests,
/// which is how a refusal of the host's request budget gets its number.
pub(super) struct Redacting<'a> {
    inner: &'a mut dyn Effects,
    pub(super) redactor: Redactor,
    /// Requests the host accepted so far: attempts, redirect hops, pages,
    /// polls and token requests alike, as the host counts them.
    sent: u32,
}

impl<'a> Redacting<'a> {
    pub(super) fn new(inner: &'a mut dyn Effects, redactor: Redactor) -> Self {
        Redacting {
            inner,
            redactor,
            sent: 0,
        }
    }
}

impl Effects for Redacting<'_> {
    fn send(
        &mut self,
        request: &PreparedRequest,
        limits: AttemptLimits,
    ) -> Result<RawResponse, SendError> {
        match self.inner.send(request, limits) {
            Err(mut e) if e.budget_spent => {
                e.error = crate::model::StepError::Denied(format!(
                    "this run has made {} requests, as many as the host allows one run (max_requests_per_run); this one was not sent",
                    self.sent
                ));
                Err(e)
            }
            result => {
                self.sent = self.sent.saturating_add(1);
                result
            }
        }
    }
    fn now_ms(&mut self) -> u64 {
        self.inner.now_ms()
    }
    fn unix_ms(&mut self) -> u64 {
        self.inner.unix_ms()
    }
    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        self.inner.random_bytes(len)
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.inner.sleep_ms(ms)
    }
    fn progress(&mut self, line: &str) {
        self.inner.progress(&self.redactor.apply(line))
    }
    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.store_get(key)
    }
    fn store_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.inner.store_set(key, value)
    }
    fn store_delete(&mut self, key: &str) -> Result<(), String> {
        self.inner.store_delete(key)
    }
    fn store_increment(&mut self, key: &str) -> Result<u64, String> {
        self.inner.store_increment(key)
    }
}

/// Replaces secrets with `***` in everything the step reports.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

/// Secrets shorter than this are not redacted: replacing every "a" or "id" in
/// a response would destroy it while protecting nothing worth the name.
const MIN_REDACTED_LEN: usize = 4;

impl Redactor {
    /// Collects every string under `context.secrets` and the signing secrets.
    pub(crate) fn new(context: &Value, signing_secrets: &[String]) -> Self {
        fn strings(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
                Value::Object(o) => o.values().for_each(|v| strings(v, out)),
                _ => {}
            }
        }
        let mut secrets = Vec::new();
        if let Some(s) = context.get("secrets") {
            strings(s, &mut secrets);
        }
        secrets.extend(signing_secrets.iter().cloned());
        let mut redactor = Redactor::default();
        for s in &secrets {
            redactor.add(s);
        }
        redactor
    }

    /// Adds a secret learnt during the run (a fetched access token).
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.len() < MIN_REDACTED_LEN {
            return;
        }
        // Also the form a secret takes inside JSON text (escaped quotes etc.).
        let escaped = Value::String(secret.to_string()).to_string();
        let escaped = &escaped[1..escaped.len() - 1];
        if escaped != secret {
            self.secrets.push(escaped.to_string());
        }
        self.secrets.push(secret.to_string());
        // Longest first, so a secret containing another is replaced whole; equal
        // ones end up adjacent for dedup.
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
    }

    /// `text` with every secret replaced by `***`. Owned text without a
    /// secret is returned as it is, not copied (a paginated step's items may
    /// be many megabytes).
    pub(crate) fn apply(&self, text: impl Into<String>) -> String {
        self.secrets.iter().fold(text.into(), |t, s| {
            if t.contains(s.as_str()) {
                t.replace(s.as_str(), "***")
            } else {
                t
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_and_signing_secrets_are_redacted_in_their_json_forms_too() {
        let context = json!({"secrets": {"api_key": "sk_live_abcdef", "pin": "123"}});
        let redactor = Redactor::new(&context, &["pa\"ss\\word".to_string()]);
        assert_eq!(
            redactor.apply("echo: Bearer sk_live_abcdef"),
            "echo: Bearer ***"
        );
        assert_eq!(redactor.apply(r#"{"p":"pa\"ss\\word"}"#), r#"{"p":"***"}"#);
        // Shorter than MIN_REDACTED_LEN: left alone.
        assert_eq!(redactor.apply("123"), "123");
    }
}
