//! The attempt loop of each request of a run (the step's one request, or
//! each page or poll): until success, a failure not worth retrying, the last
//! attempt or the deadline; waits from the retry plan or `Retry-After`; one
//! idempotency key (and Standard Webhooks message id) per request.

use super::oauth2::Tokens;
use super::plan::Plan;
use super::redact::Redacting;
use super::redirect::send_following;
use super::{AttemptLimits, Effects};
use crate::model::{
    Attempt, AuthError, KeyValue, Problem, Response, RunState, SigningScheme, StepError, WaitReason,
};
use crate::request::PreparedRequest;
use crate::response::decode;
use crate::retry::{parse_retry_after, retryable};
use crate::signing::Signer;

/// Header carrying the idempotency key (IETF draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The result of one attempt.
struct Tried {
    response: Option<Response>,
    json: Option<serde_json::Value>,
    outputs: Vec<KeyValue>,
    error: Option<StepError>,
    maybe_sent: bool,
    budget_spent: bool,
}

/// How one request's attempts ended.
pub(super) struct Exchanged {
    pub(super) response: Option<Response>,
    /// The response JSON, parsed (for pages and polls to read).
    pub(super) json: Option<serde_json::Value>,
    pub(super) outputs: Vec<KeyValue>,
    pub(super) error: Option<StepError>,
    /// It ended because the host's request budget for the run is spent
    /// ([`super::SendError::budget_spent`]).
    pub(super) budget_spent: bool,
}

/// Which request of the run an exchange is, for `attempts` and progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    /// The step's one request (or the first of a poll).
    Single,
    /// A page (1-based).
    Page(u32),
    /// A poll (1-based).
    Poll(u32),
}

impl Label {
    fn prefix(self) -> String {
        match self {
            Label::Single => String::new(),
            Label::Page(n) => format!("page {n}, "),
            Label::Poll(n) => format!("poll {n}, "),
        }
    }
}

/// What one request of a run is.
pub(super) struct Exchange<'a> {
    pub(super) request: &'a PreparedRequest,
    pub(super) label: Label,
    /// Statuses that end it besides `expected_status` (a poll's `on_status`).
    pub(super) also_ok: &'a [u16],
    /// Check the response against `response_schema` and take `outputs`.
    pub(super) use_json: bool,
    /// Send the OAuth 2.0 token and the signature: false for a follow-up on
    /// another (allowed) origin.
    pub(super) credentials: bool,
}

/// Everything the requests of one run share: the attempts so far (numbered
/// across requests), the retry deadline, the token cache.
pub(super) struct Session<'p> {
    plan: &'p Plan,
    started: u64,
    started_unix_ms: u64,
    deadline: Option<u64>,
    pub(super) attempts: Vec<Attempt>,
    tokens: Option<Tokens>,
    number: u32,
}

impl<'p> Session<'p> {
    pub(super) fn new(plan: &'p Plan, fx: &mut Redacting<'_>) -> Self {
        let started = fx.now_ms();
        let started_unix_ms = fx.unix_ms();
        Session::at(plan, started, started_unix_ms, Vec::new())
    }

    /// The session of a run resumed from `state` ([`crate::run_attempt`]):
    /// its attempts, and its deadline measured from the first attempt's
    /// wall-clock start, since the monotonic clock does not survive a process.
    pub(super) fn resume(plan: &'p Plan, state: &RunState, fx: &mut Redacting<'_>) -> Self {
        let elapsed = fx.unix_ms().saturating_sub(state.started_unix_ms);
        let started = fx.now_ms().saturating_sub(elapsed);
        Session::at(plan, started, state.started_unix_ms, state.attempts.clone())
    }

    fn at(plan: &'p Plan, started: u64, started_unix_ms: u64, attempts: Vec<Attempt>) -> Self {
        Session {
            plan,
            started,
            started_unix_ms,
            deadline: plan.retry.deadline_ms.map(|d| started + u64::from(d)),
            number: u32::try_from(attempts.len()).unwrap_or(u32::MAX),
            attempts,
            tokens: plan
                .oauth2
                .as_ref()
                .map(|grant| Tokens::new(grant, plan.limits)),
        }
    }

    /// Milliseconds left before `retry.deadline_ms`, if one is set.
    pub(super) fn left_ms(&self, fx: &mut dyn Effects) -> Option<u64> {
        self.deadline.map(|d| d.saturating_sub(fx.now_ms()))
    }

    /// The deadline in words, for messages.
    pub(super) fn deadline_note(&self) -> String {
        self.deadline
            .map(|d| format!("retry.deadline_ms ({} ms)", d - self.started))
            .unwrap_or_default()
    }

    /// Records a wait of `ms` on the last attempt.
    pub(super) fn mark_wait(&mut self, ms: u64, reason: WaitReason) {
        if let Some(last) = self.attempts.last_mut() {
            last.wait_ms = Some(ms);
            last.wait_reason = Some(reason);
        }
    }

    /// Waits `ms` before the next request, recorded on the last attempt.
    pub(super) fn wait(&mut self, ms: u64, reason: WaitReason, fx: &mut dyn Effects) {
        self.mark_wait(ms, reason);
        fx.sleep_ms(ms);
    }

    /// Attempts one request until success, a failure not worth retrying,
    /// the last attempt or the deadline. A response that rejects an OAuth 2.0
    /// token is followed by one more attempt with a new token, outside the
    /// retry policy's count. One idempotency key (and Standard Webhooks
    /// message id) per request, the same for all its attempts.
    pub(super) fn exchange(&mut self, ex: &Exchange<'_>, fx: &mut Redacting<'_>) -> Exchanged {
        let mut request = self.begin(ex, None, fx);
        loop {
            match self.attempt(ex, &mut request, fx) {
                Next::Done(done) => return done,
                Next::Wait(ms, reason) => self.wait(ms, reason, fx),
                Next::Again => {}
            }
        }
    }

    /// Where a request's attempts start: its idempotency key and message id,
    /// new, or those of `resumed` (a run continued from its state).
    pub(super) fn begin(
        &self,
        ex: &Exchange<'_>,
        resumed: Option<&RunState>,
        fx: &mut dyn Effects,
    ) -> Pending {
        let plan = self.plan;
        let mut base = ex.request.clone();
        let keyed = plan.retry.idempotency_key && base.method == plan.request.method;
        if keyed && base.header(IDEMPOTENCY_KEY_HEADER).is_none() {
            // One key for every attempt of this request, so the server can deduplicate.
            let key = resumed
                .and_then(|s| s.idempotency_key.clone())
                .unwrap_or_else(|| uuid_v4(random16(fx)));
            base.headers
                .push(KeyValue::new(IDEMPOTENCY_KEY_HEADER, key));
        }
        // Standard Webhooks: the id stays the same across retries (spec, "webhook-id").
        let message_id = match plan.signer.as_ref().map(Signer::scheme) {
            Some(SigningScheme::StandardWebhooks) => resumed
                .and_then(|s| s.webhook_id.clone())
                .unwrap_or_else(|| message_id(random16(fx))),
            _ => String::new(),
        };
        let attempts = resumed.map_or(&[][..], |s| &s.attempts[..]);
        let refreshed = attempts
            .iter()
            .any(|a| a.wait_reason == Some(WaitReason::TokenRefresh));
        let counted = u32::try_from(attempts.len()).unwrap_or(u32::MAX) - u32::from(refreshed);
        Pending {
            base,
            message_id,
            counted,
            refreshed,
        }
    }

    /// What a run continued later needs: this session's attempts and the
    /// request's key and message id.
    pub(super) fn state(&self, pending: &Pending) -> RunState {
        RunState {
            version: crate::model::RUN_STATE_VERSION,
            attempts: self.attempts.clone(),
            idempotency_key: pending
                .base
                .header(IDEMPOTENCY_KEY_HEADER)
                .map(str::to_string),
            webhook_id: (!pending.message_id.is_empty()).then(|| pending.message_id.clone()),
            started_unix_ms: self.started_unix_ms,
        }
    }

    /// One attempt of the request `pending` describes, and what is left to do.
    pub(super) fn attempt(
        &mut self,
        ex: &Exchange<'_>,
        pending: &mut Pending,
        fx: &mut Redacting<'_>,
    ) -> Next {
        let plan = self.plan;
        let max_attempts = plan.retry.max_attempts();
        let (page, poll) = match ex.label {
            Label::Single => (None, None),
            Label::Page(n) => (Some(n), None),
            Label::Poll(n) => (None, Some(n)),
        };
        let prefix = ex.label.prefix();
        if pending.counted >= max_attempts {
            return Next::Done(Exchanged {
                response: None,
                json: None,
                outputs: Vec::new(),
                error: Some(StepError::Internal("no attempt was left to make".into())),
                budget_spent: false,
            });
        }
        self.number += 1;
        pending.counted += 1;
        let (number, counted, refreshed) = (self.number, pending.counted, pending.refreshed);
        let has_key = pending.base.header(IDEMPOTENCY_KEY_HEADER).is_some();
        let attempt = |response: Option<&Response>,
                       error,
                       elapsed_ms,
                       wait: Option<(u64, WaitReason)>| Attempt {
            number,
            status: response.map(|r| r.status),
            error,
            elapsed_ms,
            wait_ms: wait.map(|w| w.0),
            wait_reason: wait.map(|w| w.1),
            page,
            poll,
            host_limit: response.and_then(local_limit).map(str::to_string),
        };
        let mut limits = plan.limits;
        if let Some(left) = self.left_ms(fx) {
            limits.timeout_ms = limits
                .timeout_ms
                .min(u32::try_from(left).unwrap_or(u32::MAX))
                .max(1);
        }
        let mut request = pending.base.clone();
        let attempt_started = fx.now_ms();
        if let Some(tokens) = self.tokens.as_mut().filter(|_| ex.credentials) {
            match tokens.header(fx) {
                Ok(header) => request.headers.push(header),
                Err(error) => {
                    let elapsed_ms = fx.now_ms().saturating_sub(attempt_started);
                    fx.progress(&format!(
                        "{prefix}attempt {number} failed after {elapsed_ms} ms ({}): {error}",
                        error.kind()
                    ));
                    self.attempts
                        .push(attempt(None, Some(error.clone()), elapsed_ms, None));
                    return Next::Done(Exchanged {
                        response: None,
                        json: None,
                        outputs: Vec::new(),
                        error: Some(error),
                        budget_spent: false,
                    });
                }
            }
        }
        if let Some(signer) = plan.signer.as_ref().filter(|_| ex.credentials) {
            // Re-signed on every attempt, with a fresh timestamp.
            let names = signer.header_names();
            request
                .headers
                .retain(|kv| !names.contains(&kv.key.to_ascii_lowercase()));
            request
                .headers
                .extend(signer.sign(&request.body, fx.unix_secs(), &pending.message_id));
        }
        let mut tried = try_once(plan, ex, &request, limits, fx);
        let elapsed_ms = fx.now_ms().saturating_sub(attempt_started);
        let status = tried.response.as_ref().map(|r| r.status);
        if let (Some(tokens), Some(response)) = (&mut self.tokens, &tried.response)
            && tokens.rejected_by(response)
        {
            if !refreshed {
                pending.refreshed = true;
                pending.counted -= 1;
                tokens.invalidate(fx);
                self.attempts.push(attempt(
                    Some(response),
                    tried.error.clone(),
                    elapsed_ms,
                    Some((0, WaitReason::TokenRefresh)),
                ));
                fx.progress(&format!("{prefix}attempt {number}: {} in {elapsed_ms} ms rejected the token; fetching a new one and trying once more", response.status));
                return Next::Again;
            }
            if tokens.signals_expiry(response) {
                // A 2xx that still says "expired" after a new token is not a success.
                tried.outputs.clear();
                tried.error = Some(StepError::Auth(AuthError {
                    code: None,
                    message: format!(
                        "the response ({}) still signals an expired token after a new one was fetched",
                        response.status
                    ),
                }));
            }
        }
        self.attempts.push(attempt(
            tried.response.as_ref(),
            tried.error.clone(),
            elapsed_ms,
            None,
        ));
        let Some(error) = tried.error else {
            fx.progress(&format!(
                "{prefix}attempt {number}: {} in {elapsed_ms} ms",
                status.unwrap_or_default()
            ));
            return Next::Done(Exchanged {
                response: tried.response,
                json: tried.json,
                outputs: tried.outputs,
                error: None,
                budget_spent: false,
            });
        };
        let failed = format!(
            "{prefix}attempt {number} failed after {elapsed_ms} ms ({}): {error}",
            error.kind()
        );
        let stop = |fx: &mut dyn Effects, note: String| {
            fx.progress(&format!("{failed}; {note}"));
            // With retries configured, the error says why they stopped.
            Some(if max_attempts > 1 {
                with_note(error.clone(), &note)
            } else {
                error.clone()
            })
        };
        let gave_up = |error| {
            Next::Done(Exchanged {
                response: tried.response.clone(),
                json: None,
                outputs: Vec::new(),
                error,
                budget_spent: tried.budget_spent,
            })
        };
        let tries = counted + u32::from(refreshed);
        if counted == max_attempts {
            let note = if max_attempts > 1 {
                format!("gave up after {tries} attempts")
            } else {
                "no retry policy".into()
            };
            return gave_up(stop(fx, note));
        }
        if let Err(why) = retryable(
            &plan.retry,
            request.method,
            has_key,
            &error,
            status,
            tried.maybe_sent,
        ) {
            return gave_up(stop(fx, format!("not retried: {why}")));
        }
        let retry_after = match (&tried.response, status) {
            (Some(r), Some(429 | 503)) => retry_after_ms(plan, r, fx),
            _ => None,
        };
        let (wait_ms, reason) = match retry_after {
            Some(ms) => (ms, WaitReason::RetryAfter),
            None => {
                let random = unit_random(fx);
                let reason = match plan.retry.schedule {
                    crate::retry::Schedule::Intervals(_) => WaitReason::Interval,
                    crate::retry::Schedule::Exponential { .. } => WaitReason::Backoff,
                };
                (plan.retry.wait_ms(tries, random), reason)
            }
        };
        if self.left_ms(fx).is_some_and(|left| wait_ms >= left) {
            let note = format!(
                "gave up: waiting {wait_ms} ms ({}) would pass {}",
                reason.as_str(),
                self.deadline_note()
            );
            return gave_up(stop(fx, note));
        }
        fx.progress(&format!(
            "{failed}; retrying in {wait_ms} ms ({})",
            reason.as_str()
        ));
        Next::Wait(wait_ms, reason)
    }
}

/// Where one request's attempts stand between two attempts.
pub(super) struct Pending {
    base: PreparedRequest,
    message_id: String,
    counted: u32,
    refreshed: bool,
}

/// What an attempt leaves to do.
#[allow(
    clippy::large_enum_variant,
    reason = "one per attempt, consumed at once"
)]
pub(super) enum Next {
    /// The request is over.
    Done(Exchanged),
    /// Wait, then attempt again.
    Wait(u64, WaitReason),
    /// Attempt again at once (a new OAuth 2.0 token).
    Again,
}

/// A response's `Retry-After` in milliseconds, capped by
/// `retry.max_retry_after_ms`, if it has a usable one.
pub(super) fn retry_after_ms(
    plan: &Plan,
    response: &Response,
    fx: &mut dyn Effects,
) -> Option<u64> {
    let value = response
        .headers
        .iter()
        .find(|kv| kv.key.eq_ignore_ascii_case("retry-after"))?;
    parse_retry_after(&value.value, fx.unix_secs())
        .map(|ms| ms.min(u64::from(plan.retry.max_retry_after_ms)))
}

/// One attempt: send (following redirects), decode, check the status and,
/// when the exchange asks, the schema and the outputs.
fn try_once(
    plan: &Plan,
    ex: &Exchange<'_>,
    request: &PreparedRequest,
    limits: AttemptLimits,
    fx: &mut dyn Effects,
) -> Tried {
    let raw = match send_following(plan, request, limits, fx) {
        Err(e) => {
            return Tried {
                response: None,
                json: None,
                outputs: Vec::new(),
                error: Some(e.error),
                maybe_sent: e.maybe_sent,
                budget_spent: e.budget_spent,
            };
        }
        Ok(raw) => raw,
    };
    let (response, json, decode_error) = decode(raw, plan.format);
    let checked = if plan.expected.contains(response.status)
        || ex.also_ok.contains(&response.status)
    {
        match decode_error {
            Some(e) => Err(e),
            None if ex.use_json => use_json(plan, json.as_ref()),
            None => Ok(Vec::new()),
        }
    } else {
        let prefix = ex.label.prefix();
        let (status, expected) = (response.status, &plan.expected);
        Err(StepError::UnexpectedStatus(match local_limit(&response) {
            Some(limit) => format!(
                "{prefix}the host's limits for this tenant held the request back ({limit}) and it answered {status} itself, without sending it; expected {expected}"
            ),
            None => format!("{prefix}the server answered {status}; expected {expected}"),
        }))
    };
    let (outputs, error) = match checked {
        Ok(outputs) => (outputs, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Tried {
        response: Some(response),
        json,
        outputs,
        error,
        maybe_sent: true,
        budget_spent: false,
    }
}

/// Which of the host's limits answered `response` itself, when it is a
/// `429` the host marked with [`crate::response::LOCAL_LIMIT_HEADER`].
fn local_limit(response: &Response) -> Option<&str> {
    if response.status != 429 {
        return None;
    }
    response
        .headers
        .iter()
        .find(|kv| {
            kv.key
                .eq_ignore_ascii_case(crate::response::LOCAL_LIMIT_HEADER)
        })
        .map(|kv| kv.value.as_str())
}

/// Checks the response JSON against the schema and extracts the outputs.
pub(super) fn use_json(
    plan: &Plan,
    json: Option<&serde_json::Value>,
) -> Result<Vec<KeyValue>, StepError> {
    if plan.schema.is_none() && plan.outputs.is_empty() {
        return Ok(Vec::new());
    }
    let json = json.ok_or_else(|| {
        StepError::InvalidResponse(
            "the response is not JSON, but response_schema or outputs need JSON".into(),
        )
    })?;
    if let Some(schema) = &plan.schema {
        schema.check(json).map_err(StepError::SchemaMismatch)?;
    }
    let mut outputs = Vec::new();
    let mut missing = Vec::new();
    for kv in &plan.outputs {
        match json.pointer(&kv.value) {
            Some(v) => outputs.push(KeyValue::new(kv.key.clone(), v.to_string())),
            None => missing.push(Problem::new(
                format!("outputs.{}", kv.key),
                format!("{:?} names nothing in the response JSON", kv.value),
            )),
        }
    }
    if missing.is_empty() {
        Ok(outputs)
    } else {
        Err(StepError::MissingOutput(missing))
    }
}

/// 16 random bytes from the host.
fn random16(fx: &mut dyn Effects) -> [u8; 16] {
    let mut b = [0u8; 16];
    let random = fx.random_bytes(16);
    let n = random.len().min(16);
    b[..n].copy_from_slice(&random[..n]);
    b
}

/// A UUID version 4 (RFC 9562 §5.4) from random bytes: an idempotency key.
pub(super) fn uuid_v4(random: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A Standard Webhooks message id (`msg_` and 32 hex digits) from random bytes.
pub(super) fn message_id(random: [u8; 16]) -> String {
    format!("msg_{}", uuid_v4(random).replace('-', ""))
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
    if error.problems().is_some() {
        error
    } else {
        error.map_text(|m| format!("{m}; {note}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::tests::Fake;

    #[test]
    fn uuid_v4_sets_version_and_variant_from_the_hosts_bytes() {
        let mut fx = Fake::default();
        let id = uuid_v4(random16(&mut fx));
        // RFC 9562 §5.4: version nibble 4, variant bits 10.
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id.matches('-').count(), 4);
    }
}
