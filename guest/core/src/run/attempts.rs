//! The attempt loop: until success, a failure not worth retrying, the last
//! attempt or the deadline; waits from the retry plan or `Retry-After`; one
//! idempotency key (and Standard Webhooks message id) per run.

use super::oauth2::Tokens;
use super::plan::Plan;
use super::redact::Redacting;
use super::redirect::send_following;
use super::{AttemptLimits, Effects};
use crate::model::{Attempt, AuthError, KeyValue, Problem, Response, SigningScheme, StepError, WaitReason};
use crate::signing::Signer;
use crate::request::PreparedRequest;
use crate::response::decode;
use crate::retry::{parse_retry_after, retryable};

/// Header carrying the idempotency key (IETF draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The result of one attempt.
struct Tried {
    response: Option<Response>,
    outputs: Vec<KeyValue>,
    error: Option<StepError>,
    maybe_sent: bool,
}

/// How the attempts ended.
pub(super) struct Last {
    pub(super) response: Option<Response>,
    pub(super) outputs: Vec<KeyValue>,
    pub(super) attempts: Vec<Attempt>,
    pub(super) error: Option<StepError>,
}

/// Attempts until success, a failure not worth retrying, the last attempt or
/// the deadline. A response that rejects an OAuth 2.0 token is followed by
/// one more attempt with a new token, outside the retry policy's count.
pub(super) fn attempt_all(plan: &Plan, fx: &mut Redacting<'_>) -> Last {
    let started = fx.now_ms();
    let deadline = plan.retry.deadline_ms.map(|d| started + u64::from(d));
    let mut base = plan.request.clone();
    if plan.retry.idempotency_key && base.header(IDEMPOTENCY_KEY_HEADER).is_none() {
        // One key for every attempt of this run, so the server can deduplicate.
        base.headers.push(KeyValue::new(IDEMPOTENCY_KEY_HEADER, uuid_v4(fx)));
    }
    let has_key = base.header(IDEMPOTENCY_KEY_HEADER).is_some();
    // Standard Webhooks: the id stays the same across retries (spec, "webhook-id").
    let message_id = match plan.signer.as_ref().map(Signer::scheme) {
        Some(SigningScheme::StandardWebhooks) => format!("msg_{}", uuid_v4(fx).replace('-', "")),
        _ => String::new(),
    };
    let mut attempts: Vec<Attempt> = Vec::new();
    let max_attempts = plan.retry.max_attempts();
    let mut tokens = plan.oauth2.as_ref().map(|grant| Tokens::new(grant, plan.limits));
    let mut refreshed = false;
    // `number` counts every attempt; `counted` those the retry policy counts.
    let (mut number, mut counted) = (0, 0);
    while counted < max_attempts {
        number += 1;
        counted += 1;
        let mut limits = plan.limits;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_sub(fx.now_ms());
            limits.timeout_ms = limits.timeout_ms.min(u32::try_from(left).unwrap_or(u32::MAX)).max(1);
        }
        let mut request = base.clone();
        let attempt_started = fx.now_ms();
        if let Some(tokens) = &mut tokens {
            match tokens.header(fx) {
                Ok(header) => request.headers.push(header),
                Err(error) => {
                    let elapsed_ms = fx.now_ms().saturating_sub(attempt_started);
                    fx.progress(&format!("attempt {number} failed after {elapsed_ms} ms ({}): {error}", error.kind()));
                    attempts.push(Attempt { number, status: None, error: Some(error.clone()), elapsed_ms, wait_ms: None, wait_reason: None });
                    return Last { response: None, outputs: Vec::new(), attempts, error: Some(error) };
                }
            }
        }
        if let Some(signer) = &plan.signer {
            // Re-signed on every attempt, with a fresh timestamp.
            let names = signer.header_names();
            request.headers.retain(|kv| !names.contains(&kv.key.to_ascii_lowercase()));
            request.headers.extend(signer.sign(&request.body, fx.unix_secs(), &message_id));
        }
        let mut tried = attempt(plan, &request, limits, fx);
        let elapsed_ms = fx.now_ms().saturating_sub(attempt_started);
        let status = tried.response.as_ref().map(|r| r.status);
        if let (Some(tokens), Some(response)) = (&mut tokens, &tried.response)
            && tokens.rejected_by(response)
        {
            if !refreshed {
                refreshed = true;
                counted -= 1;
                tokens.invalidate(fx);
                attempts.push(Attempt { number, status, error: tried.error.clone(), elapsed_ms, wait_ms: Some(0), wait_reason: Some(WaitReason::TokenRefresh) });
                fx.progress(&format!("attempt {number}: {} in {elapsed_ms} ms rejected the token; fetching a new one and trying once more", response.status));
                continue;
            }
            if tokens.signals_expiry(response) {
                // A 2xx that still says "expired" after a new token is not a success.
                tried.outputs.clear();
                tried.error = Some(StepError::Auth(AuthError {
                    code: None,
                    message: format!("the response ({}) still signals an expired token after a new one was fetched", response.status),
                }));
            }
        }
        attempts.push(Attempt { number, status, error: tried.error.clone(), elapsed_ms, wait_ms: None, wait_reason: None });
        let Some(error) = tried.error else {
            fx.progress(&format!("attempt {number}: {} in {elapsed_ms} ms", status.unwrap_or_default()));
            return Last { response: tried.response, outputs: tried.outputs, attempts, error: None };
        };
        let failed = format!("attempt {number} failed after {elapsed_ms} ms ({}): {error}", error.kind());
        let stop = |fx: &mut dyn Effects, note: String| {
            fx.progress(&format!("{failed}; {note}"));
            // With retries configured, the error says why they stopped.
            Some(if max_attempts > 1 { with_note(error.clone(), &note) } else { error.clone() })
        };
        if counted == max_attempts {
            let note = if max_attempts > 1 { format!("gave up after {number} attempts") } else { "no retry policy".into() };
            let error = stop(fx, note);
            return Last { response: tried.response, outputs: Vec::new(), attempts, error };
        }
        if let Err(why) = retryable(&plan.retry, request.method, has_key, &error, status, tried.maybe_sent) {
            let error = stop(fx, format!("not retried: {why}"));
            return Last { response: tried.response, outputs: Vec::new(), attempts, error };
        }
        let retry_after = match (&tried.response, status) {
            (Some(r), Some(429 | 503)) => r
                .headers
                .iter()
                .find(|kv| kv.key.eq_ignore_ascii_case("retry-after"))
                .and_then(|kv| parse_retry_after(&kv.value, fx.unix_secs())),
            _ => None,
        };
        let (wait_ms, reason) = match retry_after {
            Some(ms) => (ms.min(u64::from(plan.retry.max_retry_after_ms)), WaitReason::RetryAfter),
            None => {
                let random = unit_random(fx);
                let reason = match plan.retry.schedule {
                    crate::retry::Schedule::Intervals(_) => WaitReason::Interval,
                    crate::retry::Schedule::Exponential { .. } => WaitReason::Backoff,
                };
                (plan.retry.wait_ms(number, random), reason)
            }
        };
        if let Some(deadline) = deadline {
            let now = fx.now_ms();
            if now.saturating_add(wait_ms) >= deadline {
                let note = format!(
                    "gave up: waiting {wait_ms} ms ({}) would pass retry.deadline_ms ({} ms)",
                    reason.as_str(),
                    deadline - started
                );
                let error = stop(fx, note);
                return Last { response: tried.response, outputs: Vec::new(), attempts, error };
            }
        }
        if let Some(last) = attempts.last_mut() {
            last.wait_ms = Some(wait_ms);
            last.wait_reason = Some(reason);
        }
        fx.progress(&format!("{failed}; retrying in {wait_ms} ms ({})", reason.as_str()));
        fx.sleep_ms(wait_ms);
    }
    // The loop returns on its last attempt; this is only reached with zero attempts.
    Last { response: None, outputs: Vec::new(), attempts, error: Some(StepError::Internal("no attempt was made".into())) }
}


/// One attempt: send (following redirects), decode, check the status, the
/// schema and the outputs.
fn attempt(plan: &Plan, request: &PreparedRequest, limits: AttemptLimits, fx: &mut dyn Effects) -> Tried {
    let raw = match send_following(plan, request, limits, fx) {
        Err(e) => return Tried { response: None, outputs: Vec::new(), error: Some(e.error), maybe_sent: e.maybe_sent },
        Ok(raw) => raw,
    };
    let (response, json, decode_error) = decode(raw, plan.format);
    let checked = if plan.expected.contains(response.status) {
        decode_error.map_or_else(|| use_json(plan, json.as_ref()), Err)
    } else {
        Err(StepError::UnexpectedStatus(format!("the server answered {}; expected {}", response.status, plan.expected)))
    };
    let (outputs, error) = match checked {
        Ok(outputs) => (outputs, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Tried { response: Some(response), outputs, error, maybe_sent: true }
}

/// Checks the response JSON against the schema and extracts the outputs.
fn use_json(plan: &Plan, json: Option<&serde_json::Value>) -> Result<Vec<KeyValue>, StepError> {
    if plan.schema.is_none() && plan.outputs.is_empty() {
        return Ok(Vec::new());
    }
    let json = json.ok_or_else(|| {
        StepError::InvalidResponse("the response is not JSON, but response_schema or outputs need JSON".into())
    })?;
    if let Some(schema) = &plan.schema {
        schema.check(json).map_err(StepError::SchemaMismatch)?;
    }
    let mut missing = Vec::new();
    let mut outputs = Vec::new();
    for kv in &plan.outputs {
        match json.pointer(&kv.value) {
            Some(v) => outputs.push(KeyValue::new(kv.key.clone(), v.to_string())),
            None => missing.push(Problem::new(
                format!("outputs.{}", kv.key),
                format!("{:?} names nothing in the response JSON", kv.value),
            )),
        }
    }
    if missing.is_empty() { Ok(outputs) } else { Err(StepError::MissingOutput(missing)) }
}

/// A random UUID version 4 (RFC 9562 §5.4) from the host's randomness.
fn uuid_v4(fx: &mut dyn Effects) -> String {
    let mut b = [0u8; 16];
    let random = fx.random_bytes(16);
    let n = random.len().min(16);
    b[..n].copy_from_slice(&random[..n]);
    uuid::Builder::from_random_bytes(b).into_uuid().hyphenated().to_string()
}

/// A uniform random number in [0, 1).
fn unit_random(fx: &mut dyn Effects) -> f64 {
    let mut b = fx.random_bytes(8);
    b.resize(8, 0);
    let n = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// Appends why retrying stopped to the message of single-message errors.
fn with_note(error: StepError, note: &str) -> StepError {
    if error.problems().is_some() { error } else { error.map_text(|m| format!("{m}; {note}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::tests::Fake;

    #[test]
    fn uuid_v4_sets_version_and_variant_from_the_hosts_bytes() {
        let mut fx = Fake::default();
        let id = uuid_v4(&mut fx);
        // RFC 9562 §5.4: version nibble 4, variant bits 10.
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id.matches('-').count(), 4);
    }
}
