//! The step itself: validate, prepare, send, check — over an [`Effects`]
//! implementation, so the whole flow runs natively in unit tests and, in the
//! component, over `wasi:http`.

use crate::model::{
    Attempt, Problem, Response, StepConfig, StepError, StepFailure, StepOutcome,
};
use crate::request::{PreparedRequest, prepare};
use crate::response::{RawResponse, decode};
use crate::status::{StatusSet, parse_patterns};
use crate::validate::validate;

/// Limits of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// The attempt must be complete (response and body) within this time.
    pub timeout_ms: u32,
    /// The body must not exceed this many bytes; the transport stops reading
    /// and fails with `response-too-large` once it would.
    pub max_response_bytes: u64,
}

/// The outside world as the step sees it.
pub trait Effects {
    /// Sends one request and reads the whole response within `limits`.
    fn send(&mut self, request: &PreparedRequest, limits: AttemptLimits) -> Result<RawResponse, StepError>;
    /// Monotonic milliseconds since an arbitrary origin.
    fn now_ms(&mut self) -> u64;
    /// Reports progress to the host (one line, no secrets).
    fn progress(&mut self, line: &str);
}

/// Everything needed to run a validated config.
struct Plan {
    request: PreparedRequest,
    expected: StatusSet,
    limits: AttemptLimits,
}

fn plan(config: &StepConfig, context: &str) -> Result<Plan, Vec<Problem>> {
    let mut problems = validate(config);
    if let Err(err) = serde_json::from_str::<serde_json::Value>(context) {
        problems.push(Problem::new("context", format!("the workflow context is not valid JSON: {err}")));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let request = prepare(config).map_err(|p| vec![p])?;
    let expected = match &config.expected_status {
        Some(patterns) => parse_patterns(patterns)?,
        None => StatusSet::default(),
    };
    Ok(Plan {
        request,
        expected,
        limits: AttemptLimits {
            timeout_ms: config.timeout_ms(),
            max_response_bytes: config.max_response_bytes(),
        },
    })
}

/// Runs the step. An invalid config fails with `invalid-config` before any
/// call to [`Effects::send`]. With `continue_on_error`, any later failure is
/// reported in [`StepOutcome::continued_error`] instead.
pub fn run(config: &StepConfig, context: &str, fx: &mut dyn Effects) -> Result<StepOutcome, StepFailure> {
    let plan = plan(config, context).map_err(|problems| StepFailure {
        error: StepError::InvalidConfig(problems),
        attempts: Vec::new(),
        response: None,
    })?;
    let mut attempts = Vec::new();
    let (response, error) = attempt(&plan, 1, fx, &mut attempts);
    match error {
        None => Ok(StepOutcome { response, outputs: Vec::new(), attempts, continued_error: None }),
        Some(error) if config.continue_on_error => {
            fx.progress(&format!("continuing after error ({}): {error}", error.kind()));
            Ok(StepOutcome { response, outputs: Vec::new(), attempts, continued_error: Some(error) })
        }
        Some(error) => Err(StepFailure { error, attempts, response }),
    }
}

/// One attempt: send, decode, check the status; records it in `attempts`.
fn attempt(
    plan: &Plan,
    number: u32,
    fx: &mut dyn Effects,
    attempts: &mut Vec<Attempt>,
) -> (Option<Response>, Option<StepError>) {
    let started = fx.now_ms();
    let result = fx.send(&plan.request, plan.limits);
    let elapsed_ms = fx.now_ms().saturating_sub(started);
    let (response, error) = match result {
        Err(err) => (None, Some(err)),
        Ok(raw) => {
            let (response, decode_error) = decode(raw);
            let error = if plan.expected.contains(response.status) {
                decode_error
            } else {
                Some(StepError::UnexpectedStatus(format!(
                    "the server answered {}; expected {}",
                    response.status, plan.expected
                )))
            };
            (Some(response), error)
        }
    };
    let status = response.as_ref().map(|r| r.status);
    fx.progress(&match (&error, status) {
        (None, Some(s)) => format!("attempt {number}: {s} in {elapsed_ms} ms"),
        (Some(e), _) => format!("attempt {number} failed after {elapsed_ms} ms ({}): {e}", e.kind()),
        (None, None) => format!("attempt {number}: done in {elapsed_ms} ms"),
    });
    attempts.push(Attempt { number, status, error: error.clone(), elapsed_ms, wait_ms: None, wait_reason: None });
    (response, error)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Body, KeyValue, Method, StatusPattern};
    use std::collections::VecDeque;

    /// A scripted transport: records requests, replays results.
    #[derive(Default)]
    pub(crate) struct Fake {
        pub(crate) sent: Vec<PreparedRequest>,
        pub(crate) replies: VecDeque<Result<RawResponse, StepError>>,
        pub(crate) clock: u64,
        pub(crate) log: Vec<String>,
    }

    impl Fake {
        pub(crate) fn replying(replies: Vec<Result<RawResponse, StepError>>) -> Self {
            Fake { replies: replies.into(), ..Default::default() }
        }
    }

    pub(crate) fn reply(status: u16, body: &str) -> Result<RawResponse, StepError> {
        Ok(RawResponse {
            status,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.as_bytes().to_vec(),
        })
    }

    impl Effects for Fake {
        fn send(&mut self, request: &PreparedRequest, _: AttemptLimits) -> Result<RawResponse, StepError> {
            self.sent.push(request.clone());
            self.clock += 7;
            self.replies.pop_front().unwrap_or_else(|| Err(StepError::Internal("no reply scripted".into())))
        }
        fn now_ms(&mut self) -> u64 {
            self.clock
        }
        fn progress(&mut self, line: &str) {
            self.log.push(line.to_string());
        }
    }

    #[test]
    fn success_records_one_attempt() {
        let mut fx = Fake::replying(vec![reply(201, r#"{"id":"ord_1"}"#)]);
        let mut c = StepConfig::get("https://shop.test/orders");
        c.method = Method::Post;
        c.body = Some(Body::Json(serde_json::json!({"sku": "A"})));
        c.expected_status = Some(vec![StatusPattern::Code(201)]);
        let out = run(&c, "{}", &mut fx).expect("ok");
        let r = out.response.expect("response");
        assert_eq!((r.status, r.json.as_deref()), (201, Some(r#"{"id":"ord_1"}"#)));
        assert_eq!(out.attempts, vec![Attempt { number: 1, status: Some(201), error: None, elapsed_ms: 7, wait_ms: None, wait_reason: None }]);
        assert_eq!(fx.sent[0].body, br#"{"sku":"A"}"#);
        assert_eq!(fx.log, vec!["attempt 1: 201 in 7 ms"]);
    }

    #[test]
    fn invalid_config_sends_nothing() {
        let mut fx = Fake::default();
        let mut c = StepConfig::get("nope");
        c.headers = vec![KeyValue::new("X", "a\nb")];
        let err = run(&c, "{}", &mut fx).expect_err("invalid");
        assert_eq!(err.error.kind(), "invalid-config");
        assert_eq!(err.error.problems().map(<[_]>::len), Some(2));
        assert!(fx.sent.is_empty() && err.attempts.is_empty());
        let err = run(&StepConfig::get("https://x.test"), "{oops", &mut fx).expect_err("bad context");
        assert_eq!(err.error.problems().expect("problems")[0].path, "context");
    }

    #[test]
    fn unexpected_status_fails_or_continues() {
        let c = StepConfig::get("https://x.test");
        let err = run(&c, "{}", &mut Fake::replying(vec![reply(404, "{}")])).expect_err("404");
        assert_eq!(err.error, StepError::UnexpectedStatus("the server answered 404; expected 2xx".into()));
        assert_eq!(err.response.map(|r| r.status), Some(404));
        let mut c = c;
        c.continue_on_error = true;
        let out = run(&c, "{}", &mut Fake::replying(vec![reply(404, "{}")])).expect("continued");
        assert_eq!(out.continued_error.map(|e| e.kind()), Some("unexpected-status"));
        assert_eq!(out.attempts[0].status, Some(404));
    }

    #[test]
    fn transport_errors_are_reported_per_attempt() {
        let c = StepConfig::get("https://x.test");
        let mut fx = Fake::replying(vec![Err(StepError::Timeout("no response within 500 ms".into()))]);
        let err = run(&c, "{}", &mut fx).expect_err("timeout");
        assert_eq!(err.error.kind(), "timeout");
        assert_eq!(err.attempts[0].error.as_ref().map(StepError::kind), Some("timeout"));
        assert!(err.response.is_none());
    }

    #[test]
    fn invalid_json_response_is_an_error_even_with_2xx() {
        let err = run(&StepConfig::get("https://x.test"), "{}", &mut Fake::replying(vec![reply(200, "{")])).expect_err("bad json");
        assert_eq!(err.error.kind(), "invalid-response");
    }
}
