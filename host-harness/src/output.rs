//! The CLI's output JSON (README "CLI"): one object per run.

use crate::Error;
use https_step_core::{Attempt, Response, StepError, StepFailure, StepOutcome};
use serde_json::{Map, Value, json};

fn error_json(e: &StepError) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), e.kind().into());
    obj.insert("message".into(), e.to_string().into());
    if let StepError::Auth(a) = e
        && let Some(code) = &a.code
    {
        obj.insert("code".into(), code.as_str().into());
    }
    if let Some(problems) = e.problems() {
        let list: Vec<Value> = problems.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
        obj.insert("problems".into(), list.into());
    }
    Value::Object(obj)
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "attempt": a.number,
        "status": a.status,
        "error": a.error.as_ref().map(error_json),
        "elapsed_ms": a.elapsed_ms,
        "wait_ms": a.wait_ms,
        "wait_reason": a.wait_reason.map(|r| r.as_str()),
    })
}

fn render(
    ok: bool,
    continued: bool,
    response: Option<&Response>,
    outputs: &[https_step_core::KeyValue],
    attempts: &[Attempt],
    error: Option<&StepError>,
) -> Value {
    let headers: Vec<Value> = response
        .map(|r| r.headers.iter().map(|kv| json!([kv.key, kv.value])).collect())
        .unwrap_or_default();
    let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let outputs: Map<String, Value> = outputs.iter().map(|kv| (kv.key.clone(), parsed(&kv.value))).collect();
    json!({
        "ok": ok,
        "continued": continued,
        "status": response.map(|r| r.status),
        "headers": headers,
        "body": response.map(|r| r.body.as_str()),
        "body_base64": response.and_then(|r| r.body_base64.as_deref()),
        "content_type": response.and_then(|r| r.content_type.as_deref()),
        "body_sha256": response.and_then(|r| r.body_sha256.as_deref()),
        "json": response.and_then(|r| r.json.as_deref()).map_or(Value::Null, parsed),
        "outputs": outputs,
        "attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "error": error.map(error_json),
    })
}

/// The output object of a step that ran (successfully, continued or failed).
pub fn step_result_json(result: &Result<StepOutcome, StepFailure>) -> Value {
    match result {
        Ok(o) => render(
            true,
            o.continued_error.is_some(),
            o.response.as_ref(),
            &o.outputs,
            &o.attempts,
            o.continued_error.as_ref(),
        ),
        Err(f) => render(false, false, f.response.as_ref(), &[], &f.attempts, Some(&f.error)),
    }
}

/// The output object when the host could not run the step at all.
pub fn host_error_json(e: &Error) -> Value {
    let mut v = render(false, false, None, &[], &[], None);
    v["error"] = json!({"kind": e.kind(), "message": e.to_string()});
    v
}
