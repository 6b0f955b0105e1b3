//! Asynchronous jobs (README "Polling"): a response whose status is in
//! `poll.on_status` (`202 Accepted`, RFC 9110 §15.3.3) names a status URL —
//! the `Location` header or a JSON Pointer — that the step GETs, waiting
//! `Retry-After` or `interval_ms` between polls, until the job's state (at
//! `until.pointer`) is a success or failure value, or, without `until`,
//! until a status outside `on_status`. Each poll is a request of its own
//! (retries, timeout, fresh token and signature) on the first request's
//! origin unless `allowed_origins` lists another.

use super::Done;
use super::Effects;
use super::attempts::{Exchange, Label, Session, retry_after_ms, use_json};
use super::follow::request_to;
use super::plan::Plan;
use super::redact::Redacting;
use crate::model::{Method, Response, StatusUrl, StepError, WaitReason};
use crate::sequence::PollPlan;
use serde_json::Value;

/// Sends the first request, then polls while the job runs.
pub(super) fn follow(
    plan: &Plan,
    p: &PollPlan,
    session: &mut Session<'_>,
    fx: &mut Redacting<'_>,
) -> Done {
    let on_status = &p.on_status;
    let max_polls = p.max_polls;
    let interval = u64::from(p.interval_ms);
    let fail = |response: Option<Response>, error: StepError| Done {
        response,
        outputs: Vec::new(),
        error: Some(error),
        pagination: None,
    };
    let first = Exchange {
        request: &plan.request,
        label: Label::Single,
        also_ok: on_status,
        use_json: false,
        credentials: true,
    };
    let got = session.exchange(&first, fx);
    let (mut response, mut json) = match (got.response, got.error) {
        (response, Some(error)) => return fail(response, error),
        (Some(response), None) => (response, got.json),
        (None, None) => {
            return fail(
                None,
                StepError::Internal("the request ended without a response".into()),
            );
        }
    };
    let mut url = plan.request.url.clone();
    let mut target: Option<String> = None;
    let mut polls = 0;
    let mut total_bytes = response.body.len() as u64;
    loop {
        let pending = on_status.contains(&response.status);
        let state = p
            .until
            .as_ref()
            .and_then(|u| json.as_ref()?.pointer(&u.pointer).map(state_text));
        if polls > 0 || !pending {
            match &p.until {
                Some(until) if polls > 0 => {
                    if let Some(state) = state.as_ref().filter(|s| until.failure.contains(s)) {
                        let error = StepError::UnexpectedStatus(format!(
                            "the job failed: {} is {state:?} (poll {polls}, status {})",
                            until.pointer, response.status
                        ));
                        return fail(Some(response), error);
                    }
                    if state.as_ref().is_some_and(|s| until.success.contains(s)) {
                        break;
                    }
                }
                _ if !pending => break,
                _ => {}
            }
        }
        let shown = state.as_deref().map_or_else(
            || response.status.to_string(),
            |s| format!("{s} ({})", response.status),
        );
        if polls >= max_polls {
            let error = StepError::Timeout(format!(
                "the job was not done after {max_polls} polls (poll.max_polls); last status {shown}"
            ));
            return fail(Some(response), error);
        }
        match status_url(&p.status_url, &response, json.as_ref()) {
            Ok(Some(next)) => target = Some(next),
            Ok(None) if target.is_some() => {}
            Ok(None) => {
                let error = StepError::InvalidResponse(format!(
                    "the response ({}) says the job runs but names no status URL ({})",
                    response.status,
                    where_(&p.status_url)
                ));
                return fail(Some(response), error);
            }
            Err(error) => return fail(Some(response), error),
        }
        let (wait, reason) = match retry_after_ms(plan, &response, fx) {
            Some(ms) => (ms, WaitReason::RetryAfter),
            None => (interval, WaitReason::PollInterval),
        };
        if session.left_ms(fx).is_some_and(|left| wait >= left) {
            let error = StepError::Timeout(format!(
                "waiting {wait} ms for poll {} would pass {}; last status {shown}",
                polls + 1,
                session.deadline_note()
            ));
            return fail(Some(response), error);
        }
        fx.progress(&format!(
            "poll {}: status {shown}, next in {}",
            polls + 1,
            in_words(wait)
        ));
        session.wait(wait, reason, fx);
        polls += 1;
        let next = match request_to(
            plan,
            &url,
            target.as_deref().unwrap_or_default(),
            Method::Get,
            &p.allowed_origins,
            "the status URL",
            "poll.allowed_origins",
        ) {
            Ok(next) => next,
            Err(error) => return fail(Some(response), error),
        };
        let ex = Exchange {
            request: &next.request,
            label: Label::Poll(polls),
            also_ok: on_status,
            use_json: false,
            credentials: next.same_origin,
        };
        let got = session.exchange(&ex, fx);
        match (got.response, got.error) {
            (r, Some(error)) => return fail(r, error),
            (Some(r), None) => (response, json) = (r, got.json),
            (None, None) => {
                return fail(
                    None,
                    StepError::Internal(format!("poll {polls} ended without a response")),
                );
            }
        }
        total_bytes += response.body.len() as u64;
        if total_bytes > plan.max_total_response_bytes {
            let error = StepError::ResponseTooLarge(format!(
                "the responses of {polls} polls passed max_total_response_bytes ({} bytes together)",
                plan.max_total_response_bytes
            ));
            return fail(Some(response), error);
        }
        url = next.request.url;
    }
    match use_json(plan, json.as_ref()) {
        Ok(outputs) => Done {
            response: Some(response),
            outputs,
            error: None,
            pagination: None,
        },
        Err(error) => fail(Some(response), error),
    }
}

/// A job state as compared with `until`'s values: a string as itself,
/// anything else as compact JSON.
fn state_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status URL the response names, if any.
fn status_url(
    from: &StatusUrl,
    response: &Response,
    json: Option<&Value>,
) -> Result<Option<String>, StepError> {
    match from {
        StatusUrl::Location => Ok(response
            .headers
            .iter()
            .find(|kv| kv.key.eq_ignore_ascii_case("location"))
            .map(|kv| kv.value.trim().to_string())),
        StatusUrl::Pointer(pointer) => match json.and_then(|j| j.pointer(pointer)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(StepError::InvalidResponse(format!(
                "the status URL at {pointer:?} is {}, not a string",
                crate::model::json_type_name(other)
            ))),
        },
    }
}

fn where_(from: &StatusUrl) -> String {
    match from {
        StatusUrl::Location => "no Location header".into(),
        StatusUrl::Pointer(p) => format!("nothing at {p:?}"),
    }
}

/// A wait for a progress line: `250 ms`, `2 s`, `1.5 s`.
fn in_words(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        _ if ms.is_multiple_of(1000) => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Method as M, Poll, PollUntil, StepConfig};
    use crate::run::run;
    use crate::run::tests::Fake;

    fn raw(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<crate::RawResponse, crate::SendError> {
        Ok(crate::RawResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn job(until: bool) -> StepConfig {
        let mut c = StepConfig::get("https://api.test/jobs");
        c.method = M::Post;
        c.poll = Some(Poll {
            on_status: None,
            status_url: None,
            until: until.then(|| PollUntil {
                pointer: "/status".into(),
                success: vec!["succeeded".into()],
                failure: vec!["failed".into()],
            }),
            interval_ms: Some(500),
            max_polls: Some(5),
            allowed_origins: vec![],
        });
        c
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn polls_the_location_until_success_honouring_retry_after() {
        let mut fx = Fake::replying(vec![
            raw(202, &[("location", "/jobs/7")], ""),
            raw(
                200,
                &[JSON, ("retry-after", "2")],
                r#"{"status": "running"}"#,
            ),
            raw(200, &[JSON], r#"{"status": "running"}"#),
            raw(200, &[JSON], r#"{"status": "succeeded", "result": 42}"#),
        ]);
        let out = run(job(true), "{}".into(), &mut fx).expect("ok");
        assert_eq!(
            out.response.and_then(|r| r.json).as_deref(),
            Some(r#"{"status":"succeeded","result":42}"#)
        );
        assert_eq!(
            fx.sent
                .iter()
                .map(|r| (r.method, r.url.path().to_string()))
                .collect::<Vec<_>>(),
            [
                (M::Post, "/jobs".into()),
                (M::Get, "/jobs/7".into()),
                (M::Get, "/jobs/7".into()),
                (M::Get, "/jobs/7".into())
            ]
        );
        assert_eq!(fx.slept, [500, 2000, 500]);
        assert_eq!(
            out.attempts
                .iter()
                .map(|a| (a.poll, a.wait_reason))
                .collect::<Vec<_>>(),
            [
                (None, Some(WaitReason::PollInterval)),
                (Some(1), Some(WaitReason::RetryAfter)),
                (Some(2), Some(WaitReason::PollInterval)),
                (Some(3), None)
            ]
        );
        assert!(
            fx.log
                .iter()
                .any(|l| l == "poll 2: status running (200), next in 2 s"),
            "{:?}",
            fx.log
        );
        assert!(fx.sent[1].body.is_empty());
    }

    #[test]
    fn failure_values_max_polls_and_other_origins() {
        let mut fx = Fake::replying(vec![
            raw(202, &[("location", "/jobs/7")], ""),
            raw(200, &[JSON], r#"{"status": "failed"}"#),
        ]);
        let err = run(job(true), "{}".into(), &mut fx).expect_err("failed");
        assert_eq!(err.error.kind(), "unexpected-status");
        assert!(
            err.error.to_string().contains(r#"/status is "failed""#),
            "{}",
            err.error
        );

        let mut replies = vec![raw(202, &[("location", "/jobs/7")], "")];
        replies.extend((0..5).map(|_| raw(200, &[JSON], r#"{"status": "running"}"#)));
        let mut fx = Fake::replying(replies);
        let err = run(job(true), "{}".into(), &mut fx).expect_err("max polls");
        assert_eq!(err.error.kind(), "timeout");
        assert!(err.error.to_string().contains("5 polls"), "{}", err.error);
        assert_eq!(fx.sent.len(), 6);

        let mut fx = Fake::replying(vec![raw(
            202,
            &[("location", "https://elsewhere.test/jobs/7")],
            "",
        )]);
        let err = run(job(true), "{}".into(), &mut fx).expect_err("denied");
        assert_eq!(err.error.kind(), "denied");
        assert_eq!(fx.sent.len(), 1);
    }

    #[test]
    fn without_until_polling_ends_at_a_status_outside_on_status() {
        let mut fx = Fake::replying(vec![
            raw(202, &[("location", "/q/1")], ""),
            raw(202, &[("location", "/q/2")], ""),
            raw(200, &[JSON], r#"{"done": true}"#),
        ]);
        let out = run(job(false), "{}".into(), &mut fx).expect("ok");
        assert_eq!(out.response.map(|r| r.status), Some(200));
        assert_eq!(
            fx.sent
                .iter()
                .map(|r| r.url.path().to_string())
                .collect::<Vec<_>>(),
            ["/jobs", "/q/1", "/q/2"]
        );
        // Not asynchronous at all: one request.
        let mut fx = Fake::replying(vec![raw(201, &[JSON], r#"{"id": 1}"#)]);
        run(job(true), "{}".into(), &mut fx).expect("ok");
        assert_eq!(fx.sent.len(), 1);
    }
}
