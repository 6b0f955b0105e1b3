//! The retry policy: which failures are retried, how long to wait, and the
//! total deadline.
//!
//! Anchors: Persona's "Retry Intervals" (an explicit list); AWS Step Functions
//! retriers and Temporal (initial interval, backoff rate, maximum interval,
//! maximum attempts, full jitter); gRPC A6 (the deadline spans every attempt);
//! urllib3 (honour `Retry-After`, capped at 6 hours).

use crate::model::{
    DEFAULT_INITIAL_MS, DEFAULT_JITTER, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_INTERVAL_MS,
    DEFAULT_MAX_RETRY_AFTER_MS, DEFAULT_MULTIPLIER, DEFAULT_RETRY_ON_STATUS, Jitter, Method,
    Problem, RetryPolicy, StepError,
};

/// Most attempts a step may make, the first included.
pub const MAX_ATTEMPTS: u32 = 20;
/// Largest accepted multiplier.
pub const MAX_MULTIPLIER: f64 = 10.0;
/// Longest single wait accepted in `intervals_ms` or `max_interval_ms` (1 hour).
pub const MAX_WAIT_MS: u32 = 3_600_000;
/// Statuses that say the server did not act on the request, so even a
/// non-idempotent request may be repeated without an idempotency key.
const NOT_PROCESSED: [u16; 3] = [408, 425, 429];

/// How waits are computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Explicit waits; attempts = waits + 1.
    Intervals(Vec<u32>),
    /// `initial * multiplier^k`, capped, optionally jittered.
    Exponential {
        /// First wait.
        initial_ms: u32,
        /// Growth factor.
        multiplier: f64,
        /// Cap.
        max_interval_ms: u32,
        /// Total attempts.
        max_attempts: u32,
        /// Jitter.
        jitter: Jitter,
    },
}

/// A checked retry policy with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    /// Waits.
    pub schedule: Schedule,
    /// Retryable statuses.
    pub retry_on_status: Vec<u16>,
    /// Deadline over all attempts and waits.
    pub deadline_ms: Option<u32>,
    /// Whether an `Idempotency-Key` header is added.
    pub idempotency_key: bool,
    /// Cap on `Retry-After`.
    pub max_retry_after_ms: u32,
}

impl RetryPlan {
    /// A single attempt (no `retry` configured).
    pub fn none() -> Self {
        RetryPlan {
            schedule: Schedule::Intervals(Vec::new()),
            retry_on_status: Vec::new(),
            deadline_ms: None,
            idempotency_key: false,
            max_retry_after_ms: DEFAULT_MAX_RETRY_AFTER_MS,
        }
    }

    /// Checks `policy` for `method` with per-attempt `timeout_ms`, reporting
    /// every problem under `retry.…`.
    pub fn new(
        policy: &RetryPolicy,
        method: Method,
        timeout_ms: u32,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut problem =
            |field: &str, msg: String| problems.push(Problem::new(format!("retry.{field}"), msg));
        let exponential_fields = [
            ("initial_ms", policy.initial_ms.is_some()),
            ("multiplier", policy.multiplier.is_some()),
            ("max_interval_ms", policy.max_interval_ms.is_some()),
            ("max_attempts", policy.max_attempts.is_some()),
        ];
        let schedule = match &policy.intervals_ms {
            Some(intervals) => {
                for (field, _) in exponential_fields.iter().filter(|(_, set)| *set) {
                    problem(field, "cannot be combined with intervals_ms; use either the list or the exponential form".into());
                }
                if intervals.len() as u32 >= MAX_ATTEMPTS {
                    problem(
                        "intervals_ms",
                        format!(
                            "has {} waits; at most {} are allowed ({MAX_ATTEMPTS} attempts)",
                            intervals.len(),
                            MAX_ATTEMPTS - 1
                        ),
                    );
                }
                for (i, &ms) in intervals.iter().enumerate() {
                    if ms > MAX_WAIT_MS {
                        problem(
                            &format!("intervals_ms[{i}]"),
                            format!("{ms} ms is longer than the 1 hour allowed"),
                        );
                    }
                }
                Schedule::Intervals(intervals.clone())
            }
            None => {
                let initial_ms = policy.initial_ms.unwrap_or(DEFAULT_INITIAL_MS);
                let multiplier = policy.multiplier.unwrap_or(DEFAULT_MULTIPLIER);
                let max_interval_ms = policy.max_interval_ms.unwrap_or(DEFAULT_MAX_INTERVAL_MS);
                let max_attempts = policy.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
                if !(1.0..=MAX_MULTIPLIER).contains(&multiplier) {
                    problem(
                        "multiplier",
                        format!(
                            "must be from 1 to {MAX_MULTIPLIER} (waits must not shrink), not {multiplier}"
                        ),
                    );
                }
                if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
                    problem(
                        "max_attempts",
                        format!("must be from 1 to {MAX_ATTEMPTS}, not {max_attempts}"),
                    );
                }
                if max_interval_ms > MAX_WAIT_MS {
                    problem(
                        "max_interval_ms",
                        format!("{max_interval_ms} ms is longer than the 1 hour allowed"),
                    );
                }
                if initial_ms > max_interval_ms {
                    problem(
                        "initial_ms",
                        format!(
                            "{initial_ms} ms is longer than max_interval_ms ({max_interval_ms} ms)"
                        ),
                    );
                }
                Schedule::Exponential {
                    initial_ms,
                    multiplier,
                    max_interval_ms,
                    max_attempts,
                    jitter: policy.jitter.unwrap_or(DEFAULT_JITTER),
                }
            }
        };
        if let (Some(Jitter::Full), Schedule::Intervals(_)) = (policy.jitter, &schedule) {
            problem(
                "jitter",
                "applies to the exponential form only; intervals_ms are waited exactly".into(),
            );
        }
        let retry_on_status = policy
            .retry_on_status
            .clone()
            .unwrap_or_else(|| DEFAULT_RETRY_ON_STATUS.to_vec());
        for (i, code) in retry_on_status.iter().enumerate() {
            if !(100..=599).contains(code) {
                problem(
                    &format!("retry_on_status[{i}]"),
                    format!("{code} is not an HTTP status code"),
                );
            }
        }
        if let Some(deadline) = policy.deadline_ms
            && deadline < timeout_ms
        {
            problem(
                "deadline_ms",
                format!(
                    "{deadline} ms is shorter than one attempt's timeout_ms ({timeout_ms} ms); raise it or lower timeout_ms"
                ),
            );
        }
        if problems.is_empty() {
            let retries = !matches!(&schedule, Schedule::Intervals(i) if i.is_empty())
                && !matches!(
                    &schedule,
                    Schedule::Exponential {
                        max_attempts: 1,
                        ..
                    }
                );
            Ok(RetryPlan {
                schedule,
                retry_on_status,
                deadline_ms: policy.deadline_ms,
                idempotency_key: policy
                    .idempotency_key
                    .unwrap_or(retries && matches!(method, Method::Post | Method::Patch)),
                max_retry_after_ms: policy
                    .max_retry_after_ms
                    .unwrap_or(DEFAULT_MAX_RETRY_AFTER_MS),
            })
        } else {
            Err(problems)
        }
    }

    /// Total attempts allowed.
    pub fn max_attempts(&self) -> u32 {
        match &self.schedule {
            Schedule::Intervals(i) => i.len() as u32 + 1,
            Schedule::Exponential { max_attempts, .. } => *max_attempts,
        }
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter;
    /// `random` in [0, 1) applies full jitter.
    pub fn wait_ms(&self, attempt: u32, random: f64) -> u64 {
        match &self.schedule {
            Schedule::Intervals(i) => i.get(attempt as usize - 1).map_or(0, |&ms| u64::from(ms)),
            Schedule::Exponential {
                initial_ms,
                multiplier,
                max_interval_ms,
                jitter,
                ..
            } => {
                let exp =
                    f64::from(*initial_ms) * multiplier.powi(attempt.saturating_sub(1) as i32);
                let capped = exp.min(f64::from(*max_interval_ms));
                match jitter {
                    Jitter::None => capped as u64,
                    Jitter::Full => (capped * random.clamp(0.0, 1.0)) as u64,
                }
            }
        }
    }
}

/// Whether a failed attempt is worth retrying, and if not, why.
pub fn retryable(
    plan: &RetryPlan,
    method: Method,
    has_idempotency_key: bool,
    error: &StepError,
    status: Option<u16>,
    maybe_sent: bool,
) -> Result<(), &'static str> {
    let transient = match (error, status) {
        (StepError::UnexpectedStatus(_), Some(s)) => plan.retry_on_status.contains(&s),
        (StepError::Connection(_) | StepError::Timeout(_), _) => true,
        _ => false,
    };
    if !transient {
        return Err("this failure is not retried");
    }
    // RFC 9110 §9.2.2: GET, HEAD, OPTIONS, PUT and DELETE are idempotent.
    let idempotent = matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete
    );
    let unprocessed = match status {
        Some(s) => NOT_PROCESSED.contains(&s),
        None => !maybe_sent,
    };
    if idempotent || has_idempotency_key || unprocessed {
        Ok(())
    } else {
        Err(
            "the request may have reached the server and is not idempotent; set retry.idempotency_key to retry it safely",
        )
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date in
/// any of its three forms (IMF-fixdate, RFC 850, asctime). Returns the wait in
/// milliseconds from `now_unix_secs`; a date in the past is no wait.
pub fn parse_retry_after(value: &str, now_unix_secs: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 means "very long": saturate, the cap applies.
        return Some(
            value
                .parse::<u64>()
                .unwrap_or(u64::MAX)
                .saturating_mul(1000),
        );
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now_unix_secs).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(p: RetryPolicy) -> RetryPlan {
        RetryPlan::new(&p, Method::Get, 1000).expect("valid")
    }

    #[test]
    fn intervals_and_defaults() {
        let p = plan(RetryPolicy {
            intervals_ms: Some(vec![100, 200]),
            ..Default::default()
        });
        assert_eq!(p.max_attempts(), 3);
        assert_eq!((p.wait_ms(1, 0.5), p.wait_ms(2, 0.5)), (100, 200));
        assert_eq!(p.retry_on_status, DEFAULT_RETRY_ON_STATUS);
        assert!(!p.idempotency_key);
        let e = plan(RetryPolicy::default());
        assert_eq!(e.max_attempts(), DEFAULT_MAX_ATTEMPTS);
        assert_eq!(e.wait_ms(1, 0.999_999), 499);
        assert_eq!(e.wait_ms(1, 0.0), 0);
    }

    #[test]
    fn exponential_is_capped() {
        let p = plan(RetryPolicy {
            initial_ms: Some(100),
            multiplier: Some(3.0),
            max_interval_ms: Some(1000),
            max_attempts: Some(6),
            jitter: Some(Jitter::None),
            ..Default::default()
        });
        let waits: Vec<u64> = (1..6).map(|k| p.wait_ms(k, 0.3)).collect();
        assert_eq!(waits, [100, 300, 900, 1000, 1000]);
    }

    #[test]
    fn idempotency_key_defaults_on_for_post_and_patch_with_retries() {
        let with_retries = RetryPolicy {
            intervals_ms: Some(vec![10]),
            ..Default::default()
        };
        for (m, on) in [
            (Method::Post, true),
            (Method::Patch, true),
            (Method::Put, false),
            (Method::Get, false),
        ] {
            assert_eq!(
                RetryPlan::new(&with_retries, m, 100)
                    .expect("valid")
                    .idempotency_key,
                on,
                "{m}"
            );
        }
        let single = RetryPolicy {
            max_attempts: Some(1),
            ..Default::default()
        };
        assert!(
            !RetryPlan::new(&single, Method::Post, 100)
                .expect("valid")
                .idempotency_key
        );
    }

    #[test]
    fn nonsense_policies_are_rejected_with_every_problem() {
        let bad = RetryPolicy {
            multiplier: Some(0.5),
            max_attempts: Some(21),
            max_interval_ms: Some(10),
            initial_ms: Some(20),
            retry_on_status: Some(vec![99]),
            deadline_ms: Some(500),
            ..Default::default()
        };
        let problems = RetryPlan::new(&bad, Method::Get, 1000).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "retry.multiplier",
                "retry.max_attempts",
                "retry.initial_ms",
                "retry.retry_on_status[0]",
                "retry.deadline_ms"
            ]
        );
        let mixed = RetryPolicy {
            intervals_ms: Some(vec![1; 20]),
            max_attempts: Some(3),
            jitter: Some(Jitter::Full),
            ..Default::default()
        };
        let paths: Vec<String> = RetryPlan::new(&mixed, Method::Get, 1)
            .expect_err("invalid")
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(
            paths,
            ["retry.max_attempts", "retry.intervals_ms", "retry.jitter"]
        );
    }

    #[test]
    fn what_is_retried() {
        let p = plan(RetryPolicy::default());
        let status = |s: u16| StepError::UnexpectedStatus(format!("{s}"));
        let conn = StepError::Connection("refused".into());
        let timeout = StepError::Timeout("t".into());
        assert!(retryable(&p, Method::Get, false, &status(503), Some(503), true).is_ok());
        assert!(retryable(&p, Method::Get, false, &status(404), Some(404), true).is_err());
        assert!(
            retryable(
                &p,
                Method::Get,
                false,
                &StepError::Tls("x".into()),
                None,
                false
            )
            .is_err()
        );
        assert!(
            retryable(
                &p,
                Method::Get,
                false,
                &StepError::Denied("x".into()),
                None,
                false
            )
            .is_err()
        );
        // Non-idempotent: only what surely did not reach the server, or with a key.
        assert!(retryable(&p, Method::Post, false, &conn, None, false).is_ok());
        assert!(retryable(&p, Method::Post, false, &timeout, None, true).is_err());
        assert!(retryable(&p, Method::Post, true, &timeout, None, true).is_ok());
        assert!(retryable(&p, Method::Patch, false, &status(503), Some(503), true).is_err());
        assert!(retryable(&p, Method::Patch, false, &status(429), Some(429), true).is_ok());
    }

    #[test]
    fn retry_after_forms() {
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date)
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(u64::MAX)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:57 GMT", now),
            Some(20_000)
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:50:37 1994", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(0)
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
