//! The step's run: check and plan once, then attempt — signing every
//! attempt afresh and retrying as the policy allows — over an [`Effects`]
//! implementation, so the whole flow runs natively in unit tests and, in the
//! component, over WASI.
//!
//! - [`plan`]: the config rendered from the context and checked, once;
//! - [`attempts`]: the attempt loop, retry waits, idempotency keys;
//! - [`redirect`]: following redirects within one attempt;
//! - [`pages`] and [`poll`]: the follow-up requests of a paginated step or
//!   an asynchronous job, built and origin-locked by [`follow`];
//! - [`oauth2`]: client-credentials tokens, fetched once per tenant and grant;
//! - [`redact`]: secrets removed from everything a run reports.

mod attempts;
mod follow;
mod oauth2;
mod pages;
mod plan;
mod poll;
mod redact;
mod redirect;

pub use attempts::IDEMPOTENCY_KEY_HEADER;
pub use redirect::MAX_REDIRECTS;

use crate::model::{
    AttemptResult, AttemptWait, KeyValue, Problem, RUN_STATE_VERSION, RunState, StepConfig,
    StepError, StepFailure, StepOutcome,
};
use crate::request::PreparedRequest;
use crate::response::RawResponse;
use redact::{Redacting, redact_attempts, redact_response};

/// Limits of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// The attempt must be complete (response and body) within this time.
    pub timeout_ms: u32,
    /// The body must not exceed this many bytes (after content decoding);
    /// the transport stops reading and fails with `response-too-large` once
    /// it would.
    pub max_response_bytes: u64,
    /// Decode a `gzip`, `deflate` or `br` response body while reading it
    /// ([`crate::content::BodyDecoder`]).
    pub decompress: bool,
}

/// A failed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// What happened.
    pub error: StepError,
    /// Whether the request may have reached the server. `false` only when it
    /// surely did not (refused by policy, DNS or connect failure, TLS
    /// handshake failure): such a request is always safe to repeat.
    pub maybe_sent: bool,
    /// The host refused it because the run has made as many requests as the
    /// host allows one run (its request budget: `max_requests_per_run` in
    /// this project's host, `connection-limit-reached` in `wasi:http`); no
    /// later request of the run would be sent either.
    pub budget_spent: bool,
}

/// The outside world as the step sees it.
pub trait Effects {
    /// Sends one request and reads the whole response within `limits`.
    fn send(
        &mut self,
        request: &PreparedRequest,
        limits: AttemptLimits,
    ) -> Result<RawResponse, SendError>;
    /// Monotonic milliseconds since an arbitrary origin.
    fn now_ms(&mut self) -> u64;
    /// Wall-clock milliseconds since the Unix epoch.
    fn unix_ms(&mut self) -> u64;
    /// Wall-clock seconds since the Unix epoch (signature timestamps).
    fn unix_secs(&mut self) -> u64 {
        self.unix_ms() / 1000
    }
    /// Cryptographically secure random bytes (idempotency keys, message ids, jitter).
    fn random_bytes(&mut self, len: usize) -> Vec<u8>;
    /// Waits `ms` milliseconds without busy-looping.
    fn sleep_ms(&mut self, ms: u64);
    /// Reports progress to the host (one line, no secrets).
    fn progress(&mut self, line: &str);
    /// The value at `key` in the tenant's store (`wasi:keyvalue`), which the
    /// tenant's runs share and no other tenant sees: OAuth 2.0 tokens.
    fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key` in the tenant's store.
    fn store_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Deletes `key` from the tenant's store (no error when it is absent).
    fn store_delete(&mut self, key: &str) -> Result<(), String>;
    /// Atomically adds 1 to the counter at `key` (absent counts as 0) and
    /// returns the new value: the run that gets 1 holds the lock.
    fn store_increment(&mut self, key: &str) -> Result<u64, String>;
}

/// Runs the step. An invalid config fails with `invalid-config` before any
/// call to [`Effects::send`]. With `continue_on_error`, any later failure is
/// reported in [`StepOutcome::continued_error`] instead.
#[allow(
    clippy::result_large_err,
    reason = "mirrors the WIT result<step-outcome, step-failure>; returned once per run"
)]
pub fn run(
    config: StepConfig,
    context: String,
    fx: &mut dyn Effects,
) -> Result<StepOutcome, StepFailure> {
    let continue_on_error = config.continue_on_error;
    let (plan, redactor) = plan::plan(config, context, &mut |n| fx.random_bytes(n))
        .map_err(StepFailure::invalid_config)?;
    let fx = &mut Redacting::new(fx, redactor);
    let mut session = attempts::Session::new(&plan, fx);
    let done = if let Some(pagination) = &plan.pagination {
        pages::follow(&plan, pagination, &mut session, fx)
    } else if let Some(poll) = &plan.poll {
        poll::follow(&plan, poll, &mut session, fx)
    } else {
        let last = session.exchange(&single(&plan), fx);
        Done {
            response: last.response,
            outputs: last.outputs,
            error: last.error,
            pagination: None,
        }
    };
    finish(done, session.attempts, continue_on_error, fx)
}

/// Runs one attempt of the step (with `state`, the next one of a run a
/// durable engine keeps): the step's result, or the wait before the next
/// attempt and what it needs (README "Durable runs"). Every retry decision is
/// the same as [`run`]'s; only the waiting is the caller's. Pagination and
/// polling are refused, and so is a state of a layout this crate does not
/// know; both before anything is sent.
pub fn run_attempt(
    config: StepConfig,
    context: String,
    state: Option<RunState>,
    fx: &mut dyn Effects,
) -> AttemptResult {
    let continue_on_error = config.continue_on_error;
    let mut problems = Vec::new();
    for (given, field) in [
        (config.pagination.is_some(), "pagination"),
        (config.poll.is_some(), "poll"),
    ] {
        if given {
            problems.push(Problem::new(
                field,
                "is not available one attempt at a time (run-attempt); use run",
            ));
        }
    }
    if let Some(state) = &state {
        problems.extend(check_state(state));
    }
    let planned = plan::plan(config, context, &mut |n| fx.random_bytes(n));
    let (plan, redactor) = match (planned, problems.is_empty()) {
        (Ok(planned), true) => planned,
        (Ok(_), false) => return AttemptResult::Done(Err(StepFailure::invalid_config(problems))),
        (Err(more), _) => {
            problems.extend(more);
            return AttemptResult::Done(Err(StepFailure::invalid_config(problems)));
        }
    };
    let fx = &mut Redacting::new(fx, redactor);
    let mut session = match &state {
        Some(state) => attempts::Session::resume(&plan, state, fx),
        None => attempts::Session::new(&plan, fx),
    };
    let ex = single(&plan);
    let mut pending = session.begin(&ex, state.as_ref(), fx);
    loop {
        match session.attempt(&ex, &mut pending, fx) {
            attempts::Next::Done(last) => {
                let done = Done {
                    response: last.response,
                    outputs: last.outputs,
                    error: last.error,
                    pagination: None,
                };
                return AttemptResult::Done(finish(done, session.attempts, continue_on_error, fx));
            }
            attempts::Next::Wait(wait_ms, reason) => {
                session.mark_wait(wait_ms, reason);
                let mut state = session.state(&pending);
                // Nothing secret leaves the run, in a state as in an outcome.
                state.attempts = redact_attempts(&fx.redactor, state.attempts);
                return AttemptResult::Wait(AttemptWait { wait_ms, state });
            }
            attempts::Next::Again => {}
        }
    }
}

/// The first state of a run whose engine fixes the run's identifiers before
/// anything is sent (README "Durable runs"): an engine that may execute the
/// first attempt twice — it crashed before recording that attempt's result —
/// then sends the same idempotency key and Standard Webhooks message id both
/// times. `random` is the engine's (deterministic, recorded) randomness:
/// the key is a UUID v4 from its first half, the message id from its
/// second. The step still decides whether to send either, as without a seed.
pub fn seed_state(random: [u8; 32], started_unix_ms: u64) -> RunState {
    let (key, id) = random.split_at(16);
    let half = |b: &[u8]| <[u8; 16]>::try_from(b).unwrap_or_default();
    RunState {
        version: RUN_STATE_VERSION,
        attempts: Vec::new(),
        idempotency_key: Some(attempts::uuid_v4(half(key))),
        webhook_id: Some(attempts::message_id(half(id))),
        started_unix_ms,
    }
}

/// What is wrong with a state handed back by the caller: a layout this
/// crate does not know, or identifiers that cannot be sent as header values.
fn check_state(state: &RunState) -> Vec<Problem> {
    let mut problems = Vec::new();
    if state.version == 0 || state.version > RUN_STATE_VERSION {
        let version = state.version;
        problems.push(Problem::new("state.version", format!("{version} is not a run-state layout this step knows (1 to {RUN_STATE_VERSION}); it comes from a newer or a foreign component")));
    }
    for (field, value) in [
        ("state.idempotency_key", &state.idempotency_key),
        ("state.webhook_id", &state.webhook_id),
    ] {
        match value.as_deref() {
            Some("") => problems.push(Problem::new(field, "is empty; give a value or none")),
            Some(v) => problems.extend(crate::headers::check_value(field, v)),
            None => {}
        }
    }
    problems
}

/// The step's one request.
fn single(plan: &plan::Plan) -> attempts::Exchange<'_> {
    attempts::Exchange {
        request: &plan.request,
        label: attempts::Label::Single,
        also_ok: &[],
        use_json: true,
        credentials: true,
    }
}

/// The result of a run whose requests are over: redacted, with
/// `continue_on_error` applied.
#[allow(
    clippy::result_large_err,
    reason = "mirrors the WIT result<step-outcome, step-failure>; returned once per run"
)]
fn finish(
    done: Done,
    attempts: Vec<crate::model::Attempt>,
    continue_on_error: bool,
    fx: &mut Redacting<'_>,
) -> Result<StepOutcome, StepFailure> {
    let redactor = &fx.redactor.clone();
    let response = redact_response(redactor, done.response);
    let attempts = redact_attempts(redactor, attempts);
    let outputs: Vec<KeyValue> = done
        .outputs
        .into_iter()
        .map(|kv| KeyValue::new(kv.key, redactor.apply(kv.value)))
        .collect();
    let pagination = done.pagination;
    match done.error.map(|e| e.map_text(|m| redactor.apply(m))) {
        None => Ok(StepOutcome {
            response,
            outputs,
            attempts,
            continued_error: None,
            pagination,
        }),
        Some(error) if continue_on_error => {
            fx.progress(&format!(
                "continuing after error ({}): {error}",
                error.kind()
            ));
            Ok(StepOutcome {
                response,
                outputs,
                attempts,
                continued_error: Some(error),
                pagination,
            })
        }
        Some(error) => Err(StepFailure {
            error,
            attempts,
            response,
            pagination,
        }),
    }
}

/// How a run's requests ended, before redaction.
struct Done {
    response: Option<crate::model::Response>,
    outputs: Vec<KeyValue>,
    error: Option<StepError>,
    pagination: Option<crate::model::PagesOutcome>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{
        Attempt, Body, Method, RetryPolicy, Signing, SigningScheme, StatusPattern, WaitReason,
    };
    use crate::signing::Verifier;
    use std::collections::VecDeque;

    /// A scripted world: records requests and sleeps, replays results.
    #[derive(Default)]
    pub(crate) struct Fake {
        pub(crate) sent: Vec<PreparedRequest>,
        pub(crate) limits: Vec<AttemptLimits>,
        pub(crate) replies: VecDeque<Result<RawResponse, SendError>>,
        pub(crate) clock: u64,
        pub(crate) slept: Vec<u64>,
        pub(crate) log: Vec<String>,
        pub(crate) rng: u8,
        pub(crate) store: std::collections::HashMap<String, Vec<u8>>,
    }

    impl Fake {
        pub(crate) fn replying(replies: Vec<Result<RawResponse, SendError>>) -> Self {
            Fake {
                replies: replies.into(),
                ..Default::default()
            }
        }
    }

    pub(crate) fn reply(status: u16, body: &str) -> Result<RawResponse, SendError> {
        reply_with(status, &[("content-type", "application/json")], body)
    }

    fn reply_with(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<RawResponse, SendError> {
        Ok(RawResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn fail(error: StepError, maybe_sent: bool) -> Result<RawResponse, SendError> {
        Err(SendError {
            error,
            maybe_sent,
            budget_spent: false,
        })
    }

    impl Effects for Fake {
        fn send(
            &mut self,
            request: &PreparedRequest,
            limits: AttemptLimits,
        ) -> Result<RawResponse, SendError> {
            self.sent.push(request.clone());
            self.limits.push(limits);
            self.clock += 7;
            self.replies
                .pop_front()
                .unwrap_or_else(|| fail(StepError::Internal("no reply scripted".into()), false))
        }
        fn now_ms(&mut self) -> u64 {
            self.clock
        }
        fn unix_ms(&mut self) -> u64 {
            1_700_000_000_000 + self.clock
        }
        fn random_bytes(&mut self, len: usize) -> Vec<u8> {
            self.rng = self.rng.wrapping_add(1);
            vec![self.rng; len]
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
            self.clock += ms;
        }
        fn progress(&mut self, line: &str) {
            self.log.push(line.to_string());
        }
        fn store_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.store.get(key).cloned())
        }
        fn store_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
            self.store.insert(key.to_string(), value.to_vec());
            Ok(())
        }
        fn store_delete(&mut self, key: &str) -> Result<(), String> {
            self.store.remove(key);
            Ok(())
        }
        fn store_increment(&mut self, key: &str) -> Result<u64, String> {
            let n = self
                .store
                .get(key)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            self.store
                .insert(key.to_string(), n.to_string().into_bytes());
            Ok(n)
        }
    }

    fn post(url: &str) -> StepConfig {
        let mut c = StepConfig::get(url);
        c.method = Method::Post;
        c.body = Some(Body::Json(serde_json::json!({"sku": "A"}).into()));
        c
    }

    fn retry(intervals: &[u32]) -> Option<RetryPolicy> {
        Some(RetryPolicy {
            intervals_ms: Some(intervals.to_vec()),
            ..Default::default()
        })
    }

    /// A 429 the host answered itself is retried like any 429, honouring its
    /// Retry-After, and the attempt says which of the host's limits it was.
    #[test]
    fn a_local_429_names_the_host_limit_and_is_retried() {
        let limit = "requests_per_second https://api.test:443";
        let mut fx = Fake::replying(vec![
            reply_with(
                429,
                &[
                    ("retry-after", "2"),
                    (crate::response::LOCAL_LIMIT_HEADER, limit),
                ],
                "{}",
            ),
            reply(200, "{}"),
        ]);
        let mut c = StepConfig::get("https://api.test/x");
        c.retry = Some(RetryPolicy {
            max_attempts: Some(3),
            ..Default::default()
        });
        let out = run(c, "{}".into(), &mut fx).expect("ok on the second attempt");
        assert_eq!(out.attempts[0].host_limit.as_deref(), Some(limit));
        assert_eq!(out.attempts[0].wait_reason, Some(WaitReason::RetryAfter));
        assert_eq!(fx.slept, vec![2000]);
        assert_eq!(out.attempts[1].host_limit, None);
        assert!(
            fx.log[0].contains(limit) && fx.log[0].contains("answered 429 itself"),
            "{:?}",
            fx.log
        );
        // A server's own 429 names no host limit.
        let mut fx = Fake::replying(vec![reply(429, "{}")]);
        let failure =
            run(StepConfig::get("https://api.test/x"), "{}".into(), &mut fx).expect_err("no retry");
        assert_eq!(failure.attempts[0].host_limit, None);
        assert!(
            failure
                .error
                .to_string()
                .contains("the server answered 429")
        );
    }

    #[test]
    fn success_records_one_attempt() {
        let mut fx = Fake::replying(vec![reply(201, r#"{"id":"ord_1"}"#)]);
        let mut c = post("https://shop.test/orders");
        c.expected_status = Some(vec![StatusPattern::Code(201)]);
        let out = run(c.clone(), "{}".into(), &mut fx).expect("ok");
        let r = out.response.expect("response");
        assert_eq!(
            (r.status, r.json.as_deref()),
            (201, Some(r#"{"id":"ord_1"}"#))
        );
        assert_eq!(
            out.attempts,
            vec![Attempt {
                number: 1,
                status: Some(201),
                error: None,
                elapsed_ms: 7,
                wait_ms: None,
                wait_reason: None,
                page: None,
                poll: None,
                host_limit: None,
            }]
        );
        assert_eq!(*fx.sent[0].body, br#"{"sku":"A"}"#);
        assert_eq!(
            fx.sent[0].header(IDEMPOTENCY_KEY_HEADER),
            None,
            "no retries, no key"
        );
        assert_eq!(fx.log, vec!["attempt 1: 201 in 7 ms"]);
    }

    #[test]
    fn invalid_config_sends_nothing() {
        let mut fx = Fake::default();
        let mut c = StepConfig::get("nope");
        c.headers = vec![KeyValue::new("X", "a\nb")];
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("invalid");
        assert_eq!(err.error.kind(), "invalid-config");
        assert_eq!(err.error.problems().map(<[_]>::len), Some(2));
        assert!(fx.sent.is_empty() && err.attempts.is_empty());
        let err = run(StepConfig::get("https://x.test"), "{oops".into(), &mut fx)
            .expect_err("bad context");
        assert_eq!(err.error.problems().expect("problems")[0].path, "context");
    }

    #[test]
    fn unexpected_status_fails_or_continues() {
        let c = StepConfig::get("https://x.test");
        let err = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(404, "{}")]),
        )
        .expect_err("404");
        assert_eq!(
            err.error,
            StepError::UnexpectedStatus("the server answered 404; expected 2xx".into())
        );
        assert_eq!(err.response.map(|r| r.status), Some(404));
        let mut c = c;
        c.continue_on_error = true;
        let out = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(404, "{}")]),
        )
        .expect("continued");
        assert_eq!(
            out.continued_error.map(|e| e.kind()),
            Some("unexpected-status")
        );
        assert_eq!(out.attempts[0].status, Some(404));
    }

    #[test]
    fn invalid_json_response_is_an_error_even_with_2xx() {
        let err = run(
            StepConfig::get("https://x.test"),
            "{}".into(),
            &mut Fake::replying(vec![reply(200, "{")]),
        )
        .expect_err("bad json");
        assert_eq!(err.error.kind(), "invalid-response");
    }

    #[test]
    fn retries_503_twice_then_succeeds_with_one_idempotency_key() {
        let mut c = post("https://x.test/orders");
        c.retry = retry(&[100, 200]);
        let mut fx = Fake::replying(vec![reply(503, "{}"), reply(503, "{}"), reply(201, "{}")]);
        let out = run(c.clone(), "{}".into(), &mut fx).expect("ok on the third attempt");
        assert_eq!(out.attempts.len(), 3);
        assert_eq!(fx.slept, [100, 200]);
        assert_eq!(
            out.attempts
                .iter()
                .map(|a| (a.status, a.wait_ms, a.wait_reason))
                .collect::<Vec<_>>(),
            [
                (Some(503), Some(100), Some(WaitReason::Interval)),
                (Some(503), Some(200), Some(WaitReason::Interval)),
                (Some(201), None, None)
            ]
        );
        let keys: Vec<_> = fx
            .sent
            .iter()
            .map(|r| r.header(IDEMPOTENCY_KEY_HEADER).map(str::to_owned))
            .collect();
        assert!(
            keys[0]
                .as_deref()
                .is_some_and(|k| k.len() == 36 && k.as_bytes()[14] == b'4'),
            "{keys:?}"
        );
        assert!(keys.iter().all(|k| k == &keys[0]));
        assert_eq!(
            fx.log[0],
            "attempt 1 failed after 7 ms (unexpected-status): the server answered 503; expected 2xx; retrying in 100 ms (interval)"
        );
    }

    #[test]
    fn not_retried_404_and_exhausted_attempts_say_so() {
        let mut c = StepConfig::get("https://x.test");
        c.retry = retry(&[10, 10]);
        let mut fx = Fake::replying(vec![reply(404, "{}")]);
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("404");
        assert_eq!((fx.sent.len(), err.attempts.len()), (1, 1));
        assert!(
            fx.log[0].contains("not retried: this failure is not retried"),
            "{:?}",
            fx.log
        );
        let mut fx = Fake::replying(vec![reply(500, "{}"), reply(500, "{}"), reply(502, "{}")]);
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("5xx");
        assert_eq!(fx.sent.len(), 3);
        assert!(
            err.error
                .to_string()
                .contains("502; expected 2xx; gave up after 3 attempts"),
            "{}",
            err.error
        );
    }

    #[test]
    fn post_without_key_not_retried_after_post_send_timeout_but_after_refusal() {
        let mut c = post("https://x.test/pay");
        c.retry = Some(RetryPolicy {
            intervals_ms: Some(vec![10]),
            idempotency_key: Some(false),
            ..Default::default()
        });
        let mut fx = Fake::replying(vec![fail(StepError::Timeout("no response".into()), true)]);
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("timeout");
        assert_eq!(fx.sent.len(), 1);
        assert!(
            err.error.to_string().contains("idempotency_key"),
            "{}",
            err.error
        );
        let mut fx = Fake::replying(vec![
            fail(StepError::Connection("refused".into()), false),
            reply(200, "{}"),
        ]);
        assert!(run(c.clone(), "{}".into(), &mut fx).is_ok());
        assert_eq!(fx.sent.len(), 2);
        assert_eq!(fx.sent[0].header(IDEMPOTENCY_KEY_HEADER), None);
    }

    #[test]
    fn retry_after_is_honoured_and_capped_by_the_deadline() {
        let mut c = StepConfig::get("https://x.test");
        c.timeout_ms = Some(500);
        c.retry = Some(RetryPolicy {
            intervals_ms: Some(vec![10]),
            ..Default::default()
        });
        let mut fx = Fake::replying(vec![
            reply_with(429, &[("Retry-After", "1")], ""),
            reply(200, "{}"),
        ]);
        let out = run(c.clone(), "{}".into(), &mut fx).expect("ok");
        assert_eq!(fx.slept, [1000]);
        assert_eq!(out.attempts[0].wait_reason, Some(WaitReason::RetryAfter));

        c.retry = Some(RetryPolicy {
            intervals_ms: Some(vec![10]),
            deadline_ms: Some(1000),
            ..Default::default()
        });
        let mut fx = Fake::replying(vec![reply_with(503, &[("retry-after", "3600")], "")]);
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("deadline");
        assert!(fx.slept.is_empty());
        assert_eq!(err.error.kind(), "unexpected-status");
        assert!(
            err.error.to_string().contains(
                "waiting 3600000 ms (retry-after) would pass retry.deadline_ms (1000 ms)"
            ),
            "{}",
            err.error
        );
    }

    #[test]
    fn attempts_never_outlive_the_deadline() {
        let mut c = StepConfig::get("https://x.test");
        c.timeout_ms = Some(400);
        c.retry = Some(RetryPolicy {
            intervals_ms: Some(vec![300, 300, 300]),
            deadline_ms: Some(1000),
            ..Default::default()
        });
        let timeouts = (0..4)
            .map(|_| fail(StepError::Timeout("t".into()), true))
            .collect();
        let mut fx = Fake {
            replies: timeouts,
            ..Default::default()
        };
        let _ = run(c.clone(), "{}".into(), &mut fx).expect_err("timeouts");
        // 7 ms per attempt in the fake; the second attempt's budget is what is left.
        assert_eq!(
            fx.limits.iter().map(|l| l.timeout_ms).collect::<Vec<_>>(),
            [400, 400, 386, 79]
        );
        assert!(fx.clock <= 1000, "{}", fx.clock);
    }

    #[test]
    fn every_attempt_is_signed_afresh_and_verifies() {
        let mut c = post("https://x.test/hook");
        c.retry = retry(&[2000]);
        let signing = Signing {
            secrets: vec!["k1".into(), "k2".into()],
            scheme: None,
            header: None,
        };
        c.signing = Some(signing.clone());
        c.headers = vec![KeyValue::new("persona-signature", "stale")];
        let mut fx = Fake::replying(vec![reply(503, "{}"), reply(200, "{}")]);
        run(c.clone(), "{}".into(), &mut fx).expect("ok");
        let sigs: Vec<String> = fx
            .sent
            .iter()
            .map(|r| {
                r.header("Persona-Signature")
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_ne!(sigs[0], sigs[1], "fresh timestamp on the retry");
        let verifier = Verifier::new(&signing).expect("valid");
        for (i, r) in fx.sent.iter().enumerate() {
            assert_eq!(
                r.headers
                    .iter()
                    .filter(|kv| kv.key.eq_ignore_ascii_case("persona-signature"))
                    .count(),
                1
            );
            let pairs: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            assert_eq!(
                verifier.verify(&pairs, &r.body, 1_700_000_002),
                Ok(()),
                "attempt {i}"
            );
        }
    }

    #[test]
    fn multipart_from_the_context_is_built_once_and_signed_as_sent() {
        use crate::model::MultipartPart;
        let mut c = post("https://x.test/upload");
        c.retry = retry(&[10]);
        let file = |name: &str, b64: &str| MultipartPart {
            name: name.into(),
            value: None,
            base64: Some(b64.into()),
            filename: Some("{{ doc.name }}".into()),
            content_type: Some("application/pdf".into()),
        };
        c.body = Some(Body::Multipart(vec![
            MultipartPart {
                name: "note".into(),
                value: Some("for {{ doc.name }}".into()),
                base64: None,
                filename: None,
                content_type: None,
            },
            file("scan", "{{ doc.body_base64 }}"),
        ]));
        let signing = Signing {
            secrets: vec!["k1".into()],
            scheme: None,
            header: None,
        };
        c.signing = Some(signing.clone());
        let context = r#"{"doc": {"name": "scan.pdf", "body_base64": "JVBERi0xLjQ="}}"#;
        let mut fx = Fake::replying(vec![reply(503, "{}"), reply(201, "{}")]);
        run(c, context.into(), &mut fx).expect("ok");
        // The Fake's first random bytes are all 1: the boundary, drawn once per run.
        let boundary = format!("https-step-{}", "01".repeat(16));
        let want = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nfor scan.pdf\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"scan\"; filename=\"scan.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--{boundary}--\r\n"
        );
        let verifier = Verifier::new(&signing).expect("valid");
        for r in &fx.sent {
            assert_eq!(String::from_utf8_lossy(&r.body), want);
            assert_eq!(
                r.header("content-type"),
                Some(format!("multipart/form-data; boundary={boundary}").as_str())
            );
            let pairs: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            assert_eq!(verifier.verify(&pairs, &r.body, 1_700_000_000), Ok(()));
        }
        assert_eq!(fx.sent.len(), 2);
    }

    #[test]
    fn bad_base64_from_the_context_is_invalid_config_before_sending() {
        let mut c = post("https://x.test/upload");
        c.body = Some(Body::Binary(crate::model::BinaryBody {
            base64: "{{ file }}".into(),
            content_type: None,
        }));
        let mut fx = Fake::default();
        let err = run(c, r#"{"file": "%%%"}"#.into(), &mut fx).expect_err("invalid");
        assert_eq!(
            err.error.problems().map(|p| p[0].path.as_str()),
            Some("body.binary.base64")
        );
        assert!(fx.sent.is_empty());
    }

    #[test]
    fn run_attempt_leaves_the_waits_to_the_caller_and_keeps_the_key() {
        use crate::model::{AttemptResult, AttemptWait};
        let mut c = post("https://x.test/orders");
        c.retry = retry(&[1000, 2000]);
        c.signing = Some(Signing {
            secrets: vec!["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
            scheme: Some(SigningScheme::StandardWebhooks),
            header: None,
        });
        let mut fx = Fake::replying(vec![
            reply(503, "{}"),
            reply(503, "{}"),
            reply(201, r#"{"id": 1}"#),
        ]);
        let AttemptResult::Wait(AttemptWait { wait_ms, state }) =
            run_attempt(c.clone(), "{}".into(), None, &mut fx)
        else {
            panic!("a wait")
        };
        assert_eq!((wait_ms, state.attempts.len(), state.version), (1000, 1, 1));
        let key = state.idempotency_key.clone().expect("a key");
        // A later call, as from another process: the state is all it gets.
        let AttemptResult::Wait(AttemptWait { wait_ms, state }) =
            run_attempt(c.clone(), "{}".into(), Some(state), &mut fx)
        else {
            panic!("a wait")
        };
        assert_eq!(
            (
                wait_ms,
                state.attempts.len(),
                state.idempotency_key.as_deref()
            ),
            (2000, 2, Some(key.as_str()))
        );
        assert_eq!(
            state
                .attempts
                .iter()
                .map(|a| a.wait_reason)
                .collect::<Vec<_>>(),
            [Some(WaitReason::Interval), Some(WaitReason::Interval)]
        );
        let AttemptResult::Done(Ok(out)) =
            run_attempt(c.clone(), "{}".into(), Some(state), &mut fx)
        else {
            panic!("done")
        };
        assert_eq!(
            (out.attempts.len(), out.response.map(|r| r.status)),
            (3, Some(201))
        );
        assert_eq!(
            out.attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(
            fx.slept.is_empty(),
            "the guest never sleeps here: {:?}",
            fx.slept
        );
        let keys: Vec<_> = fx
            .sent
            .iter()
            .map(|r| r.header("idempotency-key").map(str::to_string))
            .collect();
        let ids: Vec<_> = fx
            .sent
            .iter()
            .map(|r| r.header("webhook-id").map(str::to_string))
            .collect();
        assert!(
            keys.iter().all(|k| k.as_deref() == Some(key.as_str())),
            "{keys:?}"
        );
        assert!(
            ids[0].is_some() && ids.iter().all(|i| i == &ids[0]),
            "{ids:?}"
        );
    }

    #[test]
    fn run_attempt_refuses_unknown_states_and_multi_request_steps_before_sending() {
        use crate::model::{AttemptResult, RunState};
        let state = RunState {
            version: 99,
            attempts: vec![],
            idempotency_key: None,
            webhook_id: None,
            started_unix_ms: 0,
        };
        let mut c = post("https://x.test/orders");
        c.poll = Some(crate::model::Poll {
            on_status: None,
            status_url: None,
            until: None,
            interval_ms: None,
            max_polls: None,
            allowed_origins: vec![],
        });
        let mut fx = Fake::default();
        let AttemptResult::Done(Err(failure)) = run_attempt(c, "{}".into(), Some(state), &mut fx)
        else {
            panic!("refused")
        };
        let paths: Vec<&str> = failure
            .error
            .problems()
            .unwrap_or_default()
            .iter()
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(paths, ["poll", "state.version"]);
        assert!(fx.sent.is_empty());
    }

    #[test]
    fn a_seeded_first_attempt_sends_the_engines_identifiers_and_only_where_the_step_uses_them() {
        use crate::model::{AttemptResult, AttemptWait};
        let seed = seed_state([7; 32], 1_700_000_000_000);
        let (key, id) = (
            seed.idempotency_key.clone().expect("a key"),
            seed.webhook_id.clone().expect("an id"),
        );
        assert_eq!(
            (key.len(), &key[14..15], id.len(), &id[..4]),
            (36, "4", 36, "msg_"),
            "{key} {id}"
        );
        assert_eq!(
            seed_state([7; 32], 1),
            RunState {
                started_unix_ms: 1,
                ..seed.clone()
            },
            "the same bytes make the same identifiers"
        );
        let mut c = post("https://x.test/orders");
        c.retry = retry(&[1000]);
        c.signing = Some(Signing {
            secrets: vec!["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
            scheme: Some(SigningScheme::StandardWebhooks),
            header: None,
        });
        // The first attempt twice, as after a crash before its result was recorded.
        for _ in 0..2 {
            let mut fx = Fake::replying(vec![reply(503, "{}")]);
            let AttemptResult::Wait(AttemptWait { state, .. }) =
                run_attempt(c.clone(), "{}".into(), Some(seed.clone()), &mut fx)
            else {
                panic!("a wait")
            };
            assert_eq!(
                (
                    fx.sent[0].header("idempotency-key"),
                    fx.sent[0].header("webhook-id")
                ),
                (Some(key.as_str()), Some(id.as_str()))
            );
            assert_eq!(
                (state.attempts.len(), state.started_unix_ms),
                (1, 1_700_000_000_000)
            );
        }
        // A GET without signing sends neither.
        let mut fx = Fake::replying(vec![reply(200, "{}")]);
        let AttemptResult::Done(Ok(_)) = run_attempt(
            StepConfig::get("https://x.test/a"),
            "{}".into(),
            Some(seed),
            &mut fx,
        ) else {
            panic!("done")
        };
        assert_eq!(
            (
                fx.sent[0].header("idempotency-key"),
                fx.sent[0].header("webhook-id")
            ),
            (None, None)
        );
    }

    #[test]
    fn a_state_whose_identifiers_cannot_be_header_values_is_refused_before_sending() {
        use crate::model::AttemptResult;
        let state = RunState {
            version: 1,
            attempts: vec![],
            idempotency_key: Some("a\r\nX-Evil: 1".into()),
            webhook_id: Some(String::new()),
            started_unix_ms: 0,
        };
        let mut fx = Fake::default();
        let AttemptResult::Done(Err(failure)) = run_attempt(
            post("https://x.test/orders"),
            "{}".into(),
            Some(state),
            &mut fx,
        ) else {
            panic!("refused")
        };
        let paths: Vec<&str> = failure
            .error
            .problems()
            .unwrap_or_default()
            .iter()
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(paths, ["state.idempotency_key", "state.webhook_id"]);
        assert!(fx.sent.is_empty());
    }

    #[test]
    fn standard_webhooks_id_is_stable_across_retries() {
        let mut c = post("https://x.test/hook");
        c.retry = retry(&[1]);
        c.signing = Some(Signing {
            secrets: vec!["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
            scheme: Some(SigningScheme::StandardWebhooks),
            header: None,
        });
        let mut fx = Fake::replying(vec![reply(500, "{}"), reply(200, "{}")]);
        run(c.clone(), "{}".into(), &mut fx).expect("ok");
        let ids: Vec<_> = fx
            .sent
            .iter()
            .map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        assert!(ids[0].as_deref().is_some_and(|id| id.starts_with("msg_")));
        assert_eq!(ids[0], ids[1]);
    }

    #[test]
    fn schema_mismatch_lists_every_violation_and_can_continue() {
        let mut c = StepConfig::get("https://x.test");
        c.response_schema = Some(serde_json::json!({"type": "object", "required": ["id"], "properties": {"n": {"type": "integer"}}}).into());
        let err = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(200, r#"{"n": "x"}"#)]),
        )
        .expect_err("mismatch");
        let problems = err.error.problems().expect("violations").to_vec();
        assert_eq!(err.error.kind(), "schema-mismatch");
        assert_eq!(problems.len(), 2, "{problems:?}");
        c.continue_on_error = true;
        let out = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(200, r#"{"id": 1}"#)]),
        )
        .expect("valid");
        assert!(out.continued_error.is_none());
        let out = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(200, "[]")]),
        )
        .expect("continued");
        assert_eq!(
            out.continued_error.map(|e| e.kind()),
            Some("schema-mismatch")
        );
        let err = run(
            StepConfig {
                continue_on_error: false,
                ..c
            },
            "{}".into(),
            &mut Fake::replying(vec![reply_with(
                200,
                &[("content-type", "text/plain")],
                "hi",
            )]),
        )
        .expect_err("not json");
        assert_eq!(err.error.kind(), "invalid-response");
    }

    #[test]
    fn outputs_are_extracted_or_missing() {
        let mut c = StepConfig::get("https://x.test");
        c.outputs = vec![
            KeyValue::new("order_id", "/data/id"),
            KeyValue::new("first", "/data/items/0"),
        ];
        let out = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(
                200,
                r#"{"data": {"id": "ord_9", "items": [{"a": 1}]}}"#,
            )]),
        )
        .expect("ok");
        assert_eq!(
            out.outputs,
            vec![
                KeyValue::new("order_id", "\"ord_9\""),
                KeyValue::new("first", r#"{"a":1}"#)
            ]
        );
        let err = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![reply(200, r#"{"data": {}}"#)]),
        )
        .expect_err("missing");
        assert_eq!(
            err.error
                .problems()
                .map(|p| p.iter().map(|p| p.path.clone()).collect::<Vec<_>>()),
            Some(vec![
                "outputs.order_id".to_string(),
                "outputs.first".to_string()
            ])
        );
    }

    #[test]
    fn templated_values_are_sent_and_secrets_redacted_everywhere() {
        let mut c = post("https://x.test/users/{{ user.id }}");
        c.headers = vec![KeyValue::new("Authorization", "Bearer {{ secrets.token }}")];
        c.body = Some(Body::Json(
            serde_json::json!({"age": "{{ user.age }}"}).into(),
        ));
        c.expected_status = Some(vec![StatusPattern::Code(201)]);
        let context = r#"{"user": {"id": "a/b", "age": 30}, "secrets": {"token": "tok_SECRET_1"}}"#;
        let mut fx = Fake::replying(vec![reply(400, r#"{"echo": "Bearer tok_SECRET_1"}"#)]);
        let err = run(c.clone(), context.into(), &mut fx).expect_err("400");
        assert_eq!(fx.sent[0].path_with_query(), "/users/a%2Fb");
        assert_eq!(
            fx.sent[0].header("authorization"),
            Some("Bearer tok_SECRET_1")
        );
        assert_eq!(*fx.sent[0].body, br#"{"age":30}"#);
        let response = err.response.expect("response");
        assert_eq!(response.body, r#"{"echo": "Bearer ***"}"#);
        assert_eq!(response.json.as_deref(), Some(r#"{"echo":"Bearer ***"}"#));
        assert!(fx.log.iter().all(|l| !l.contains("tok_SECRET_1")));
        let err = run(c.clone(), r#"{"user": {}}"#.into(), &mut Fake::default())
            .expect_err("unknown path");
        assert_eq!(
            err.error.problems().map(|p| p[0].path.as_str()),
            Some("url")
        );
    }

    fn redirect_reply(status: u16, location: &str) -> Result<RawResponse, SendError> {
        reply_with(status, &[("location", location)], "")
    }

    #[test]
    fn redirects_are_followed_with_method_and_header_rules() {
        let mut c = post("https://a.test/start");
        c.follow_redirects = Some(true);
        c.headers = vec![KeyValue::new("Authorization", "Bearer x")];
        c.signing = Some(Signing {
            secrets: vec!["k".into()],
            scheme: None,
            header: None,
        });
        let mut fx = Fake::replying(vec![
            redirect_reply(307, "/again"),
            redirect_reply(303, "https://b.test/done?x=1"),
            reply(200, "{}"),
        ]);
        run(c.clone(), "{}".into(), &mut fx).expect("followed");
        let hops: Vec<(Method, String, bool, bool)> = fx
            .sent
            .iter()
            .map(|r| {
                (
                    r.method,
                    r.url.to_string(),
                    r.header("authorization").is_some(),
                    r.header("persona-signature").is_some(),
                )
            })
            .collect();
        assert_eq!(
            hops,
            [
                (Method::Post, "https://a.test/start".to_string(), true, true),
                (Method::Post, "https://a.test/again".to_string(), true, true),
                (
                    Method::Get,
                    "https://b.test/done?x=1".to_string(),
                    false,
                    false
                ),
            ]
        );
        assert!(fx.sent[2].body.is_empty());
    }

    #[test]
    fn redirects_off_by_default_downgrades_and_loops_refused() {
        let c = StepConfig::get("https://a.test/");
        let err = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![redirect_reply(302, "/x")]),
        )
        .expect_err("3xx is a failure");
        assert_eq!(err.error.kind(), "unexpected-status");
        let mut c = c;
        c.follow_redirects = Some(true);
        let err = run(
            c.clone(),
            "{}".into(),
            &mut Fake::replying(vec![redirect_reply(301, "http://a.test/")]),
        )
        .expect_err("downgrade");
        assert!(err.error.to_string().contains("downgrade"), "{}", err.error);
        let mut fx = Fake::replying((0..12).map(|_| redirect_reply(302, "/loop")).collect());
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("loop");
        assert_eq!(fx.sent.len(), 11);
        assert!(
            err.error.to_string().contains("more than 10 redirects"),
            "{}",
            err.error
        );
    }

    fn oauth2(url: &str) -> StepConfig {
        let mut c = StepConfig::get(url);
        c.auth = Some(crate::model::Auth::Oauth2ClientCredentials(
            crate::model::Oauth2ClientCredentials {
                token_url: "https://auth.test/token".into(),
                client_id: "client".into(),
                client_secret: "{{ secrets.client_secret }}".into(),
                scope: None,
                audience: None,
                params: vec![],
                client_auth: None,
                expiry_margin_s: None,
                default_lifetime_s: None,
                refresh_on: None,
            },
        ));
        c
    }

    #[test]
    fn a_rejected_token_is_refreshed_and_the_request_tried_once_more_outside_the_retry_count() {
        let mut fx = Fake::replying(vec![
            reply(
                200,
                r#"{"access_token":"tok_first_0001","expires_in":3600}"#,
            ),
            reply(401, r#"{"error":"token tok_first_0001 revoked"}"#),
            reply(
                200,
                r#"{"access_token":"tok_second_0002","expires_in":3600}"#,
            ),
            reply(200, r#"{"ok":true}"#),
        ]);
        let context = r#"{"secrets":{"client_secret":"cs_live_xyz"}}"#;
        let out = run(oauth2("https://api.test/me"), context.into(), &mut fx).expect("ok");
        let urls: Vec<(String, Option<&str>)> = fx
            .sent
            .iter()
            .map(|r| (r.url.path().to_string(), r.header("authorization")))
            .collect();
        assert_eq!(urls[1], ("/me".into(), Some("Bearer tok_first_0001")));
        assert_eq!(urls[3], ("/me".into(), Some("Bearer tok_second_0002")));
        assert_eq!(out.attempts.len(), 2);
        assert_eq!(
            (out.attempts[0].status, out.attempts[0].wait_reason),
            (Some(401), Some(WaitReason::TokenRefresh))
        );
        assert_eq!(out.attempts[1].status, Some(200));
        // A second 401 after the refresh fails as usual: no endless refresh loop.
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"access_token":"tok_first_0001"}"#),
            reply(401, "{}"),
            reply(200, r#"{"access_token":"tok_second_0002"}"#),
            reply(401, "{}"),
        ]);
        let err =
            run(oauth2("https://api.test/me"), context.into(), &mut fx).expect_err("401 twice");
        assert_eq!(
            (err.error.kind(), err.attempts.len(), fx.sent.len()),
            ("unexpected-status", 2, 4)
        );
        assert!(
            fx.log
                .iter()
                .all(|l| !l.contains("cs_live_xyz") && !l.contains("tok_")),
            "{:?}",
            fx.log
        );
    }
}
